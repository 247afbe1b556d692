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
    from threadline_profiles.audit import log as audit_log

    config = store_config(job, destination, path, dsn, schema)
    with ProfileStore.open(config) as store:
        store.config = config  # the job's activations, not only the saved mappings
        if history:
            for row in push_history(store, 50):
                click.echo(f"{row['finished_at']}  {row['activation']:<24} {row['outcome']:<14} members {row['members']:>8,}  "
                           f"+{row['adds']:,} −{row['removes']:,}  accepted {row['accepted']:,}  rejected {row['rejected']:,}")
            return
        outcomes = push_all(store, only=list(activations) or None, quiet=True)
        audit_log.record_pushes(store, audit_log.cli_user(), outcomes)
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
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--even-if-unknown", is_flag=True,
              help="Nobody holds it yet: tombstone the email or phone anyway, so it is dropped as soon as it lands.")
@click.option("--json", "as_json", is_flag=True, help="Print the audit entry as JSON.")
def forget_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                   email: str | None, phone: str | None, profile_id: str | None, region: str, push_now: bool,
                   yes: bool, even_if_unknown: bool, as_json: bool) -> None:
    """Erase a person from the profile store for good (right to erasure).

    Deletes their records (and, with --job, their rows in the job's quarantine), keeps only
    keyed-hash tombstones so later syncs drop them, rebuilds, removes them from every audience
    they were pushed to, compacts the store so no freed block keeps them, and writes an audit
    entry. Someone nobody holds is not erased: nothing changes."""
    from threadline_profiles.activation.forget import find_person, state_dir_of
    from threadline_profiles.api import forget
    from threadline_profiles.audit import log

    if sum(x is not None for x in (email, phone, profile_id)) != 1:
        raise click.UsageError("give exactly one of --email, --phone, --id")
    config = store_config(job, destination, path, dsn, schema)
    with ProfileStore.open(config) as store:
        store.config = config
        person = find_person(store, email=email, phone=phone, profile_id=profile_id, region=region)
        subject = log.person(store, email=email, phone=phone, profile_id=profile_id, region=region)
        if not person.found and not even_if_unknown:
            log.record(store, who=log.cli_user(), action="erasure", subject=subject, result="not found: nothing changed")
            click.echo(f"nobody in the profile store holds {person.asked}; nothing was changed "
                       "(check the spelling; if they landed since the last build, run `threadline profiles build` "
                       "first; --even-if-unknown blocks it before it lands)")
            return
        if person.found:
            streams = ", ".join(f"{n} in {s}" for s, n in person.by_stream().items())
            what = f"{len(person.profile_ids)} profile(s): {len(person.records)} record(s) ({streams})"
        else:
            what = f"nobody yet: {person.asked} will be tombstoned, so a record carrying it is dropped when it lands"
        if not yes and not click.confirm(f"erase {what} from {store.engine.location} for good?"):
            click.echo("nothing was changed")
            return
        if not job:
            click.echo("(quarantined rows were not searched: give the job file with --job to reach its quarantine)")
        result = forget(store, person=person, push=push_now, state_dir=state_dir_of(job) if job else None,
                        even_if_unknown=even_if_unknown)
        log.record(store, who=log.cli_user(), action="erasure", subject=subject,
                   result=f"ok: {result.profiles} profile(s), {result.records} record(s), {result.tombstones} tombstone(s)",
                   detail={"forget_audit_id": result.audit_id})
        log.record_pushes(store, log.cli_user(), result.pushes)
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps({k: v for k, v in asdict(result).items() if k != "pushes"}, indent=2))
    else:
        click.echo(result.summary())
        if result.shared_identifiers_kept:
            click.echo(f"({result.shared_identifiers_kept} identifier(s) shared with people not forgotten were not tombstoned)")
    for outcome in result.pushes:
        click.echo(outcome.summary())
    if any(o.outcome == "failed" for o in result.pushes):
        raise SystemExit(1)
