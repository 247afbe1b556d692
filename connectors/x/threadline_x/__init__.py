"""threadline-x: the X API as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["XConfig", "XSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"XConfig": "threadline_x.source", "XSource": "threadline_x.source"})

if TYPE_CHECKING:
    from threadline_x.source import XConfig, XSource
