"""threadline-direct-mail: audiences as CSV files of names and postal addresses for a print house."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["DirectMail", "DirectMailConfig", "latest_export"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"DirectMail": "threadline_direct_mail.destination", "DirectMailConfig": "threadline_direct_mail.destination", "latest_export": "threadline_direct_mail.destination"})

if TYPE_CHECKING:
    from threadline_direct_mail.destination import DirectMail, DirectMailConfig, latest_export
