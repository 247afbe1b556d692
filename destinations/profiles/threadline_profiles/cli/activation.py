"""`threadline push` and `threadline forget`: audiences out to platforms, people out of everything."""

from __future__ import annotations

import json

import click

from threadline_profiles.cli.profiles import store_config, store_options
from threadline_profiles.store import ProfileStore


@click.command("push")
@store_options
@click.argument("activations", nargs=-1)
@click.option("--history", is_flag=True, help="Show the last pushes instead of pushing.")
def push_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                 activations: tuple[str, ...], history: bool) -> None:
    """Push audiences to their destinations now: every activation of the job, or the ones named.

    Each push sends only who joined and who left since the last successful push (or the whole
    audience, for `mode: mirror`). Exit status 1 when any push failed."""
    from threadline_profiles.activation.push import push_all, push_history

    config = store_config(job, destination, path, dsn, schema)
    with ProfileStore.open(config) as store:
        store.config = config  # the job's activations, not only the saved mappings
        if history:
            for row in push_history(store, 50):
                click.echo(f"{row['finished_at']}  {row['activation']:<24} {row['outcome']:<14} members {row['members']:>8,}  "
                           f"+{row['adds']:,} −{row['removes']:,}  accepted {row['accepted']:,}  rejected {row['rejected']:,}")
            return
        outcomes = push_all(store, only=list(activations) or None, quiet=True)
    if not outcomes:
        click.echo("nothing to push: the store has no activations (add `activations:` to its config)")
    for outcome in outcomes:
        click.echo(outcome.summary())
    if any(o.outcome == "failed" for o in outcomes):
        raise SystemExit(1)


@click.command("forget")
@store_options
@click.option("--email", help="Forget the person holding this email.")
@click.option("--phone", help="Forget the person holding this phone number.")
@click.option("--id", "profile_id", help="Forget a profile by id.")
@click.option("--region", default="", help="Country for a phone written without +code (e.g. US).")
@click.option("--push/--no-push", "push_now", default=True, help="Push the removals to every platform now (default).")
@click.option("--json", "as_json", is_flag=True, help="Print the audit entry as JSON.")
def forget_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                   email: str | None, phone: str | None, profile_id: str | None, region: str, push_now: bool,
                   as_json: bool) -> None:
    """Erase a person from the profile store for good (right to erasure).

    Deletes their records, keeps only hashed tombstones so later syncs drop them, rebuilds,
    removes them from every audience they were pushed to, and writes an audit entry."""
    from threadline_profiles.activation.push import push_all
    from threadline_profiles.api import forget

    if sum(x is not None for x in (email, phone, profile_id)) != 1:
        raise click.UsageError("give exactly one of --email, --phone, --id")
    config = store_config(job, destination, path, dsn, schema)
    with ProfileStore.open(config) as store:
        store.config = config
        result = forget(store, email=email, phone=phone, profile_id=profile_id, region=region)
        outcomes = push_all(store, only=sorted(result.pending_removals), quiet=True) if push_now and result.pending_removals else []
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps(asdict(result), indent=2))
    else:
        click.echo(result.summary())
        if result.shared_identifiers_kept:
            click.echo(f"({result.shared_identifiers_kept} identifier(s) shared with people not forgotten were not tombstoned)")
    for outcome in outcomes:
        click.echo(outcome.summary())
    if any(o.outcome == "failed" for o in outcomes):
        raise SystemExit(1)
