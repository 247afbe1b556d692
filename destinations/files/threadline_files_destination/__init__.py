"""threadline-files-destination: write streams as Parquet, CSV or JSON lines files."""

from threadline_files_destination.destination import FilesDestination, FilesDestinationConfig

__all__ = ["FilesDestination", "FilesDestinationConfig"]
