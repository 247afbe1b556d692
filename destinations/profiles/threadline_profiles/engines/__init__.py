"""Engines run the stages' SQL: DuckDB (embedded, the default), Postgres (a shared server) and
Spark (a cluster; pyspark is imported only when a store asks for it)."""

from __future__ import annotations

from threadline_profiles.config import ProfilesConfig
from threadline_profiles.engines.base import Engine, lit, quote, safe_name, sql_type
from threadline_profiles.engines.duckdb_engine import DuckDBEngine, StoreLockedError
from threadline_profiles.engines.postgres_engine import (
    PostgresEngine,
    PostgresUnreachableError,
)


def open_engine(config: ProfilesConfig) -> Engine:
    """The engine a destination config asks for, connected."""
    if config.engine == "postgres":
        return PostgresEngine(config.dsn, config.db_schema, encryption=config.encryption,
                              key_file=config.key_file)
    if config.engine == "spark":
        from threadline_profiles.engines.spark_engine import SparkEngine, settings_of

        return SparkEngine(settings_of(config))
    return DuckDBEngine(config.path, memory_limit=config.memory_limit, encryption=config.encryption)


__all__ = [
    "DuckDBEngine", "Engine", "PostgresEngine", "PostgresUnreachableError", "StoreLockedError",
    "lit", "open_engine", "quote", "safe_name", "sql_type",
]
