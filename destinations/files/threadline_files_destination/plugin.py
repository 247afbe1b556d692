"""Registers the `files` destination with threadline.

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_destinations(register):
    register("files", "threadline_files_destination.destination:FilesDestination")
