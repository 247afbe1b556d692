"""threadline-zendesk: the Zendesk API as a threadline source."""

from threadline_zendesk.source import ZendeskConfig, ZendeskSource

__all__ = ["ZendeskConfig", "ZendeskSource"]
