"""Registers the `direct_mail` destination (entry point `threadline`). It writes files, so it
has no sandbox.

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_audience_destinations(register):
    register("direct_mail", "threadline_direct_mail.destination:DirectMail")
