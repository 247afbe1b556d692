"""threadline-postgres: tables, views and queries of a Postgres database as streams — bulk
reads into Arrow, incremental by cursor, and change data capture through logical replication."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["PostgresConfig", "PostgresSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"PostgresConfig": "threadline_postgres.config", "PostgresSource": "threadline_postgres.source"})

if TYPE_CHECKING:
    from threadline_postgres.config import PostgresConfig
    from threadline_postgres.source import PostgresSource
