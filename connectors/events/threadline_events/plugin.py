"""Registers the `events` source and the `threadline collect` command, by import path: the
source's module and the collector's web stack (Starlette, uvicorn) are imported only when used,
so `threadline --help` does not pay for them."""

from typing import Any

from threadline import hookimpl


@hookimpl
def register_sources(register):  # type: ignore[no-untyped-def]
    register("events", "threadline_events.source:EventsSource")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_lazy_command("collect", "threadline_events.cli:collect_command",
                         "Serve the event collector: Segment's tracking API and vendor webhooks into a durable log.")
