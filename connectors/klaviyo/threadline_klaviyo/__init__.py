"""threadline-klaviyo: the Klaviyo API as a threadline source."""

from threadline_klaviyo.source import KlaviyoConfig, KlaviyoSource

__all__ = ["KlaviyoConfig", "KlaviyoSource"]
