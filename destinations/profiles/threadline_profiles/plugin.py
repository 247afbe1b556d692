"""threadline hooks: the `profiles` destination and the `threadline profiles|audiences|push|forget|
serve|audit` commands. Building and pushing after a run is the destination's `finish_run` step, not a hook.

Everything is registered by import path: the store (DuckDB, psycopg, sqlglot) is imported only
when a sync or a command uses it, so `threadline --help` imports none of it.
"""

from __future__ import annotations

from typing import Any

from threadline import hookimpl


@hookimpl
def register_destinations(register):  # type: ignore[no-untyped-def]
    register("profiles", "threadline_profiles.destination:ProfilesDestination")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_lazy_command("profiles", "threadline_profiles.cli.profiles:profiles",
                         "The unified profile store: build profiles, look them up, explain them.")
    cli.add_lazy_command("audiences", "threadline_profiles.cli.audiences:audiences_group",
                         "Audiences: named filters over profile traits, with exclusions, suppression and consent.")
    cli.add_lazy_command("push", "threadline_profiles.cli.activation:push_command",
                         "Push audiences to their destinations now.")
    cli.add_lazy_command("forget", "threadline_profiles.cli.activation:forget_command",
                         "Erase a person from the profile store for good (right to erasure).")
    cli.add_lazy_command("audit", "threadline_profiles.cli.audit:audit_command",
                         "The audit log of every lookup, export, preview, push and erasure; --verify checks it.")
    cli.add_lazy_command("serve", "threadline_profiles.serve.cli:serve_group",
                         "Serve the profile lookup API: tokens with roles, rate limits, every call audited.")
