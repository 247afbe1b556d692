"""threadline-loyaltylion: LoyaltyLion loyalty customers and points transactions as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["LoyaltylionConfig", "LoyaltylionSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"LoyaltylionConfig": "threadline_loyaltylion.source", "LoyaltylionSource": "threadline_loyaltylion.source"})

if TYPE_CHECKING:
    from threadline_loyaltylion.source import LoyaltylionConfig, LoyaltylionSource
