"""Registers the `zendesk` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_zendesk.sandbox import ZendeskSandbox
from threadline_zendesk.source import ZendeskSource


@hookimpl
def register_sources(register):
    register(ZendeskSource)


@hookimpl
def register_sandboxes(register):
    register("zendesk", ZendeskSandbox)
