"""threadline-shopify: the Shopify API as a threadline source."""

from threadline_shopify.source import ShopifyConfig, ShopifySource

__all__ = ["ShopifyConfig", "ShopifySource"]
