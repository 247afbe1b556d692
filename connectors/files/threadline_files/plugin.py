"""Registers the `files` source with threadline."""

from threadline import hookimpl
from threadline_files.source import FilesSource


@hookimpl
def register_sources(register):
    register(FilesSource)
