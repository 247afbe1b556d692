"""Registers the `postgres` destination with threadline."""

from threadline import hookimpl


@hookimpl
def register_destinations(register):
    from threadline_postgres_destination.destination import PostgresDestination

    register(PostgresDestination)
