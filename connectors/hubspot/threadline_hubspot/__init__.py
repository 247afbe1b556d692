"""threadline-hubspot: HubSpot CRM (contacts, companies, deals, associations) as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["HubspotConfig", "HubspotSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"HubspotConfig": "threadline_hubspot.source", "HubspotSource": "threadline_hubspot.source"})

if TYPE_CHECKING:
    from threadline_hubspot.source import HubspotConfig, HubspotSource
