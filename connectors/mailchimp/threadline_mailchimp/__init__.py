"""threadline-mailchimp: the Mailchimp API as a threadline source."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["MailchimpConfig", "MailchimpSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"MailchimpConfig": "threadline_mailchimp.source", "MailchimpSource": "threadline_mailchimp.source"})

if TYPE_CHECKING:
    from threadline_mailchimp.source import MailchimpConfig, MailchimpSource
