"""threadline-klaviyo-lists: profile-store audiences as Klaviyo list memberships."""

from threadline_klaviyo_lists.destination import KlaviyoLists, KlaviyoListsConfig

__all__ = ["KlaviyoLists", "KlaviyoListsConfig"]
