"""threadline-salesforce: the Salesforce API as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["SalesforceConfig", "SalesforceSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"SalesforceConfig": "threadline_salesforce.source", "SalesforceSource": "threadline_salesforce.source"})

if TYPE_CHECKING:
    from threadline_salesforce.source import SalesforceConfig, SalesforceSource
