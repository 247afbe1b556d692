"""Registers the `klaviyo_lists` destination and its sandbox with threadline (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_audience_destinations(register):
    register("klaviyo_lists", "threadline_klaviyo_lists.destination:KlaviyoLists")


@hookimpl
def register_sandboxes(register):
    register("klaviyo_lists", "threadline_klaviyo_lists.sandbox:KlaviyoListsSandbox")
