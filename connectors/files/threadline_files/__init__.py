"""threadline-files: CSV, JSON lines and Parquet files as a threadline source."""

from threadline_files.source import FilesConfig, FilesSource

__all__ = ["FilesConfig", "FilesSource"]
