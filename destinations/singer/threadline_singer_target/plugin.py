"""Entry point of the threadline-singer-target plugin: registers the `singer` destination.

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_destinations(register):
    register("singer", "threadline_singer_target.destination:SingerDestination")
