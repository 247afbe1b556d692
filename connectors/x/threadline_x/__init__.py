"""threadline-x: the X API as a threadline source."""

from threadline_x.source import XConfig, XSource

__all__ = ["XConfig", "XSource"]
