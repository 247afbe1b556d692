"""threadline-mailchimp: the Mailchimp API as a threadline source."""

from threadline_mailchimp.source import MailchimpConfig, MailchimpSource

__all__ = ["MailchimpConfig", "MailchimpSource"]
