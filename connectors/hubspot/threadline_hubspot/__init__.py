"""threadline-hubspot: the Hubspot API as a threadline source."""

from threadline_hubspot.source import HubspotConfig, HubspotSource

__all__ = ["HubspotConfig", "HubspotSource"]
