"""Incremental builds: which records a build has to resolve again.

The last build left, per record, the hash of its mapped values and when it landed
(`tl_state_records`), and the keys it offered to the rules (`tl_state_keys`). A build
compares what has landed now with that: records are new, changed, deleted, or only landed
again (which moves `seen_at` when no `updated_at` is mapped, so their golden records change).

The scope starts from

- the new, changed, deleted and re-landed records, and the other records of their profiles;
- every record holding a key that a changed or deleted record holds or held (unless more
  than `max_records_per_value` records hold it both before and after: blocked either way);
- the records named by an always-merge or never-merge pair added or removed since;

and grows until it is closed: a record sharing a linkable key with the scope (one held by
few enough records, whether or not a guard dropped the link), an always-merge pair, or a
profile is pulled in, and so on until nothing is added. Resolving the scope alone then
gives what resolving everything gives, because no link, limit or override reaches across
its edge; what is outside keeps its profiles and golden records as they are. Records are
numbered in record-key order within the scope, so anchors and the order in which limits
settle conflicts are the same as in a full build.

A full build runs instead when there is no previous state, when the mappings, rules,
guards or survivorship changed (the fingerprint), when the agreement rule is on (its
weights are estimated from all records), when asked (`full_rebuild`, `--full`), or when the
scope holds more than `incremental_up_to` of the records (then a full build is cheaper).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from threadline_profiles.config import ProfilesConfig
from threadline_profiles.engines.base import Engine, lit

STATE_VERSION = "1"  # bump when the state tables or what they mean change
STATE_TABLES = ("tl_state_records", "tl_state_keys", "tl_state_drops", "tl_norm_cache")


def fingerprint(config: ProfilesConfig) -> str:
    """What the published profiles depend on besides the data and the overrides. The
    normalizers' source is part of it: a new normalizer means the cached values are stale."""
    settings = config.model_dump_json(include={"mappings", "resolution", "survivorship"}, by_alias=True,
                                      exclude={"resolution": {"always_merge", "never_merge"}})
    code = Path(__file__).parent
    digest = hashlib.sha256(f"{STATE_VERSION}\n{settings}".encode())
    for name in ("normalize.py", "normalize_bulk.py"):
        digest.update((code / name).read_bytes())
    return digest.hexdigest()


def overrides(config: ProfilesConfig) -> list[list[str]]:
    """The override pairs in force, as ["always"|"never", a, b] rows."""
    res = config.resolution
    return sorted([["always", a, b] for a, b in res.always_merge] + [["never", a, b] for a, b in res.never_merge])


@dataclass
class Plan:
    """What kind of build this is, and why."""

    full: bool
    reason: str


def plan(engine: Engine, config: ProfilesConfig, force_full: bool, agreement_on: bool) -> Plan:
    if force_full or config.full_rebuild:
        return Plan(True, "asked for")
    if not all(engine.table_exists(t) for t in STATE_TABLES):
        return Plan(True, "no earlier build to start from")
    if saved(engine, "fingerprint") != fingerprint(config):
        return Plan(True, "the mappings, rules or normalizers changed since the last build")
    if agreement_on:
        return Plan(True, AGREEMENT_FULL)
    return Plan(False, "")


# The agreement rule's weights are estimated from every record, so any change means a full
# build; an unchanged store is the one exception (`pipeline` checks and builds nothing).
AGREEMENT_FULL = "the agreement rule estimates its weights from all records"


def saved(engine: Engine, key: str) -> str | None:
    return engine.scalar(f"SELECT value FROM tl_meta WHERE key = {lit(key)}")


def meta_sql(config: ProfilesConfig) -> list[str]:
    """Statements that record this build's fingerprint and overrides (inside the publish)."""
    rows = {"fingerprint": fingerprint(config), "overrides": json.dumps(overrides(config))}
    return [f"DELETE FROM tl_meta WHERE key IN ({', '.join(lit(k) for k in rows)})"] + [
        f"INSERT INTO tl_meta VALUES ({lit(k)}, {lit(v)})" for k, v in rows.items()]


def tombstone_count(engine: Engine) -> int:
    return int(engine.scalar("SELECT COUNT(*) FROM tl_tombstones") or 0) if engine.table_exists("tl_tombstones") else 0


def tombstones_meta_sql(engine: Engine) -> list[str]:
    """How many tombstones this build saw: one added since (a forget, an old store's) is a change."""
    return ["DELETE FROM tl_meta WHERE key = 'tombstones'",
            f"INSERT INTO tl_meta VALUES ('tombstones', {lit(str(tombstone_count(engine)))})"]


def unchanged_besides_records(engine: Engine, config: ProfilesConfig) -> bool:
    """Whether the overrides and tombstones are those of the last build."""
    return (saved(engine, "overrides") == json.dumps(overrides(config))
            and saved(engine, "tombstones") == str(tombstone_count(engine)))


# --------------------------------------------------------------------------- what changed


def changes_sql() -> str:
    """tl_work_changes: (record_key, change) for every record that is new, changed, deleted,
    or landed again with a `seen_at` taken from its landing time."""
    return (
        "CREATE TEMP TABLE tl_work_changes AS SELECT COALESCE(a.record_key, s.record_key) AS record_key, "
        "CASE WHEN s.record_key IS NULL THEN 'new' WHEN a.record_key IS NULL THEN 'deleted' "
        "WHEN a.row_hash <> s.row_hash THEN 'changed' ELSE 'seen' END AS change "
        "FROM tl_work_all AS a FULL OUTER JOIN tl_state_records AS s ON s.record_key = a.record_key "
        "WHERE s.record_key IS NULL OR a.record_key IS NULL OR a.row_hash <> s.row_hash "
        "OR (s.uses_landed AND a.landed_at <> s.landed_at)"
    )


def fresh_sql() -> str:
    """tl_work_fresh: the records whose values are new to the store (resolved first, alone,
    to learn the keys they offer)."""
    return "CREATE TEMP TABLE tl_work_fresh AS SELECT record_key FROM tl_work_changes WHERE change IN ('new', 'changed')"


def vanished_sql() -> list[str]:
    """Fresh records the first pass dropped (an erased person's) count as deleted."""
    def gone(table: str) -> str:
        return (f"record_key IN (SELECT record_key FROM tl_work_fresh) AND NOT EXISTS "
                f"(SELECT 1 FROM tl_work_rec AS r WHERE r.record_key = {table}.record_key)")
    return [f"UPDATE tl_work_changes SET change = 'deleted' WHERE {gone('tl_work_changes')}",
            f"DELETE FROM tl_work_all WHERE {gone('tl_work_all')}"]


def fresh_keys_sql() -> str:
    """tl_work_fkeys: the keys the fresh records offer now."""
    return ("CREATE TEMP TABLE tl_work_fkeys AS SELECT r.record_key, k.rule, k.key FROM tl_work_keys AS k "
            "JOIN tl_work_rec AS r ON r.rid = k.rid")


# Every record's keys as they are now: the last build's, minus those of records changed or
# deleted since, plus the fresh records' own.
CURRENT_KEYS = (
    "(SELECT record_key, rule, key FROM tl_state_keys AS k WHERE NOT EXISTS (SELECT 1 FROM tl_work_changes AS c "
    "WHERE c.record_key = k.record_key AND c.change IN ('changed', 'deleted')) "
    "UNION ALL SELECT record_key, rule, key FROM tl_work_fkeys)"
)


def _profile_mates(records: str) -> str:
    return (f"SELECT m2.record_key FROM tl_members AS m1 JOIN {records} AS f ON f.record_key = m1.record_key "
            "JOIN tl_members AS m2 ON m2.profile_id = m1.profile_id")


def _pairs(pairs: list[tuple[str, str]]) -> str:
    rows = ", ".join(f"({lit(a)}, {lit(b)})" for a, b in pairs)
    return f"(SELECT * FROM (VALUES {rows}) AS p(a, b))"


def seeds_sql(max_records: int, changed_refs: list[str]) -> list[str]:
    """tl_work_scope: where the closure starts (see the module docstring)."""
    touched = ("(SELECT s.rule, s.key FROM tl_state_keys AS s JOIN tl_work_changes AS c ON c.record_key = s.record_key "
               "AND c.change IN ('changed', 'deleted') UNION ALL SELECT rule, key FROM tl_work_fkeys)")
    refs = [f"SELECT record_key FROM (VALUES {', '.join(f'({lit(r)})' for r in changed_refs)}) AS o(record_key)"] if changed_refs else []
    return [
        f"CREATE TEMP TABLE tl_work_ck AS SELECT DISTINCT rule, key FROM {touched} AS t",
        # a changed key's holders are resolved again unless it is blocked both before and after
        "CREATE TEMP TABLE tl_work_ckl AS SELECT ck.rule, ck.key FROM tl_work_ck AS ck "
        "LEFT JOIN (SELECT s.rule, s.key, COUNT(*) AS n FROM tl_state_keys AS s JOIN tl_work_ck AS k "
        "ON k.rule = s.rule AND k.key = s.key GROUP BY s.rule, s.key) AS o ON o.rule = ck.rule AND o.key = ck.key "
        f"LEFT JOIN (SELECT c.rule, c.key, COUNT(*) AS n FROM {CURRENT_KEYS} AS c JOIN tl_work_ck AS k "
        "ON k.rule = c.rule AND k.key = c.key GROUP BY c.rule, c.key) AS w ON w.rule = ck.rule AND w.key = ck.key "
        f"WHERE COALESCE(o.n, 0) <= {max_records} OR COALESCE(w.n, 0) <= {max_records}",
        "CREATE TEMP TABLE tl_work_scope AS SELECT DISTINCT record_key FROM ("
        "SELECT record_key FROM tl_work_changes UNION ALL "
        f"{_profile_mates('tl_work_changes')} UNION ALL "
        f"SELECT c.record_key FROM {CURRENT_KEYS} AS c JOIN tl_work_ckl AS k ON k.rule = c.rule AND k.key = c.key"
        f"{''.join(' UNION ALL ' + r for r in refs)}) AS s",
        "CREATE TEMP TABLE tl_work_front AS SELECT record_key FROM tl_work_scope",
    ]


def grow_sql(max_records: int, always_merge: list[tuple[str, str]]) -> list[str]:
    """One step of the closure: tl_work_next, the records linked to the frontier that are not
    in the scope yet; they join the scope and become the frontier."""
    merged = ""
    if always_merge:
        pairs = _pairs(always_merge)
        merged = (f" UNION ALL SELECT p.b FROM {pairs} AS p JOIN tl_work_front AS f ON f.record_key = p.a"
                  f" UNION ALL SELECT p.a FROM {pairs} AS p JOIN tl_work_front AS f ON f.record_key = p.b")
    return [
        "DROP TABLE IF EXISTS tl_work_fk",
        "DROP TABLE IF EXISTS tl_work_next",
        f"CREATE TEMP TABLE tl_work_fk AS SELECT c.rule, c.key FROM {CURRENT_KEYS} AS c JOIN ("
        f"SELECT DISTINCT k.rule, k.key FROM {CURRENT_KEYS} AS k JOIN tl_work_front AS f ON f.record_key = k.record_key"
        f") AS q ON q.rule = c.rule AND q.key = c.key GROUP BY c.rule, c.key HAVING COUNT(*) <= {max_records}",
        "CREATE TEMP TABLE tl_work_next AS SELECT DISTINCT x.record_key FROM ("
        f"SELECT c.record_key FROM {CURRENT_KEYS} AS c JOIN tl_work_fk AS k ON k.rule = c.rule AND k.key = c.key "
        f"UNION ALL {_profile_mates('tl_work_front')}{merged}"
        ") AS x WHERE NOT EXISTS (SELECT 1 FROM tl_work_scope AS s WHERE s.record_key = x.record_key)",
        "INSERT INTO tl_work_scope SELECT record_key FROM tl_work_next",
        "DROP TABLE tl_work_front",
        "CREATE TEMP TABLE tl_work_front AS SELECT record_key FROM tl_work_next",
    ]


def close_scope(engine: Engine, config: ProfilesConfig) -> int:
    """Build tl_work_scope (needs tl_work_changes and tl_work_fkeys). Returns the closure's steps."""
    res = config.resolution
    before = json.loads(saved(engine, "overrides") or "[]")
    now = overrides(config)
    changed_refs = sorted({ref for row in [r for r in before if r not in now] + [r for r in now if r not in before]
                           for ref in row[1:]})
    engine.run(seeds_sql(res.max_records_per_value, changed_refs))
    steps = 0
    while True:
        steps += 1
        engine.run(grow_sql(res.max_records_per_value, list(res.always_merge)))
        if not engine.scalar("SELECT COUNT(*) FROM tl_work_next"):
            return steps


def global_counts_sql() -> str:
    """Key groups count every record holding the key in the whole store, not only in the
    scope: a key blocked store-wide stays blocked (only used by incremental builds)."""
    return (
        "UPDATE tl_work_groups SET records = c.n FROM ("
        f"SELECT s.rule, s.key, COUNT(*) AS n FROM {CURRENT_KEYS} AS s JOIN tl_work_groups AS g "
        "ON g.rule = s.rule AND g.key = s.key GROUP BY s.rule, s.key) AS c "
        "WHERE c.rule = tl_work_groups.rule AND c.key = tl_work_groups.key"
    )


def stale_profiles_sql() -> str:
    """tl_work_stale: the profiles whose published rows this build replaces."""
    return ("CREATE TEMP TABLE tl_work_stale AS SELECT DISTINCT profile_id FROM tl_members "
            "WHERE record_key IN (SELECT record_key FROM tl_work_scope) UNION SELECT profile_id FROM tl_work_pid")


WORK_TABLES = ("tl_work_all", "tl_work_changes", "tl_work_fresh", "tl_work_fkeys", "tl_work_ck", "tl_work_ckl",
               "tl_work_scope", "tl_work_front", "tl_work_fk", "tl_work_next", "tl_work_stale")
