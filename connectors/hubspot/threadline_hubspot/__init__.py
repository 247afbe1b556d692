"""threadline-hubspot: HubSpot CRM (contacts, companies, deals, associations) as a threadline source."""

from threadline_hubspot.source import HubspotConfig, HubspotSource

__all__ = ["HubspotConfig", "HubspotSource"]
