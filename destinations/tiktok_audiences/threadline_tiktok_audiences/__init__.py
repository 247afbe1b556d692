"""threadline destination: TikTok custom audiences (Business API v1.3 audience segments)."""

from threadline_tiktok_audiences.destination import TikTokAudiences, TikTokAudiencesConfig

__all__ = ["TikTokAudiences", "TikTokAudiencesConfig"]
