"""threadline-direct-mail: audiences as CSV files of names and postal addresses for a print house."""

from threadline_direct_mail.destination import DirectMail, DirectMailConfig, latest_export

__all__ = ["DirectMail", "DirectMailConfig", "latest_export"]
