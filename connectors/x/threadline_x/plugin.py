"""Registers the `x` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl
from threadline_x.sandbox import XSandbox
from threadline_x.source import XSource


@hookimpl
def register_sources(register):
    register(XSource)


@hookimpl
def register_sandboxes(register):
    register("x", XSandbox)
