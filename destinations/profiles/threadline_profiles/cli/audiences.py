"""`threadline audiences list|preview`: what the audiences are and who would be in them."""

from __future__ import annotations

import json
from typing import Any

import click

from threadline_profiles.cli.profiles import store_config, store_options
from threadline_profiles.store import ProfileStore


@click.group("audiences")
def audiences_group() -> None:
    """Audiences: named filters over profile traits, with exclusions, suppression and consent."""


@audiences_group.command("list")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def list_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                 as_json: bool) -> None:
    """Every declared audience with its size at the last build."""
    from threadline_profiles.audiences.membership import check_audiences, latest_sizes

    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        config = store.config
        check_audiences(config)
        sizes = latest_sizes(store)
    rows = []
    for name, spec in config.audiences.items():
        s = sizes.get(name)
        rows.append({"audience": name, "where": spec.where, "exclude": spec.exclude, "requires_consent": spec.requires_consent,
                     "min_size": spec.min_size, "size": s["size"] if s else None,
                     "added": s["added"] if s else None, "removed": s["removed"] if s else None,
                     "status": s["status"] if s else "not evaluated yet", "build_id": s["build_id"] if s else None})
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no audiences declared (add `audiences:` to the profiles destination's config)")
        return
    width = max(len(r["audience"]) for r in rows)
    for r in rows:
        size = f"{r['size']:>10,}  +{r['added']:,} −{r['removed']:,}" if r["size"] is not None else f"{'–':>10}"
        notes = [r["status"]] if r["status"] != "ok" else []
        notes += [f"excludes {', '.join(r['exclude'])}"] if r["exclude"] else []
        notes += [f"needs {', '.join(r['requires_consent'])} consent"] if r["requires_consent"] else []
        click.echo(f"{r['audience'].ljust(width)}  {size}   {r['where']}" + (f"   ({'; '.join(notes)})" if notes else ""))


@audiences_group.command("preview")
@click.argument("name")
@store_options
@click.option("--sample", default=5, show_default=True, help="How many members to show (emails masked).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def preview_command(name: str, job: str | None, destination: str | None, path: str | None, dsn: str | None,
                    schema: str | None, sample: int, as_json: bool) -> None:
    """Evaluate audience NAME as the job file says now, against the traits of the last build:
    size, why profiles were left out, overlap with the other audiences, what the decisions of
    the campaigns carrying it would do, and a masked sample."""
    from threadline_profiles.audit import log
    from threadline_profiles.decisions.preview import preview

    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        result = preview(store, name, sample)
        log.record(store, who=log.cli_user(), action="preview", subject=log.named("audience", name),
                   result=f"ok: size {result.size}, {len(result.sample)} shown masked")
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    click.echo(render_preview(result))


def render_preview(p: Any) -> str:
    from threadline_profiles.decisions.preview import reason_text

    as_of = f"traits as of {str(p.as_of)[:19]}" if p.as_of else "traits of the last build"
    small = f"   below min_size {p.min_size:,}: it would not be pushed" if p.size < p.min_size else ""
    lines = [f"audience {p.audience}: {p.where}", f"  {as_of}",
             f"  size      {p.size:>10,}{small}",
             f"  matched   {p.matched:>10,}",
             f"  left out  {p.excluded_by_exclusion:>10,}  members of excluded audiences",
             f"            {p.excluded_suppressed:>10,}  on a suppression list",
             f"            {p.excluded_no_consent:>10,}  without a required consent"]
    if p.unusable_suppression:
        lines.append("  (suppression values that are neither a valid email nor phone: "
                     + ", ".join(f"{k} {v:,}" for k, v in p.unusable_suppression.items()) + ")")
    lines.append("  a push would leave out for lack of consent: "
                 + " · ".join(f"{ch} {n:,}" for ch, n in p.lacking_consent.items()))
    if p.overlap:
        lines.append("  overlap: " + " · ".join(f"{a} {n:,}" for a, n in p.overlap.items()))
    for campaign, reasons in p.decisions.items():
        lines.append(f"  campaign {campaign}: " + " · ".join(f"{reason_text(r, None)} {n:,}" for r, n in reasons.items()))
    if p.sample:
        lines.append(f"  sample ({len(p.sample)} of {p.size:,}):")
        for row in p.sample:
            values = "  ".join(f"{k}={_short(v)}" for k, v in row.items() if k not in ("profile_id", "email"))
            lines.append(f"    {row['profile_id']}  {row['email'] or '(no email)':<24} {values}".rstrip())
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if hasattr(value, "isoformat"):
        return str(value)[:16]
    return str(value)
