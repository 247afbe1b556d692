"""Registers the `hubspot` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_hubspot.sandbox import HubspotSandbox
from threadline_hubspot.source import HubspotSource


@hookimpl
def register_sources(register):
    register(HubspotSource)


@hookimpl
def register_sandboxes(register):
    register("hubspot", HubspotSandbox)
