"""Registers the `events` source and the `threadline collect` command.

Nothing heavy is imported here: the collector's web stack (Starlette, uvicorn) is imported only
when `threadline collect` runs, so `threadline --help` does not pay for it.
"""

from typing import Any

from threadline import hookimpl


@hookimpl
def register_sources(register):  # type: ignore[no-untyped-def]
    from threadline_events.source import EventsSource

    register(EventsSource)


@hookimpl
def register_commands(cli: Any) -> None:
    from threadline_events.cli import collect_command

    cli.add_command(collect_command)
