"""Registers the `tiktok_audiences` destination and its sandbox with threadline (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_audience_destinations(register):
    register("tiktok_audiences", "threadline_tiktok_audiences.destination:TikTokAudiences")


@hookimpl
def register_sandboxes(register):
    register("tiktok_audiences", "threadline_tiktok_audiences.sandbox:TikTokAudiencesSandbox")
