"""Registers the `shopify` source and its sandbox with threadline (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    register("shopify", "threadline_shopify.source:ShopifySource")


@hookimpl
def register_sandboxes(register):
    register("shopify", "threadline_shopify.sandbox:ShopifySandbox")
