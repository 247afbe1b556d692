"""Entry point of the threadline-singer plugin: registers the `singer` source.

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    register("singer", "threadline_singer.source:SingerSource")
