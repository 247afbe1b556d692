"""Registers the `klaviyo_lists` destination and its sandbox (entry point `threadline`)."""

from threadline import hookimpl

from threadline_klaviyo_lists.destination import KlaviyoLists
from threadline_klaviyo_lists.sandbox import KlaviyoListsSandbox


@hookimpl
def register_destinations(register):
    register(KlaviyoLists)


@hookimpl
def register_sandboxes(register):
    register("klaviyo_lists", KlaviyoListsSandbox)
