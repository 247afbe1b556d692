"""threadline-files: CSV, JSON lines and Parquet files as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["FilesConfig", "FilesSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"FilesConfig": "threadline_files.source", "FilesSource": "threadline_files.source"})

if TYPE_CHECKING:
    from threadline_files.source import FilesConfig, FilesSource
