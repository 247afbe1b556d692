"""A build: normalize, resolve and merge everything landed, then swap the results in.

Every stage writes `tl_work_*` tables, which each build recreates from scratch, so a build
killed at any point leaves the published tables (`tl_members`, `tl_profiles`, `tl_golden`,
...) exactly as the last complete build left them; the next build starts over and gives
what a clean build gives. The published tables are replaced in one transaction at the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pyarrow as pa

from threadline_profiles import forget, golden, ids, resolve, values
from threadline_profiles.engines.base import lit
from threadline_profiles.normalize import Blocklist, normalize_distinct

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

# Published table -> the SELECT over work tables that fills it.
PUBLISHED = {
    "tl_members": "SELECT profile_id, record_key, source, stream, pk, seen_at FROM tl_work_members",
    "tl_profiles": "SELECT profile_id, created_at, updated_at, records, sources FROM tl_work_profiles",
    "tl_golden": "SELECT profile_id, field, value, source, stream, record_key, seen_at, rule FROM tl_work_golden",
    "tl_record_values": (
        "SELECT r.record_key, r.source, r.stream, v.field, v.kind, v.raw, v.value, v.match_key, v.status, v.reason "
        "FROM tl_work_nv AS v JOIN tl_work_rec AS r ON r.rid = v.rid"
    ),
    "tl_links": (
        "SELECT a.record_key, b.record_key AS linked_record_key, l.rule, l.key FROM tl_work_links AS l "
        "JOIN tl_work_rec AS a ON a.rid = l.rid JOIN tl_work_rec AS b ON b.rid = l.anchor"
    ),
    "tl_dq": "SELECT source, stream, field, status, reason, n FROM tl_work_dq",
    "tl_blocked": (
        "SELECT rule AS field, key AS value, records, reason FROM tl_work_blocked UNION ALL "
        "SELECT field, match_key AS value, COUNT(DISTINCT rid) AS records, reason FROM tl_work_nv "
        "WHERE status = 'blocked' GROUP BY field, match_key, reason"
    ),
    "tl_dropped_links": "SELECT rule, reason, links FROM tl_work_dropped",
}


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
    distinct_values: int = 0
    label_rounds: int = 0
    report_path: str | None = None
    pushes: list = field(default_factory=list)  # PushOutcome of each activation pushed after the build


def build(store: ProfileStore, run_id: str | None = None, *, report: bool = True,
          on_stage: Callable[[str], None] | None = None) -> BuildResult:
    """Run every stage over what has landed; publish the results in one transaction."""
    engine, config = store.engine, store.config
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

    streams = values.mapped_streams(config, store.landed_streams())
    engine.run(_drop_work())
    engine.run([values.records_sql(streams), values.values_sql(streams)])
    stage("extract")

    distinct = engine.query(values.distinct_values_sql())
    settings = config.resolution
    blocklist = Blocklist.from_config(settings.blocked_values, settings.blocked_patterns)
    engine.load_table("tl_work_norm", temp=True, data=normalize_distinct(distinct, blocklist))
    engine.run([values.normalized_values_sql(), values.records_seen_sql(), values.data_quality_sql()])
    forget.drop_tombstoned(engine, [s for s, _ in streams])  # erased people stay erased
    stage("normalize")

    id_types = {t for _, m in streams for t in m.identifiers.values()}
    traits = {t for _, m in streams for t in m.trait_columns()}
    rules = resolve.settings_rules(settings, id_types, traits)
    fuzzy = resolve.agreement_fields(settings.agreement, traits)
    trait_fields = sorted({f for r in rules if not resolve.is_identifier_rule(r) for f in r.match} | set(fuzzy))
    engine.run([resolve.person_sql(trait_fields)] if trait_fields else [])
    engine.run([resolve.keys_sql(rules), resolve.groups_sql(), resolve.blocked_groups_sql(settings.max_records_per_value),
                resolve.edges_sql(settings.max_records_per_value, settings.always_merge)])
    if fuzzy and settings.agreement is not None:
        engine.run(resolve.agreement_edges_sql(settings.agreement, fuzzy))
    limits = resolve.limits_table(settings.limits, id_types, settings.never_merge)
    engine.load_table("tl_work_limits", limits, temp=True)
    engine.run(resolve.constraints_sql([t for t in limits.column("ctype").to_pylist() if not t.startswith("never_merge:")],
                                       settings.never_merge))
    constrained = bool(engine.scalar("SELECT COUNT(*) FROM tl_work_constraints"))
    order = ([resolve.MANUAL_RULE] if settings.always_merge else []) + [r.name for r in rules]
    order += [resolve.AGREEMENT_RULE] if fuzzy else []
    stats = resolve.cluster_records(engine, order, constrained, dict(zip(limits.column("ctype").to_pylist(), limits.column("max_values").to_pylist())))
    engine.run([resolve.final_clusters_sql(), resolve.links_sql()])
    engine.load_table("tl_work_dropped", temp=True, data=pa.table({
        "rule": pa.array([k[0] for k in stats.dropped], pa.string()),
        "reason": pa.array([k[1] for k in stats.dropped], pa.string()),
        "links": pa.array(list(stats.dropped.values()), pa.int64()),
    }))
    stage("resolve")

    engine.run([ids.previous_sql(), ids.kept_sql(), ids.assign_sql(), ids.history_sql(build_id, at),
                ids.members_sql(), ids.profiles_sql(at)])
    stage("ids")

    golden_fields = sorted(traits | id_types)
    by_rule: dict[str, list[str]] = {}
    for name in golden_fields:
        by_rule.setdefault(config.survivorship.rule_for(name), []).append(name)
    engine.run([golden.candidates_sql(golden_fields, "most_frequent" in by_rule), golden.golden_sql(by_rule)])
    stage("golden")

    records = engine.scalar("SELECT COUNT(*) FROM tl_work_rec") or 0
    profiles = engine.scalar("SELECT COUNT(*) FROM tl_work_profiles") or 0
    # Published tables are built under new names first; the swap itself is renames only.
    engine.run([f"CREATE TABLE tl_next_{table[3:]} AS {select}" for table, select in PUBLISHED.items()])
    stage("prepare")
    with engine.transaction():
        for table in PUBLISHED:
            engine.run([f"DROP TABLE IF EXISTS {table}", f"ALTER TABLE tl_next_{table[3:]} RENAME TO {table}"])
        engine.run([
            "INSERT INTO tl_profile_history SELECT build_id, changed_at, profile_id, event, related_profile_id FROM tl_work_history",
            f"INSERT INTO tl_builds VALUES ('{build_id}', {lit(run_id)}, CAST('{at}' AS TIMESTAMP), "
            f"CURRENT_TIMESTAMP, {records}, {profiles}, NULL)",
        ])
    stage("publish")

    result = BuildResult(build_id, run_id, records, profiles, order, 0.0, timings,
                         distinct.num_rows, stats.rounds)
    if report:
        from threadline_profiles.report import write_report

        path = write_report(store, result)
        result.report_path = str(path)
        engine.execute(f"UPDATE tl_builds SET report = {lit(str(path))} WHERE build_id = '{build_id}'")
        stage("report")
    engine.run(_drop_work())
    result.seconds = round(time.monotonic() - started, 3)
    return result


WORK_TABLES = (
    "tl_work_tomb", "tl_work_tomb_rid",
    "tl_work_records", "tl_work_values", "tl_work_norm", "tl_work_nv", "tl_work_rec", "tl_work_dq", "tl_work_person",
    "tl_work_keys", "tl_work_groups", "tl_work_blocked", "tl_work_edges", "tl_work_limits", "tl_work_constraints",
    "tl_work_cl", "tl_work_comp", "tl_work_links", "tl_work_dropped", "tl_work_prev", "tl_work_kept", "tl_work_pid",
    "tl_work_history", "tl_work_members", "tl_work_profiles", "tl_work_cand", "tl_work_golden",
)


def _drop_work() -> list[str]:
    return [f"DROP TABLE IF EXISTS {t}" for t in WORK_TABLES] + [f"DROP TABLE IF EXISTS tl_next_{t[3:]}" for t in PUBLISHED]

