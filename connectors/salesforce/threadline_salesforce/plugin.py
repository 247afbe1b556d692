"""Registers the `salesforce` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_salesforce.sandbox import SalesforceSandbox
from threadline_salesforce.source import SalesforceSource


@hookimpl
def register_sources(register):
    register(SalesforceSource)


@hookimpl
def register_sandboxes(register):
    register("salesforce", SalesforceSandbox)
