"""Entry point of the `rest` plugin: the `rest` source and its sandbox."""

from threadline import hookimpl
from threadline.sandbox import CustomersSandbox

from threadline_rest.source import RestApiSource


@hookimpl
def register_sources(register):
    register(RestApiSource)


@hookimpl
def register_sandboxes(register):
    register("rest", CustomersSandbox)
