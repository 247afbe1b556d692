"""Registers the `mailchimp_audiences` destination and its sandbox (entry point `threadline`)."""

from threadline import hookimpl

from threadline_mailchimp_audiences.destination import MailchimpAudiences
from threadline_mailchimp_audiences.sandbox import MailchimpAudiencesSandbox


@hookimpl
def register_destinations(register):
    register(MailchimpAudiences)


@hookimpl
def register_sandboxes(register):
    register("mailchimp_audiences", MailchimpAudiencesSandbox)
