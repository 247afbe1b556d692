"""threadline-duckdb: land streams as tables in an embedded DuckDB file."""

from threadline_duckdb.destination import DuckDBConfig, DuckDBDestination

__all__ = ["DuckDBConfig", "DuckDBDestination"]
