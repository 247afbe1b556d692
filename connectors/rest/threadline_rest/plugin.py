"""Entry point of the `rest` plugin: the `rest` source and its sandbox.

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    register("rest", "threadline_rest.source:RestApiSource")


@hookimpl
def register_sandboxes(register):
    register("rest", "threadline.sandbox.customers:CustomersSandbox")
