"""threadline-mailchimp-audiences: profile-store audiences as Mailchimp tags or static segments."""

from threadline_mailchimp_audiences.destination import MailchimpAudiences, MailchimpAudiencesConfig

__all__ = ["MailchimpAudiences", "MailchimpAudiencesConfig"]
