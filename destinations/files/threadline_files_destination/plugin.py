"""Registers the `files` destination with threadline."""

from threadline import hookimpl
from threadline_files_destination.destination import FilesDestination


@hookimpl
def register_destinations(register):
    register(FilesDestination)
