"""Registers the `mysql` source with threadline.

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    register("mysql", "threadline_mysql.source:MySQLSource")
