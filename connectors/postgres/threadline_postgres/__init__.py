"""threadline-postgres: tables, views and queries of a Postgres database as streams — bulk
reads into Arrow, incremental by cursor, and change data capture through logical replication."""

from threadline_postgres.config import PostgresConfig
from threadline_postgres.source import PostgresSource

__all__ = ["PostgresConfig", "PostgresSource"]
