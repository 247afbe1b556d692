"""Registers the `mailchimp` source and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_mailchimp.sandbox import MailchimpSandbox
from threadline_mailchimp.source import MailchimpSource


@hookimpl
def register_sources(register):
    register(MailchimpSource)


@hookimpl
def register_sandboxes(register):
    register("mailchimp", MailchimpSandbox)
