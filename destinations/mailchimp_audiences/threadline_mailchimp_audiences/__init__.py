"""threadline-mailchimp-audiences: profile-store audiences as Mailchimp tags or static segments."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["MailchimpAudiences", "MailchimpAudiencesConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"MailchimpAudiences": "threadline_mailchimp_audiences.destination", "MailchimpAudiencesConfig": "threadline_mailchimp_audiences.destination"})

if TYPE_CHECKING:
    from threadline_mailchimp_audiences.destination import MailchimpAudiences, MailchimpAudiencesConfig
