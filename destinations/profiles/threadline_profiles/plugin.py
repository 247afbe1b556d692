"""threadline hooks: the `profiles` destination and the `threadline profiles|audiences|push|forget`
commands. Building and pushing after a run is the destination's `finish_run` step, not a hook."""

from __future__ import annotations

from typing import Any

from threadline import hookimpl

from threadline_profiles.destination import ProfilesDestination


@hookimpl
def register_destinations(register):  # type: ignore[no-untyped-def]
    register(ProfilesDestination)


@hookimpl
def register_commands(cli: Any) -> None:
    from threadline_profiles.cli.activation import forget_command, push_command
    from threadline_profiles.cli.audiences import audiences_group
    from threadline_profiles.cli.profiles import profiles

    cli.add_command(profiles)
    cli.add_command(audiences_group)
    cli.add_command(push_command)
    cli.add_command(forget_command)
