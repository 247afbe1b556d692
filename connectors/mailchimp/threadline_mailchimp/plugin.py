"""Registers the `mailchimp` source and its sandbox with threadline (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_sources(register):
    register("mailchimp", "threadline_mailchimp.source:MailchimpSource")


@hookimpl
def register_sandboxes(register):
    register("mailchimp", "threadline_mailchimp.sandbox:MailchimpSandbox")
