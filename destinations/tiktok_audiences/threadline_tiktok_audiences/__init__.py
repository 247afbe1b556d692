"""threadline destination: TikTok custom audiences (Business API v1.3 audience segments)."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["TikTokAudiences", "TikTokAudiencesConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"TikTokAudiences": "threadline_tiktok_audiences.destination", "TikTokAudiencesConfig": "threadline_tiktok_audiences.destination"})

if TYPE_CHECKING:
    from threadline_tiktok_audiences.destination import TikTokAudiences, TikTokAudiencesConfig
