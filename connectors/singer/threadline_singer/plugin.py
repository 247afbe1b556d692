"""Entry point of the threadline-singer plugin: registers the `singer` source."""

from __future__ import annotations

from collections.abc import Callable

from threadline import hookimpl
from threadline_singer.source import SingerSource


@hookimpl
def register_sources(register: Callable[[type], None]) -> None:
    """Register the `singer` source."""
    register(SingerSource)
