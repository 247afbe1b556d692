"""Registers the `meta_audiences` destination and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_meta_audiences.destination import MetaAudiences
from threadline_meta_audiences.sandbox import MetaSandbox


@hookimpl
def register_destinations(register):
    register(MetaAudiences)


@hookimpl
def register_sandboxes(register):
    register("meta_audiences", MetaSandbox)
