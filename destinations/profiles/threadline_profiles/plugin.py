"""threadline hooks: the `profiles` destination, the `threadline profiles` commands, and
resolution once a run has finished."""

from __future__ import annotations

from typing import Any

from threadline import hookimpl

from threadline_profiles.destination import ProfilesDestination, finish_run


@hookimpl
def register_destinations(register):  # type: ignore[no-untyped-def]
    register(ProfilesDestination)


@hookimpl
def register_commands(cli: Any) -> None:
    from threadline_profiles.cli import profiles
    from threadline_profiles.cli_audiences import audiences_group
    from threadline_profiles.cli_activation import forget_command, push_command

    cli.add_command(profiles)
    cli.add_command(audiences_group)
    cli.add_command(push_command)
    cli.add_command(forget_command)


@hookimpl
def run_finished(run: Any, report: Any) -> None:
    run_id = getattr(run, "run_id", None)
    if run_id:
        finish_run(run_id)
