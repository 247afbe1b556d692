"""threadline-zendesk: Zendesk Support (users, tickets, satisfaction ratings) as a threadline source."""

from threadline_zendesk.source import ZendeskConfig, ZendeskSource

__all__ = ["ZendeskConfig", "ZendeskSource"]
