"""threadline-postgres-destination: land streams as tables in a Postgres database."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["PostgresDestination", "PostgresDestinationConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"PostgresDestination": "threadline_postgres_destination.destination", "PostgresDestinationConfig": "threadline_postgres_destination.destination"})

if TYPE_CHECKING:
    from threadline_postgres_destination.destination import PostgresDestination, PostgresDestinationConfig
