"""threadline-klaviyo-lists: profile-store audiences as Klaviyo list memberships."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["KlaviyoLists", "KlaviyoListsConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"KlaviyoLists": "threadline_klaviyo_lists.destination", "KlaviyoListsConfig": "threadline_klaviyo_lists.destination"})

if TYPE_CHECKING:
    from threadline_klaviyo_lists.destination import KlaviyoLists, KlaviyoListsConfig
