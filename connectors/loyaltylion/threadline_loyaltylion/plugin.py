"""Registers the `loyaltylion` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl
from threadline_loyaltylion.sandbox import LoyaltylionSandbox
from threadline_loyaltylion.source import LoyaltylionSource


@hookimpl
def register_sources(register):
    register(LoyaltylionSource)


@hookimpl
def register_sandboxes(register):
    register("loyaltylion", LoyaltylionSandbox)
