"""Every hook a threadline plugin can implement, in one place.

A plugin is a module (or object) registered under the entry-point group ``threadline``.
It implements any of these hooks with ``@threadline.hookimpl``::

    from threadline import hookimpl

    @hookimpl
    def register_sources(register):
        register(MyCrmSource)

Registration hooks receive a ``register`` callable instead of returning values, so a plugin
can add several things and threadline knows which plugin added each one.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("threadline")


@hookspec
def register_sources(register: Callable[[type], None]) -> None:
    """Called once at start-up. Call ``register(SourceClass)`` for each Source subclass."""


@hookspec
def register_destinations(register: Callable[[type], None]) -> None:
    """Called once at start-up. Call ``register(DestinationClass)`` for each Destination."""


@hookspec
def register_sandboxes(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Called by ``threadline sandbox``. Call ``register(name, factory)`` where ``factory()``
    returns a started sandbox server (see ``threadline.sandbox``) for a vendor API."""


@hookspec
def register_commands(cli: Any) -> None:
    """Called when the CLI starts. Add click commands or groups to ``cli``
    (the profile store adds ``threadline profiles``, for example)."""


@hookspec
def run_started(run: Any) -> None:
    """Observer: a sync run started. ``run`` is a ``threadline.engine.RunInfo``."""


@hookspec
def batch_written(run: Any, target: Any, rows: int) -> None:
    """Observer: ``rows`` rows of ``target`` (a StreamTarget) were handed to its destination."""


@hookspec
def run_finished(run: Any, report: Any) -> None:
    """Observer: a sync run ended (successfully or not). ``report`` is a ``RunReport``."""
