"""Registers the `linkedin_audiences` destination and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_linkedin_audiences.destination import LinkedInAudiences
from threadline_linkedin_audiences.sandbox import LinkedInAudiencesSandbox


@hookimpl
def register_destinations(register):
    register(LinkedInAudiences)


@hookimpl
def register_sandboxes(register):
    register("linkedin_audiences", LinkedInAudiencesSandbox)
