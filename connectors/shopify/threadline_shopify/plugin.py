"""Registers the `shopify` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_shopify.sandbox import ShopifySandbox
from threadline_shopify.source import ShopifySource


@hookimpl
def register_sources(register):
    register(ShopifySource)


@hookimpl
def register_sandboxes(register):
    register("shopify", ShopifySandbox)
