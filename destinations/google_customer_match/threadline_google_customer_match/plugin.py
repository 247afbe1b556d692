"""Registers the two Google Customer Match destinations and their sandbox (entry point `threadline`)."""

from threadline import hookimpl

from threadline_google_customer_match.customer_match import GoogleCustomerMatch
from threadline_google_customer_match.data_manager import GoogleDataManager
from threadline_google_customer_match.sandbox import GoogleSandbox


@hookimpl
def register_destinations(register):
    register(GoogleDataManager)
    register(GoogleCustomerMatch)


@hookimpl
def register_sandboxes(register):
    register(GoogleSandbox.name, GoogleSandbox)
