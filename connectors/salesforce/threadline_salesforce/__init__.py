"""threadline-salesforce: the Salesforce API as a threadline source."""

from threadline_salesforce.source import SalesforceConfig, SalesforceSource

__all__ = ["SalesforceConfig", "SalesforceSource"]
