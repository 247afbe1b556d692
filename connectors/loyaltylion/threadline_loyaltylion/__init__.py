"""threadline-loyaltylion: LoyaltyLion loyalty customers and points transactions as a threadline source."""

from threadline_loyaltylion.source import LoyaltylionConfig, LoyaltylionSource

__all__ = ["LoyaltylionConfig", "LoyaltylionSource"]
