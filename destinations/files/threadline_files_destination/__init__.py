"""threadline-files-destination: write streams as Parquet, CSV or JSON lines files."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["FilesDestination", "FilesDestinationConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"FilesDestination": "threadline_files_destination.destination", "FilesDestinationConfig": "threadline_files_destination.destination"})

if TYPE_CHECKING:
    from threadline_files_destination.destination import FilesDestination, FilesDestinationConfig
