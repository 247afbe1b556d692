"""threadline-klaviyo: the Klaviyo API as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["KlaviyoConfig", "KlaviyoSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"KlaviyoConfig": "threadline_klaviyo.source", "KlaviyoSource": "threadline_klaviyo.source"})

if TYPE_CHECKING:
    from threadline_klaviyo.source import KlaviyoConfig, KlaviyoSource
