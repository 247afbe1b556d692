"""Registers the `postgres` source with threadline."""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    from threadline_postgres.source import PostgresSource

    register(PostgresSource)
