"""threadline-postgres-destination: land streams as tables in a Postgres database."""

from threadline_postgres_destination.destination import PostgresDestination, PostgresDestinationConfig

__all__ = ["PostgresDestination", "PostgresDestinationConfig"]
