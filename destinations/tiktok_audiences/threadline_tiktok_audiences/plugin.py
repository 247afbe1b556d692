"""Registers the `tiktok_audiences` destination and its sandbox with threadline (entry point `threadline`)."""

from threadline import hookimpl

from threadline_tiktok_audiences.destination import TikTokAudiences
from threadline_tiktok_audiences.sandbox import TikTokAudiencesSandbox


@hookimpl
def register_destinations(register):
    register(TikTokAudiences)


@hookimpl
def register_sandboxes(register):
    register("tiktok_audiences", TikTokAudiencesSandbox)
