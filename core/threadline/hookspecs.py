"""Every hook a threadline plugin can implement, in one place.

A plugin is a module (or object) registered under the entry-point group ``threadline``.
It implements any of these hooks with ``@threadline.hookimpl``::

    from threadline import hookimpl

    @hookimpl
    def register_sources(register):
        register("my_crm", "threadline_my_crm.source:MyCrmSource")

Registration hooks receive a ``register`` callable instead of returning values, so a plugin
can add several things and threadline knows which plugin added each one.

Register by import path, ``register(name, "package.module:Name")``: the module is imported the
first time the name is used, so every command's start-up stays cheap (`threadline --help`
imports no connector, driver or sandbox). The plugin's entry-point module and its package's
``__init__`` must then import nothing heavy themselves (``threadline.lazy.lazy_exports`` keeps a
package's re-exports lazy). ``register(SourceClass)`` still works, for a class already imported.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("threadline")


@hookspec
def register_sources(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register("name", "package.module:SourceClass")`` for each
    Source subclass (or ``register(SourceClass)``); `name` must equal the class's `name`."""


@hookspec
def register_destinations(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register("name", "package.module:DestinationClass")`` for
    each Destination (or ``register(DestinationClass)``) that lands streams. Audience
    destinations go through `register_audience_destinations`."""


@hookspec
def register_audience_destinations(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register("name", "package.module:AudienceClass")`` (or
    ``register(AudienceClass)``) for each AudienceDestination: an ad platform, an email tool's
    list, a mail house. A job names it under `destinations:` like any destination; activations
    push audiences to it, and sources cannot write to it."""


@hookspec
def register_sandboxes(register: Callable[[str, Any], None]) -> None:
    """Called once at start-up. Call ``register(name, "package.module:SandboxClass")`` (or
    ``register(name, factory)``) where ``factory(seed=..., port=...)`` returns a sandbox server
    (see ``threadline.sandbox``) for a vendor API. It is imported only when it is served."""


@hookspec
def register_commands(cli: Any) -> None:
    """Called when the CLI needs plugins' commands (for --help, or a name that is not one of
    threadline's own). Call ``cli.add_lazy_command(name, "package.module:command", short_help)``
    so the command's module is imported only when it runs (``cli.add_command(cmd)`` also works,
    at the price of importing it at every start-up)."""


@hookspec
def run_started(run: Any) -> None:
    """Observer: a sync run started. ``run`` is a ``threadline.engine.RunInfo``."""


@hookspec
def batch_written(run: Any, target: Any, rows: int) -> None:
    """Observer: ``rows`` rows of ``target`` (a StreamTarget) were handed to its destination."""


@hookspec
def run_finished(run: Any, report: Any) -> None:
    """Observer: a sync run ended (successfully or not). ``report`` is a ``RunReport``."""
