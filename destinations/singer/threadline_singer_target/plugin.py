"""Entry point of the threadline-singer-target plugin: registers the `singer` destination."""

from __future__ import annotations

from collections.abc import Callable

from threadline import hookimpl
from threadline_singer_target.destination import SingerDestination


@hookimpl
def register_destinations(register: Callable[[type], None]) -> None:
    """Register the `singer` destination."""
    register(SingerDestination)
