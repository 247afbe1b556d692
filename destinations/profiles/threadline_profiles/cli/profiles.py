"""`threadline profiles ...`: build profiles and look them up from the command line.

The store is named by a job file (its `profiles` destination) or directly by `--path`
(a DuckDB file) or `--dsn`/`--schema` (Postgres).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import click
from threadline.contracts import ConfigError, ThreadlineError

from threadline_profiles import api
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.resolve.lookup import Profile
from threadline_profiles.store import ProfileStore


def store_config(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None) -> ProfilesConfig:
    """The store's config from a job file, or from the options naming it directly."""
    if job:
        from threadline.job import load_job

        loaded = load_job(job)
        names = [n for n, d in loaded.destinations.items() if d.connector == "profiles"]
        if destination:
            if destination not in names:
                raise ConfigError(f"the job has no profiles destination named {destination!r}",
                                  hint=f"profiles destinations in {job}: {', '.join(names) or '(none)'}")
            names = [destination]
        if len(names) != 1:
            raise ConfigError(f"{job} has {len(names)} profiles destinations", hint="say which with --destination")
        raw = loaded.destinations[names[0]].config
        return loaded.validate_config(("destinations", names[0], "config"), ProfilesConfig, raw)  # type: ignore[return-value]
    if dsn:
        from threadline_profiles.engines.postgres_engine import server, store_exists

        config = ProfilesConfig.model_validate({"engine": "postgres", "dsn": dsn, "schema": schema or "threadline_profiles"})
        if not store_exists(config.dsn, config.db_schema):  # a mistyped schema never becomes a new, empty store
            raise ConfigError(f"there is no profile store in schema {config.db_schema} at {server(config.dsn)}",
                              hint="give the dsn and schema of an existing store, or the job file that creates it")
        return config
    if path:
        if not Path(path).exists():  # a mistyped path never becomes a new, empty store
            raise ConfigError(f"there is no profile store at {path}",
                              hint="give the path of an existing store, or the job file that creates it")
        return ProfilesConfig.model_validate({"path": path})
    raise ConfigError("say which profile store to use", hint="give the job file (job.yaml or --job job.yaml), --path profiles.duckdb, or --dsn")


def store_options(fn: Any) -> Any:
    """The options naming a store, and the job file as a positional JOB_FILE or `--job`, as
    every threadline command takes it. A command with positional names after it (`push`'s
    activations) gets a first word that is not a file back among them."""

    @functools.wraps(fn)
    def merged(*args: Any, job_file: str | None, job: str | None, **kwargs: Any) -> Any:
        if job_file is not None and isinstance(kwargs.get("name"), str) and Path(kwargs["name"]).is_file() \
                and not Path(job_file).is_file():  # `audiences preview job.yaml NAME`, the job first as elsewhere
            kwargs["name"], job_file = job_file, kwargs["name"]
        if job_file is not None:
            spill = "activations" in kwargs and (job is not None or not Path(job_file).is_file())
            if spill:
                kwargs["activations"] = (job_file, *kwargs["activations"])
            elif job is not None and job != job_file:
                raise click.UsageError(f"two job files given ({job_file} and --job {job}); give one")
            elif not Path(job_file).is_file():
                raise click.UsageError(f"job file {job_file!r} does not exist")
            else:
                job = job_file
        return fn(*args, job=job, **kwargs)

    for option in reversed([
        click.argument("job_file", required=False, type=click.Path(dir_okay=False)),
        click.option("-j", "--job", type=click.Path(exists=True, dir_okay=False), help="A job file with a profiles destination."),
        click.option("--destination", help="Which profiles destination of the job (when it has several)."),
        click.option("--path", type=click.Path(dir_okay=False), help="A DuckDB profile store file."),
        click.option("--dsn", help="A Postgres profile store (postgresql://user@host:port/db)."),
        click.option("--schema", help="The Postgres schema of the store."),
    ]):
        merged = option(merged)
    return merged


@click.group("profiles")
def profiles() -> None:
    """The unified profile store: build profiles, look them up, explain them."""


@profiles.command("build")
@store_options
@click.option("--full", is_flag=True, help="Resolve every record again, not only those around what changed.")
@click.option("--refit", is_flag=True, help="Fit the agreement model again from every record (a full build); "
              "otherwise builds reuse the stored one.")
def build_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                  full: bool, refit: bool) -> None:
    """Normalize, resolve and merge what landed since the last build, and write the report."""
    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        if store.config.mappings and job is not None:  # a build from the job keeps its settings for --path commands
            store.save_settings()
        result = api.build(store, full=full, refit=refit)
    click.echo(f"{result.records:,} records → {result.profiles:,} profiles in {result.seconds:.1f}s, {result.how()}")
    if result.report_path:
        click.echo(f"report: {result.report_path}")


@profiles.command("get")
@store_options
@click.option("--email", help="Find the profile holding this email.")
@click.option("--phone", help="Find the profile holding this phone number.")
@click.option("--id", "profile_id", help="Find a profile by id (merged ids lead to the profile they joined).")
@click.option("--region", default="", help="Country for a phone written without +code (e.g. US).")
@click.option("--explain", is_flag=True, help="Show which rule and identifier linked each record, and the links refused.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--reason", default="", help="Why you look this person up (kept in the audit log).")
def get_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                email: str | None, phone: str | None, profile_id: str | None, region: str, explain: bool, as_json: bool,
                reason: str) -> None:
    """Show one unified profile: golden record with lineage, member records, and links.
    Every lookup is written to the audit log (`threadline audit`)."""
    from threadline_profiles.audit import log

    if sum(x is not None for x in (email, phone, profile_id)) != 1:
        raise click.UsageError("give exactly one of --email, --phone, --id")
    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        subject = log.person(store, email=email, phone=phone, profile_id=profile_id, region=region)
        try:
            found = api.find(store, email=email, phone=phone, profile_id=profile_id, region=region)
        except ThreadlineError as exc:
            log.record(store, who=log.cli_user(), action="lookup", subject=subject, reason=reason,
                       result=f"refused: {type(exc).__name__}")
            raise
        log.record(store, who=log.cli_user(), action="lookup", subject=subject, reason=reason,
                   result=f"ok: {len(found)} profile(s)" if found else "not found")
    if not found:
        click.echo("no profile found", err=True)
        raise SystemExit(1)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in found], indent=2, default=str))
        return
    for profile in found:
        click.echo(render(profile, explain))
    if len(found) > 1:
        click.echo(f"({len(found)} profiles hold this value; the guards kept them apart)")


def render(profile: Profile, explain: bool) -> str:
    lines = [f"profile {profile.profile_id}  ({len(profile.members)} records, created {profile.created_at})"]
    if profile.asked_for:
        lines.append(f"  ({profile.asked_for} was merged into this profile)")
    lines.append("  golden record:")
    width = max((len(k) for k in profile.golden), default=0)
    for name, g in profile.golden.items():
        lines.append(f"    {name.ljust(width)}  {g.value}   ← {g.record_key} ({g.rule}, seen {g.seen_at})")
    lines.append("  records:")
    for m in profile.members:
        ids = ", ".join(f"{v['field']}={v['value'] if v['status'] == 'ok' else '(' + v['status'] + ': ' + v['reason'] + ')'}"
                        for v in m.values)
        lines.append(f"    {m.record_key}  seen {m.seen_at}  {ids}")
    if explain:
        lines.append("  why these records are one person:")
        lines.extend(f"    {line}" for line in profile.explain() or ["(a single record)"])
        if profile.refused:
            lines.append("  links refused (weight: log2 odds of one person; a limit refuses the weakest first):")
            lines.extend(f"    {line}" for line in profile.explain_refused())
    if profile.history:
        lines.append("  history:")
        lines.extend(f"    {h['changed_at']}  {h['profile_id']} {h['event']} {h['related_profile_id'] or ''}".rstrip()
                     for h in profile.history)
    return "\n".join(lines)


@profiles.command("report")
@store_options
def report_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None) -> None:
    """Print where the last build's HTML report is."""
    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        report = store.engine.scalar("SELECT report FROM tl_builds ORDER BY finished_at DESC LIMIT 1")
    click.echo(report or "no build has written a report yet")
    if report and not Path(report).exists():
        click.echo("(the file is gone; run `threadline profiles build` to write a new one)")


@profiles.command("rotate-key")
@store_options
@click.option("--decrypt", is_flag=True, help="Store it unencrypted from now on (the opt-out), instead of a new key.")
def rotate_key_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                       decrypt: bool) -> None:
    """Re-encrypt a store under a new key (an unencrypted store gets encrypted).

    DuckDB: the store is copied into a new file under the new key and swapped in. Postgres: every
    sealed chunk is re-encrypted in one transaction. Either way the old key no longer opens it.
    A key from $THREADLINE_STORE_KEY is replaced by $THREADLINE_STORE_NEW_KEY; a key file by a
    new random one. Run it while nothing else uses the store."""
    from threadline_profiles.engines import duckdb_crypto
    from threadline_profiles.engines.duckdb_engine import connect_duckdb

    config = store_config(job, destination, path, dsn, schema)
    if config.engine == "postgres":
        from threadline_profiles.engines.postgres_engine import rotate_key

        click.echo(rotate_key(config.dsn, config.db_schema, config.key_file, decrypt=decrypt))
        return
    if config.engine != "duckdb":
        raise ConfigError("rotate-key is for DuckDB and Postgres stores: a Spark store is protected by its cluster's storage",
                          hint="encrypt the warehouse's storage (see the profiles README)")
    if not config.path.exists():  # never make an empty store to encrypt (from a job file)
        raise ConfigError(f"there is no profile store at {config.path}", hint="give the path of an existing store")
    con, key = connect_duckdb(config.path, encryption="off")
    click.echo(duckdb_crypto.rotate(con, config.path, key, decrypt=decrypt))


@profiles.command("enrich")
@store_options
@click.option("--file", "partner_file", required=True, type=click.Path(dir_okay=False),
              help="The partner's CSV or Parquet file: a column of SHA-256 digests and attribute columns.")
@click.option("--source", required=True, help="The partner's name, kept as the attributes' lineage (enrichment:<source>).")
@click.option("--key", help="The column holding the digests (default: the one column named *sha256*).")
@click.option("--kind", type=click.Choice(["email", "phone"]), help="What was hashed (default: from the column name).")
@click.option("--attribute", "attributes", multiple=True, help="Keep only these columns (default: every other column).")
def enrich_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                   partner_file: str, source: str, key: str | None, kind: str | None, attributes: tuple[str, ...]) -> None:
    """Join a partner's file of hashed emails or phones to the profiles: print the match rate
    and keep the attributes of profiles that consented to `enrichment` (default: nobody).
    A file of plain or unnormalized identifiers is refused with the reason."""
    from threadline_profiles.audit import log

    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        result = api.enrich(store, Path(partner_file), source=source, key=key, kind=kind, attributes=list(attributes) or None)
        log.record(store, who=log.cli_user(), action="enrichment", subject=log.named("partner", source),
                   result=f"{result.matched} of {result.rows} matched, {result.profiles_enriched} profiles enriched",
                   detail={"file": Path(partner_file).name, "kind": result.kind, "attributes": result.attributes})
    click.echo(result.describe())
