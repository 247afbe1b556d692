"""threadline-shopify: the Shopify API as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["ShopifyConfig", "ShopifySource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"ShopifyConfig": "threadline_shopify.source", "ShopifySource": "threadline_shopify.source"})

if TYPE_CHECKING:
    from threadline_shopify.source import ShopifyConfig, ShopifySource
