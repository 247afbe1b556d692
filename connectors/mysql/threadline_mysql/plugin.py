"""Registers the `mysql` source with threadline."""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    from threadline_mysql.source import MySQLSource

    register(MySQLSource)
