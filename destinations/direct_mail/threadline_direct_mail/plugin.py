"""Registers the `direct_mail` destination (entry point `threadline`). It writes files, so it
has no sandbox."""

from threadline import hookimpl

from threadline_direct_mail.destination import DirectMail


@hookimpl
def register_destinations(register):
    register(DirectMail)
