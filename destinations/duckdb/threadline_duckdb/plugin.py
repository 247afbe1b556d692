"""Registers the `duckdb` destination with threadline."""

from threadline import hookimpl
from threadline_duckdb.destination import DuckDBDestination


@hookimpl
def register_destinations(register):
    register(DuckDBDestination)
