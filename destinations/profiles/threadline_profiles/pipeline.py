"""A build: normalize, resolve and merge what has landed, then publish the results.

A build is full (every record) or incremental (only the scope around what changed since
the last build; see incremental.py for which and why). Either way the stages are the same
SQL over the records they are given, written to `tl_work_*` tables (temporary on Postgres,
ordinary tables in the file on DuckDB: see duckdb_engine.stored), and
publish.py changes the published tables (`tl_members`, `tl_profiles`, `tl_golden`, ...) in
one transaction at the end. A build killed at any point therefore leaves the last complete
build in place; the next build starts over and gives what a clean build gives.

After the golden stage the work tables hold the profiles this build resolved (all of them
in a full build): `tl_work_members`, `tl_work_profiles` (and the view `tl_work_golden`); in an
incremental build `tl_work_stale` names the profiles whose published rows are replaced. A
table computed from them is published by adding it to `publish.TABLES` (by="profile_id").
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pyarrow as pa

from threadline_profiles.activation import forget
from threadline_profiles.activation.secret import StoreSecret
from threadline_profiles.audiences.membership import evaluate_audiences
from threadline_profiles.config import CUSTOMER_ID, IdentityRule, ProfilesConfig, StreamMapping
from threadline_profiles.decisions import contacts
from threadline_profiles.decisions.engine import decide_build
from threadline_profiles.engines.base import Engine, lit, work_table, work_view
from threadline_profiles.land.landing import LandedStream, landed_streams
from threadline_profiles.resolve import agreement, evidence, golden, hints, ids, incremental, link, publish, values
from threadline_profiles.resolve import model as agreement_model
from threadline_profiles.resolve.normalize_bulk import normalize_distinct
from threadline_profiles.resolve.placeholders import Blocklist
from threadline_profiles.traits.compute import publish_traits

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

NORMALIZE_BATCH = 500_000  # distinct values normalized at a time: bounds the memory Arrow needs


@dataclass
class BuildResult:
    """What one build did."""

    build_id: str
    run_id: str | None
    records: int
    profiles: int
    rules: list[str]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    distinct_values: int = 0  # values normalized by this build (an incremental one: only new ones)
    label_rounds: int = 0
    report_path: str | None = None
    mode: str = "full"  # or "incremental"
    why_full: str = ""
    resolved: int = 0  # records resolved again (all of them in a full build)
    model_version: int | None = None  # the agreement model it scored with (model.py); None: the rule is off
    refit: str = ""  # why it fitted the agreement model again ("": it reused the stored one)
    pushes: list = field(default_factory=list)  # PushOutcome of each activation pushed after the build

    def how(self) -> str:
        """Full or incremental, and why; and whether the agreement model was fitted or reused.
        One wording for the CLI, the sync's log line and the report."""
        if self.mode != "full":
            how = f"incremental build ({self.resolved:,} records resolved)"
        else:
            how = f"full build ({self.why_full})" if self.why_full else "full build"
        if self.model_version is not None:
            how += (f", agreement model v{self.model_version} fitted ({self.refit})" if self.refit
                    else f", agreement model v{self.model_version} reused")
        return how


@dataclass
class Setup:
    """What the mappings and settings make of resolution."""

    streams: list[tuple[LandedStream, StreamMapping]]
    id_types: set[str]
    traits: set[str]
    rules: list[IdentityRule]
    fuzzy: list[str]
    person_fields: list[str]
    always_merge: bool
    name_hints: bool = False  # fill missing names of tl_work_person from emails, handles and full names
    secret: StoreSecret | None = None  # the store's secret, to match tombstones (None: there are none)
    modelled: bool = False  # the agreement rule runs (it has blocks to compare in): a model is kept

    @property
    def person_columns(self) -> list[str]:
        """tl_work_person's columns besides rid (link.person_sql)."""
        return self.person_fields + [b for b, f in agreement.SERVING.items() if f in self.person_fields]

    @classmethod
    def of(cls, config: ProfilesConfig, streams: list[tuple[LandedStream, StreamMapping]]) -> Setup:
        id_types = {t for _, m in streams for t in m.identifiers.values()}
        traits = {t for _, m in streams for t in m.trait_columns()}
        rules = link.settings_rules(config.resolution, id_types, traits)
        fuzzy = link.agreement_fields(config.resolution.agreement, traits | id_types)
        person = link.person_fields(rules, fuzzy, traits)
        rule = config.resolution.agreement
        out = cls(streams, id_types, traits, rules, fuzzy, person, bool(config.resolution.always_merge),
                  bool(fuzzy) and rule is not None and rule.name_hints and hints.applies(person, traits | id_types))
        out.modelled = bool(fuzzy) and rule is not None and bool(agreement.usable_blocks(rule, fuzzy))
        return out

    @property
    def order(self) -> list[str]:
        """The rules in priority order, as clustering applies them."""
        manual = [link.MANUAL_RULE] if self.always_merge else []
        return manual + [r.name for r in self.rules] + ([link.AGREEMENT_RULE] if self.fuzzy else [])


def build(store: ProfileStore, run_id: str | None = None, *, report: bool = True, full: bool = False,
          refit: bool = False, on_stage: Callable[[str], None] | None = None) -> BuildResult:
    """Resolve what has landed (incrementally when it can; everything when `full`) and
    publish the results in one transaction. The agreement rule scores with the model stored
    by an earlier build (model.py) unless it is fitted again: when `refit`, or when
    `model.refit_reason` says so."""
    engine, config = store.engine, store.config
    settings = config.resolution
    started = time.monotonic()
    at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    build_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    timings: dict[str, float] = {}
    t = time.monotonic()

    def stage(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        timings[name] = round(now - t, 3)
        t = now
        if on_stage is not None:
            on_stage(name)

    setup = Setup.of(config, values.mapped_streams(config, landed_streams(store)))
    setup.secret = forget.tombstone_secret(store)  # before any work: a missing secret stops the build
    drop_work(engine)
    landed = values.landed_records_sql(setup.streams)
    use, refit_why = agreement_model.Reuse(), None
    if setup.modelled:
        agreement_model.ensure(engine)
        stored, fitted_under = agreement_model.load(engine, setup.fuzzy)
        refit_why = agreement_model.refit_reason(engine, stored, fitted_under, incremental.fingerprint(config), refit,
                                                 forgotten=incremental.tombstones_added(engine))
        use.stored = None if refit_why else stored
    plan = incremental.plan(engine, config, full, refit_why)
    if not plan.full and setup.modelled and not incremental.unchanged_besides_records(engine, config):
        plan = incremental.Plan(True, incremental.AGREEMENT_FULL)
    if not plan.full:
        plan = _find_scope(engine, config, setup, landed, use)
        stage("scope")
    scope = None if plan.full else "tl_work_scope"
    _extract(engine, setup, landed if plan.full else "SELECT * FROM tl_work_all", scope)
    stage("extract")
    _normalize(engine, config, setup, cached=not plan.full)
    stage("normalize")

    _keys(engine, setup, use)
    rounds = _resolve(engine, config, setup, scoped=not plan.full, use=use)
    stage("resolve")

    engine.run([ids.previous_sql(), ids.kept_sql(), ids.assign_sql(), ids.history_sql(build_id, at),
                ids.members_sql(), ids.profiles_sql(at)])
    _done_with(engine, "tl_work_comp", "tl_work_prev", "tl_work_kept")
    engine.run([] if plan.full else [incremental.stale_profiles_sql()])
    stage("ids")

    golden_fields = sorted(setup.traits | setup.id_types)
    by_rule: dict[str, list[str]] = {}
    for name in golden_fields:
        by_rule.setdefault(config.survivorship.rule_for(name), []).append(name)
    engine.run(golden.golden_sql(by_rule))
    stage("golden")

    resolved = engine.scalar("SELECT COUNT(*) FROM tl_work_rec") or 0
    parsed = engine.scalar(f"SELECT COUNT(*) FROM {publish.fresh_values_table(plan.full)}") or 0
    if plan.full:
        engine.run(publish.prepare_full())  # under new names, outside the transaction; the swap is renames only
    stage("prepare")
    with engine.transaction():
        engine.run(publish.swap_full() if plan.full else publish.replace_incremental())
        engine.run(publish.refresh_summaries(settings.max_records_per_value))
        records = engine.scalar("SELECT COUNT(*) FROM tl_members") or 0
        profiles = engine.scalar("SELECT COUNT(*) FROM tl_profiles") or 0
        fitted = use.model if use.stored is None else None
        if fitted is not None:  # kept as the next version, for the builds after this one
            fitted.records = records
            engine.run(agreement_model.publish_sql(fitted, build_id, at, incremental.fingerprint(config), setup.name_hints))
        version = (engine.scalar("SELECT MAX(version) FROM tl_model") if fitted is not None
                   else use.stored.version if use.stored is not None else None)
        engine.run(contacts.follow_merges_sql())  # caps and cooldowns count a merged person's contacts
        engine.run([
            "INSERT INTO tl_profile_history SELECT build_id, changed_at, profile_id, event, related_profile_id FROM tl_work_history",
            "INSERT INTO tl_builds (build_id, run_id, started_at, finished_at, records, profiles, report, mode, model_version) "
            f"VALUES ('{build_id}', {lit(run_id)}, CAST('{at}' AS TIMESTAMP), "
            f"CURRENT_TIMESTAMP, {records}, {profiles}, NULL, {lit('full' if plan.full else 'incremental')}, "
            f"{'NULL' if version is None else int(version)})",
            *incremental.meta_sql(config),
            *incremental.tombstones_meta_sql(engine),
        ])
    stage("publish")
    publish_traits(store, build_id)  # traits and consent, from the published profiles
    stage("traits")
    evaluate_audiences(store, build_id)  # membership of this build, kept as history
    stage("audiences")
    decide_build(store, build_id)  # who gets which campaign, from the contacts platforms accepted
    stage("decisions")

    result = BuildResult(build_id, run_id, records, profiles, setup.order, 0.0, timings, parsed, rounds,
                         mode="full" if plan.full else "incremental", why_full=plan.reason, resolved=resolved,
                         model_version=None if version is None else int(version), refit=refit_why or "")
    if report:
        publish_report(store, result)
        stage("report")
    drop_work(engine)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def publish_report(store: ProfileStore, result: BuildResult) -> None:
    """Write the build's HTML report and record where it is (`threadline profiles report`)."""
    from threadline_profiles.report.page import write_report

    path = write_report(store, result)
    result.report_path = str(path)
    store.engine.execute(f"UPDATE tl_builds SET report = {lit(str(path))} WHERE build_id = {lit(result.build_id)}")


# --------------------------------------------------------------------------- stages


def _find_scope(engine: Engine, config: ProfilesConfig, setup: Setup, landed: str,
                use: agreement_model.Reuse) -> incremental.Plan:
    """Compare with the last build, resolve the fresh records alone to learn their keys (and,
    with the agreement rule, the pairs they make with the stored model), then close the
    scope. Turns into a full build when the scope is most of the store."""
    engine.run([work_table("tl_work_all", f"AS {landed}"), incremental.changes_sql(), incremental.fresh_sql()])
    _extract(engine, setup, "SELECT * FROM tl_work_all", "tl_work_fresh")
    _normalize(engine, config, setup, cached=True)
    _keys(engine, setup, use)
    engine.run(incremental.vanished_sql() + [incremental.fresh_keys_sql()])
    if use.stored is not None:
        _fresh_pairs(engine, config, setup, use.stored)
        use.sizes = "tl_work_gbs"  # the scope's blocks are as large as they are in the whole store
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in PASS_TABLES])
    incremental.close_scope(engine, config, "tl_work_bseed" if use.stored is not None else None)
    total = engine.scalar("SELECT COUNT(*) FROM tl_work_all") or 0
    in_scope = engine.scalar("SELECT COUNT(*) FROM tl_work_all WHERE record_key IN (SELECT record_key FROM tl_work_scope)") or 0
    if in_scope > config.incremental_up_to * total:
        use.sizes = None
        return incremental.Plan(True, f"{in_scope:,} of {total:,} records are linked to what changed, over "
                                      f"incremental_up_to {config.incremental_up_to:.0%}")
    return incremental.Plan(False, "")


def _fresh_pairs(engine: Engine, config: ProfilesConfig, setup: Setup, stored: agreement.AgreementModel) -> None:
    """The agreement rule's part of the scope (incremental.py): every record's matching fields
    now, the blocks that crossed `max_block` or `refine_over`, and the fresh records' pairs scored with the
    stored model; those it would link become pair keys in tl_work_fkeys."""
    rule = config.resolution.agreement
    blocks = agreement.usable_blocks(rule, setup.fuzzy)
    agreement.require_comparisons(engine)
    engine.run(incremental.current_person_sql(setup.person_columns) + [
        *incremental.block_changes_sql(blocks, setup.fuzzy, rule.max_block, rule.refine_over),
        *incremental.fresh_candidates_sql(rule.max_block, rule.refine_over),
        work_table(
            "tl_work_fcmp",
            f"AS SELECT c.a, c.b, {agreement.levels_select(setup.fuzzy)} FROM tl_work_fcand AS c "
            "JOIN tl_work_fperson AS x ON x.record_key = c.a JOIN tl_work_fperson AS y ON y.record_key = c.b"),
        "DROP TABLE IF EXISTS tl_work_tf",
        agreement.stored_frequencies_sql(setup.fuzzy),
        agreement.score_sql(stored, "tl_work_fcmp", "tl_work_fperson", "record_key", "tl_work_fscore"),
        work_table("tl_work_fpairs", f"AS SELECT a, b FROM tl_work_fscore WHERE odds >= {stored.threshold!r}"),
        incremental.fresh_pair_keys_sql(),
        "DROP TABLE tl_work_tf",
        "DROP VIEW tl_work_cperson",
    ])
    _done_with(engine, "tl_work_operson", "tl_work_obk", "tl_work_fbk", "tl_work_hold", "tl_work_fperson", "tl_work_bflip",
               "tl_work_fcand", "tl_work_fcmp", "tl_work_fscore", "tl_work_fpairs")


def _extract(engine: Engine, setup: Setup, landed: str, scope: str | None) -> None:
    # (numbering in groups of record keys needs no stream's `source.stream:` to begin another's)
    prefix_groups = not any(":" in stream.key for stream, _ in setup.streams)
    engine.run([values.records_sql(landed, scope, prefix_groups=prefix_groups), values.values_sql(setup.streams)])


def _normalize(engine: Engine, config: ProfilesConfig, setup: Setup, cached: bool) -> None:
    """tl_work_nv and tl_work_rec. Each distinct value is normalized once: values the store
    has normalized before (when `cached`) are looked up, the rest are normalized into the build's
    table of fresh values (see publish.fresh_values_table): here NORMALIZE_BATCH at a time, on
    Spark by its executors (Engine.map_rows)."""
    settings = config.resolution
    blocklist = Blocklist.from_config(settings.blocked_values, settings.blocked_patterns)
    fresh = publish.fresh_values_table(full=not cached)
    known = [publish.NORM_CACHE, fresh] if cached else [fresh]
    columns = "(kind VARCHAR, hint VARCHAR, raw VARCHAR, value VARCHAR, match_key VARCHAR, status VARCHAR, reason VARCHAR)"
    create = work_table(
        fresh,
        columns, if_not_exists=True) if cached else f"CREATE TABLE IF NOT EXISTS {fresh} {columns}"
    engine.run([create, "DROP TABLE IF EXISTS tl_work_distinct",
                values.distinct_values_sql(known)])
    engine.map_rows("tl_work_distinct", ["kind", "hint", "raw"], functools.partial(normalize_distinct, blocklist=blocklist),
                    fresh, NORMALIZE_BATCH)
    engine.run(["DROP TABLE tl_work_distinct", values.normalized_values_sql(known), values.records_seen_sql()])
    forget.drop_tombstoned(engine, [s for s, _ in setup.streams], fresh, setup.secret)  # erased people stay erased
    _done_with(engine, "tl_work_values", "tl_work_records")


def _keys(engine: Engine, setup: Setup, use: agreement_model.Reuse) -> None:
    engine.run([link.person_sql(setup.person_fields)] if setup.person_fields else [])
    if setup.name_hints:  # the names a stored model knows, or those of every record (kept for the model)
        hints.fill(engine, setup.person_fields, stored=use.stored is not None,
                   keep=agreement_model.NAMES_WORK if use.stored is None else None)
    engine.run(link.keys_sql(setup.rules))


def _resolve(engine: Engine, config: ProfilesConfig, setup: Setup, scoped: bool, use: agreement_model.Reuse) -> int:
    """Edges, guards, clusters, links and dropped links. Returns label propagation rounds."""
    settings = config.resolution
    engine.run([link.groups_sql()] + ([incremental.global_counts_sql()] if scoped else [])
               + [link.edges_sql(settings.max_records_per_value, settings.always_merge)] + link.drops_table_sql())
    skipped, model = link.guard_and_agree(engine, settings, setup.rules, setup.fuzzy, setup.person_fields, use)
    _kept_for_next(engine, setup, use)
    limits = link.limits_table(settings.limits, setup.id_types, settings.never_merge)
    engine.load_table("tl_work_limits", limits, temp=True)
    ctypes = limits.column("ctype").to_pylist()
    engine.run(link.constraints_sql([t for t in ctypes if not t.startswith("never_merge:")], settings.never_merge))
    constrained = bool(engine.scalar("SELECT COUNT(*) FROM tl_work_constraints"))
    weigher = evidence.Weigher.of(model, setup.person_fields, {
        r.name: ("email" if r.match[0] == "email_canonical" else r.match[0]) for r in setup.rules if link.is_identifier_rule(r)})
    stats = evidence.cluster(engine, setup.order, dict(zip(ctypes, limits.column("max_values").to_pylist())), constrained,
                             weigher, link.DROPS, {t for t in ctypes if CUSTOMER_ID.match(t)})
    evidence.weigh_refused(engine, weigher)
    engine.run([link.final_clusters_sql(), link.links_sql()])
    _done_with(engine, "tl_work_groups", "tl_work_edges", "tl_work_constraints", "tl_work_cl")
    if skipped:
        engine.load_table("tl_work_skipped", temp=True, data=pa.table({
            "rule": pa.array([k[0] for k in skipped], pa.string()), "reason": pa.array([k[1] for k in skipped], pa.string()),
            "links": pa.array(list(skipped.values()), pa.int64())}))
        engine.run([f"INSERT INTO {link.DROPS} SELECT NULL, rule, reason, links FROM tl_work_skipped",
                    "DROP TABLE tl_work_skipped"])
    return stats.rounds


def _kept_for_next(engine: Engine, setup: Setup, use: agreement_model.Reuse) -> None:
    """What the next build's scope is found with (incremental.py): the agreement rule's pairs
    as keys (tl_work_akeys, into tl_state_keys) and every record's matching fields
    (tl_work_sperson, into tl_state_person); both empty when the rule is off."""
    engine.run(["DROP TABLE IF EXISTS tl_work_akeys", "DROP VIEW IF EXISTS tl_work_sperson"])
    if use.model is not None:
        pairs = (f"(SELECT ra.record_key AS a, rb.record_key AS b FROM {agreement.PAIRS} AS p "
                 "JOIN tl_work_rec AS ra ON ra.rid = p.a JOIN tl_work_rec AS rb ON rb.rid = p.b)")
        cols = ", ".join(f"p.{c}" for c in setup.person_columns)
        engine.run([work_table("tl_work_akeys", f"AS {incremental.pair_keys_sql(pairs)}"),
                    f"DROP TABLE {agreement.PAIRS}",
                    work_view("tl_work_sperson", f"AS SELECT r.record_key, {cols} FROM tl_work_person AS p "
                                                 "JOIN tl_work_rec AS r ON r.rid = p.rid")])
    else:
        engine.run([work_table("tl_work_akeys", "(record_key VARCHAR, rule VARCHAR, key VARCHAR)"),
                    work_view("tl_work_sperson", "AS SELECT CAST(NULL AS VARCHAR) AS record_key WHERE FALSE")])


# Tables of one pass over a set of records (an incremental build makes two passes).
PASS_TABLES = ("tl_work_records", "tl_work_values", "tl_work_distinct", "tl_work_nv", "tl_work_rec", "tl_work_person",
               "tl_work_keys")
WORK_TABLES = PASS_TABLES + incremental.WORK_TABLES + (
    "tl_work_newnorm", "tl_work_tomb", "tl_work_tomb_rid", "tl_work_groups", "tl_work_edges", "tl_work_drops",
    "tl_work_limits", "tl_work_constraints", "tl_work_cl", "tl_work_comp", "tl_work_links", "tl_work_prev", "tl_work_kept",
    "tl_work_pid", "tl_work_history", "tl_work_members", "tl_work_profiles",
    "tl_work_skipped", evidence.REFUSED, evidence.PENDING, *evidence.WORK, "tl_work_akeys", agreement.PAIRS, agreement.FITTED_TF,
    agreement_model.NAMES_WORK,
)


WORK_VIEWS = ("tl_work_golden", "tl_work_sperson", "tl_work_cperson")


def _done_with(engine: Engine, *tables: str) -> None:
    """Drop work tables no later stage reads: a 10M-record build's temporary tables outgrow
    `memory_limit` many times over, and every one dropped is room DuckDB need not spill."""
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in tables])


def drop_work(engine: Engine) -> None:
    """Every work table and view: ours, other stages' (any `tl_work_` name left in the store),
    and published tables a killed full build left under their new names."""
    leftovers = engine.leftover_tables("tl_work_")
    views = sorted(set(WORK_VIEWS) | {t for t, kind in leftovers.items() if kind == "VIEW"})
    tables = sorted(set(WORK_TABLES) | {t for t, kind in leftovers.items() if kind != "VIEW"})
    engine.run([f"DROP VIEW IF EXISTS {t}" for t in views] + [f"DROP TABLE IF EXISTS {t}" for t in tables])
    publish.drop_leftovers(engine)
