"""threadline-zendesk: Zendesk Support (users, tickets, satisfaction ratings) as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["ZendeskConfig", "ZendeskSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"ZendeskConfig": "threadline_zendesk.source", "ZendeskSource": "threadline_zendesk.source"})

if TYPE_CHECKING:
    from threadline_zendesk.source import ZendeskConfig, ZendeskSource
