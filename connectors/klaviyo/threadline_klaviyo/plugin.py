"""Registers the `klaviyo` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_klaviyo.sandbox import KlaviyoSandbox
from threadline_klaviyo.source import KlaviyoSource


@hookimpl
def register_sources(register):
    register(KlaviyoSource)


@hookimpl
def register_sandboxes(register):
    register("klaviyo", KlaviyoSandbox)
