"""`threadline audit`: read the audit log, or check that nobody altered it."""

from __future__ import annotations

import json

import click

from threadline_profiles.cli.profiles import store_config, store_options
from threadline_profiles.store import ProfileStore


@click.command("audit")
@store_options
@click.option("--action", type=click.Choice(["lookup", "export", "preview", "push", "erasure", "sizes", "traits", "audit", "token", "probe",
                                            "enrichment"]),
              help="Only entries of this action.")
@click.option("--who", help="Only entries of this caller (a token id such as tok_1a2b3c4d, or cli:<user>).")
@click.option("--email", help="Only entries about the person with this email (matched by its keyed hash).")
@click.option("--phone", help="Only entries about the person with this phone number (matched by its keyed hash).")
@click.option("--id", "profile_id", help="Only entries about this profile id.")
@click.option("--region", default="", help="Country for a phone written without +code (e.g. US).")
@click.option("--since", help="Only entries at or after this UTC time (ISO 8601: 2026-12-01 or 2026-12-01T09:00).")
@click.option("--limit", default=50, show_default=True, help="Show the newest N entries (0: all).")
@click.option("--verify", is_flag=True, help="Check the hash chain instead of listing: exit 1 if any entry was altered, removed or inserted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def audit_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                  action: str | None, who: str | None, email: str | None, phone: str | None, profile_id: str | None,
                  region: str, since: str | None, limit: int, verify: bool, as_json: bool) -> None:
    """The audit log: every lookup, export, preview, push and erasure, by the API or the CLI,
    with who, when, why and the result. People appear as keyed hashes, never as values."""
    from threadline_profiles.audit import log

    if sum(x is not None for x in (email, phone, profile_id)) > 1:
        raise click.UsageError("give at most one of --email, --phone, --id")
    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        if verify:
            checked = log.verify(store)
            if as_json:
                click.echo(json.dumps({"ok": checked.ok, "entries": checked.entries, "head": checked.head,
                                       "breaks": checked.breaks}, indent=2))
            elif checked.ok:
                click.echo(f"audit log intact: {checked.entries:,} entries, chain head {checked.head or '(empty)'}")
            else:
                click.echo(f"audit log TAMPERED: {len(checked.breaks)} problem(s) in {checked.entries:,} entries")
                for line in checked.breaks:
                    click.echo(f"  {line}")
            if not checked.ok:
                raise SystemExit(1)
            return
        subject = log.person(store, email=email, phone=phone, profile_id=profile_id, region=region) \
            if any(x is not None for x in (email, phone, profile_id)) else None
        found = log.entries(store, action=action, who=who, subject=subject,
                            since=since.replace(" ", "T") if since else None, limit=limit or None)
        log.record(store, who=log.cli_user(), action="audit", result=f"ok: {len(found)} entries listed",
                   subject=subject or log.Subject(), detail={"filters": sorted(
                       k for k, v in {"action": action, "who": who, "since": since, "person": subject}.items() if v)})
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in found], indent=2))
        return
    if not found:
        click.echo("no audit entries match")
        return
    for e in found:
        about = f"{e.subject_kind}:{e.subject[:12]}" if e.subject_kind in log.PERSONAL_KINDS else \
            f"{e.subject_kind}:{e.subject}" if e.subject_kind else "-"
        why = f"  reason: {e.reason}" if e.reason else ""
        click.echo(f"{e.seq:>6}  {e.logged_at[:19]}  {e.who:<22} {e.action:<8} {about:<28} {e.result}{why}")
