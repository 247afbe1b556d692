"""Registers the `mailchimp_audiences` destination and its sandbox with threadline (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_audience_destinations(register):
    register("mailchimp_audiences", "threadline_mailchimp_audiences.destination:MailchimpAudiences")


@hookimpl
def register_sandboxes(register):
    register("mailchimp_audiences", "threadline_mailchimp_audiences.sandbox:MailchimpAudiencesSandbox")
