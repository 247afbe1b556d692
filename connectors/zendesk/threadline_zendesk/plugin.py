"""Registers the `zendesk` source and its sandbox with threadline (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    register("zendesk", "threadline_zendesk.source:ZendeskSource")


@hookimpl
def register_sandboxes(register):
    register("zendesk", "threadline_zendesk.sandbox:ZendeskSandbox")
