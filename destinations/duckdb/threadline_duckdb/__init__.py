"""threadline-duckdb: land streams as tables in an embedded DuckDB file."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["DuckDBConfig", "DuckDBDestination"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"DuckDBConfig": "threadline_duckdb.destination", "DuckDBDestination": "threadline_duckdb.destination"})

if TYPE_CHECKING:
    from threadline_duckdb.destination import DuckDBConfig, DuckDBDestination
