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

With the agreement rule on, the scope also holds the records a changed record is or was
compared with and would be linked to: its fresh candidate pairs are scored with the stored
model (model.py) against every record sharing a block with it, each pair the rule would
link is a key its two records hold (rule `agreement`, kept in `tl_state_keys` like any
other), and a block that crosses `max_block` or `refine_over` brings in all its records (their pairs start
or stop being compared). The closure then follows those pair keys as it follows identifier
keys. Each record's matching fields are kept in `tl_state_person` for this.

A full build runs instead when there is no previous state, when the mappings, rules,
guards or survivorship changed (the fingerprint), when asked (`full_rebuild`, `--full`),
when the agreement model is fitted again (model.refit_reason), when the agreement rule is
on and the overrides or tombstones changed since the last build, or when the scope holds
more than `incremental_up_to` of the records (then a full build is cheaper).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from threadline_profiles.config import ProfilesConfig
from threadline_profiles.engines.base import Engine, lit, work_table, work_view
from threadline_profiles.resolve.agreement import block_keys_select

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
    refit: bool = False  # the agreement model is fitted again (a full build)


def plan(engine: Engine, config: ProfilesConfig, force_full: bool, refit: str | None = None) -> Plan:
    """`refit`: why the agreement model is fitted again (model.refit_reason), if it is."""
    if force_full or config.full_rebuild:
        return Plan(True, "asked for", refit is not None)
    if not engine.incremental_builds:
        return Plan(True, f"the {engine.dialect} engine builds in full", refit is not None)
    if not all(engine.table_exists(t) for t in STATE_TABLES):
        return Plan(True, "no earlier build to start from", refit is not None)
    if saved(engine, "fingerprint") != fingerprint(config):
        return Plan(True, "the mappings, rules or normalizers changed since the last build", refit is not None)
    if refit is not None:
        return Plan(True, refit, True)
    return Plan(False, "")


# With the agreement rule on, overrides and tombstones that moved make a full build (with the
# stored model): `pipeline` checks.
AGREEMENT_FULL = "the overrides or tombstones changed since the last build (the agreement rule is on)"


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


def tombstones_added(engine: Engine) -> bool:
    """Whether a person was forgotten since the last build."""
    before = saved(engine, "tombstones") if engine.table_exists("tl_meta") else None
    return before is not None and before != str(tombstone_count(engine))


def unchanged_besides_records(engine: Engine, config: ProfilesConfig) -> bool:
    """Whether the overrides and tombstones are those of the last build."""
    return (saved(engine, "overrides") == json.dumps(overrides(config))
            and saved(engine, "tombstones") == str(tombstone_count(engine)))


# --------------------------------------------------------------------------- what changed


def changes_sql() -> str:
    """tl_work_changes: (record_key, change) for every record that is new, changed, deleted,
    or landed again with a `seen_at` taken from its landing time."""
    return (
        work_table(
            "tl_work_changes",
            "AS SELECT COALESCE(a.record_key, s.record_key) AS record_key, "
            "CASE WHEN s.record_key IS NULL THEN 'new' WHEN a.record_key IS NULL THEN 'deleted' "
            "WHEN a.row_hash <> s.row_hash THEN 'changed' ELSE 'seen' END AS change "
            "FROM tl_work_all AS a FULL OUTER JOIN tl_state_records AS s ON s.record_key = a.record_key "
            "WHERE s.record_key IS NULL OR a.record_key IS NULL OR a.row_hash <> s.row_hash "
            "OR (s.uses_landed AND a.landed_at <> s.landed_at)")
    )


def fresh_sql() -> str:
    """tl_work_fresh: the records whose values are new to the store (resolved first, alone,
    to learn the keys they offer)."""
    return work_table("tl_work_fresh", "AS SELECT record_key FROM tl_work_changes WHERE change IN ('new', 'changed')")


def vanished_sql() -> list[str]:
    """Fresh records the first pass dropped (an erased person's) count as deleted."""
    def gone(table: str) -> str:
        return (f"record_key IN (SELECT record_key FROM tl_work_fresh) AND NOT EXISTS "
                f"(SELECT 1 FROM tl_work_rec AS r WHERE r.record_key = {table}.record_key)")
    return [f"UPDATE tl_work_changes SET change = 'deleted' WHERE {gone('tl_work_changes')}",
            f"DELETE FROM tl_work_all WHERE {gone('tl_work_all')}"]


def fresh_keys_sql() -> str:
    """tl_work_fkeys: the keys the fresh records offer now."""
    return (work_table("tl_work_fkeys", "AS SELECT r.record_key, k.rule, k.key FROM tl_work_keys AS k "
                                        "JOIN tl_work_rec AS r ON r.rid = k.rid"))


# Every record's keys as they are now: the last build's, minus those of records changed or
# deleted since, plus the fresh records' own.
CURRENT_KEYS = (
    "(SELECT record_key, rule, key FROM tl_state_keys AS k WHERE NOT EXISTS (SELECT 1 FROM tl_work_changes AS c "
    "WHERE c.record_key = k.record_key AND c.change IN ('changed', 'deleted')) "
    "UNION ALL SELECT record_key, rule, key FROM tl_work_fkeys)"
)
# (rule, key, n): every current key two records or more hold, and how many hold it, counted once
# per build for the seeds, the closure and the key groups' store-wide sizes (global_counts_sql)
KEY_COUNTS = "tl_work_kn"


def _profile_mates(records: str) -> str:
    return (f"SELECT m2.record_key FROM tl_members AS m1 JOIN {records} AS f ON f.record_key = m1.record_key "
            "JOIN tl_members AS m2 ON m2.profile_id = m1.profile_id")


def _pairs(pairs: list[tuple[str, str]]) -> str:
    rows = ", ".join(f"({lit(a)}, {lit(b)})" for a, b in pairs)
    return f"(SELECT * FROM (VALUES {rows}) AS p(a, b))"


def seeds_sql(max_records: int, changed_refs: list[str], extra: str | None = None) -> list[str]:
    """tl_work_scope: where the closure starts (see the module docstring)."""
    touched = ("(SELECT s.rule, s.key FROM tl_state_keys AS s JOIN tl_work_changes AS c ON c.record_key = s.record_key "
               "AND c.change IN ('changed', 'deleted') UNION ALL SELECT rule, key FROM tl_work_fkeys)")
    refs = [f"SELECT record_key FROM (VALUES {', '.join(f'({lit(r)})' for r in changed_refs)}) AS o(record_key)"] if changed_refs else []
    refs += [f"SELECT record_key FROM {extra}"] if extra else []
    return [
        work_table("tl_work_ck", f"AS SELECT DISTINCT rule, key FROM {touched} AS t"),
        # a changed key's holders are resolved again unless it is blocked both before and after
        work_table(
            "tl_work_ckl",
            "AS SELECT ck.rule, ck.key FROM tl_work_ck AS ck "
            "LEFT JOIN (SELECT s.rule, s.key, COUNT(*) AS n FROM tl_state_keys AS s JOIN tl_work_ck AS k "
            "ON k.rule = s.rule AND k.key = s.key GROUP BY s.rule, s.key) AS o ON o.rule = ck.rule AND o.key = ck.key "
            f"LEFT JOIN {KEY_COUNTS} AS w ON w.rule = ck.rule AND w.key = ck.key "
            f"WHERE COALESCE(o.n, 0) <= {max_records} OR COALESCE(w.n, 0) <= {max_records}"),
        work_table(
            "tl_work_scope",
            "AS SELECT DISTINCT record_key FROM ("
            "SELECT record_key FROM tl_work_changes UNION ALL "
            f"{_profile_mates('tl_work_changes')} UNION ALL "
            f"SELECT c.record_key FROM {CURRENT_KEYS} AS c JOIN tl_work_ckl AS k ON k.rule = c.rule AND k.key = c.key"
            f"{''.join(' UNION ALL ' + r for r in refs)}) AS s"),
        work_table("tl_work_front", "AS SELECT record_key FROM tl_work_scope"),
    ]


def key_counts_sql() -> str:
    return (work_table(KEY_COUNTS, f"AS SELECT rule, key, COUNT(*) AS n FROM {CURRENT_KEYS} AS c "
                                   "GROUP BY rule, key HAVING COUNT(*) > 1"))


def linkable_keys_sql(max_records: int) -> str:
    """tl_work_lk: the current keys that link records, once for the whole closure: those held
    by two records or more and by at most `max_records` (any number for a pair key). A key
    only one record holds links nothing, and most keys are such (a customer id, a card): the
    closure's steps join this table, not every record's keys, each time."""
    return (work_table("tl_work_lk", f"AS SELECT c.record_key, c.rule, c.key FROM {CURRENT_KEYS} AS c "
                                     f"JOIN {KEY_COUNTS} AS g ON g.rule = c.rule AND g.key = c.key "
                                     f"WHERE g.n <= {max_records} OR g.rule = {lit(PAIR_RULE)}"))


def grow_sql(always_merge: list[tuple[str, str]]) -> list[str]:
    """One step of the closure: tl_work_next, the records linked to the frontier (by a key of
    tl_work_lk, a profile or an always-merge pair) that are not in the scope yet; they join
    the scope and become the frontier."""
    merged = ""
    if always_merge:
        pairs = _pairs(always_merge)
        merged = (f" UNION ALL SELECT p.b FROM {pairs} AS p JOIN tl_work_front AS f ON f.record_key = p.a"
                  f" UNION ALL SELECT p.a FROM {pairs} AS p JOIN tl_work_front AS f ON f.record_key = p.b")
    return [
        "DROP TABLE IF EXISTS tl_work_next",
        work_table(
            "tl_work_next",
            "AS SELECT DISTINCT x.record_key FROM ("
            "SELECT c.record_key FROM tl_work_lk AS c JOIN (SELECT DISTINCT k.rule, k.key FROM tl_work_lk AS k "
            "JOIN tl_work_front AS f ON f.record_key = k.record_key) AS q ON q.rule = c.rule AND q.key = c.key "
            f"UNION ALL {_profile_mates('tl_work_front')}{merged}"
            ") AS x WHERE NOT EXISTS (SELECT 1 FROM tl_work_scope AS s WHERE s.record_key = x.record_key)"),
        "INSERT INTO tl_work_scope SELECT record_key FROM tl_work_next",
        "DROP TABLE tl_work_front",
        work_table("tl_work_front", "AS SELECT record_key FROM tl_work_next"),
    ]


def close_scope(engine: Engine, config: ProfilesConfig, extra: str | None = None) -> int:
    """Build tl_work_scope (needs tl_work_changes and tl_work_fkeys; `extra` is a table of
    more record keys to start from). Returns the closure's steps."""
    res = config.resolution
    before = json.loads(saved(engine, "overrides") or "[]")
    now = overrides(config)
    changed_refs = sorted({ref for row in [r for r in before if r not in now] + [r for r in now if r not in before]
                           for ref in row[1:]})
    engine.run([key_counts_sql(), *seeds_sql(res.max_records_per_value, changed_refs, extra),
                linkable_keys_sql(res.max_records_per_value)])
    steps = 0
    while True:
        steps += 1
        engine.run(grow_sql(list(res.always_merge)))
        if not engine.scalar("SELECT COUNT(*) FROM tl_work_next"):
            engine.run("DROP TABLE tl_work_lk")
            return steps


def global_counts_sql() -> str:
    """Key groups count every record holding the key in the whole store, not only in the
    scope: a key blocked store-wide stays blocked (only used by incremental builds, after
    close_scope counted the keys)."""
    return (f"UPDATE tl_work_groups SET records = c.n FROM {KEY_COUNTS} AS c "
            "WHERE c.rule = tl_work_groups.rule AND c.key = tl_work_groups.key")


def stale_profiles_sql() -> str:
    """tl_work_stale: the profiles whose published rows this build replaces."""
    return (work_table(
        "tl_work_stale",
        "AS SELECT DISTINCT profile_id FROM tl_members "
        "WHERE record_key IN (SELECT record_key FROM tl_work_scope) UNION SELECT profile_id FROM tl_work_pid"))


# --------------------------------------------------------------------------- the agreement rule's pairs

PAIR_RULE = "agreement"  # the rule name of a pair key: two records the agreement rule would link
STATE_PERSON = "tl_state_person"


def pair_keys_sql(pairs: str, a: str = "a", b: str = "b") -> str:
    """(record_key, rule, key): both records of each pair of record keys hold the pair's key."""
    key = f"LEAST(p.{a}, p.{b}) || ' ' || GREATEST(p.{a}, p.{b})"
    return (f"SELECT p.{a} AS record_key, {lit(PAIR_RULE)} AS rule, {key} AS key FROM {pairs} AS p "
            f"UNION ALL SELECT p.{b}, {lit(PAIR_RULE)}, {key} FROM {pairs} AS p")


def current_person_sql(columns: list[str]) -> list[str]:
    """tl_work_cperson (a view: it is read twice, never copied): every record's matching
    fields as they are now — the last build's, less those of records changed or deleted
    since, plus the fresh records' own (tl_work_person); tl_work_operson: the old ones of the
    changed and deleted records."""
    cols = ", ".join(columns)
    gone = "SELECT record_key FROM tl_work_changes WHERE change IN ('changed', 'deleted')"
    return [
        "DROP VIEW IF EXISTS tl_work_cperson",
        work_view(
            "tl_work_cperson",
            f"AS SELECT record_key, {cols} FROM {STATE_PERSON} AS s "
            f"WHERE s.record_key NOT IN ({gone}) UNION ALL SELECT r.record_key, {', '.join('p.' + c for c in columns)} "
            "FROM tl_work_person AS p JOIN tl_work_rec AS r ON r.rid = p.rid"),
        work_table("tl_work_operson", f"AS SELECT record_key, {cols} FROM {STATE_PERSON} WHERE record_key IN ({gone})"),
    ]


def _band(n: str, max_block: int, refine_over: int) -> str:
    """How a block of `n` records is paired: 0 whole, 1 by its refined key, 2 not at all."""
    return f"CASE WHEN {n} > {max_block} THEN 2 WHEN {n} > {refine_over} THEN 1 ELSE 0 END"


def block_changes_sql(blocks: list[list[str]], fields: list[str], max_block: int, refine_over: int) -> list[str]:
    """The blocks around what changed (block keys from agreement.block_keys_select):
    tl_work_gbs, the size of every block of two or more records now (tl_work_gbs_r: of every
    refined key within one, agreement.fit's `sizes`); tl_work_fbk and
    tl_work_obk, the block keys of the fresh records and the old ones of the changed and
    deleted; tl_work_bflip, the blocks that crossed `max_block` or `refine_over` (their pairs
    start or stop being compared), and tl_work_bseed their records; tl_work_hold, every
    record now in a block a fresh record is in or one that crossed."""
    now = block_keys_select(blocks, fields, "tl_work_cperson", "record_key")
    fresh = "(SELECT r.record_key, p.* FROM tl_work_person AS p JOIN tl_work_rec AS r ON r.rid = p.rid) AS f"
    before, after = "COALESCE(g.n, t.nf) - t.nf + t.no", "COALESCE(g.n, t.nf)"
    # the refined keys' sizes too, store-wide, for the count of pairs they leave out (agreement.refined_blocks_sql)
    fine = ([work_table("tl_work_gbs_r", f"AS SELECT blk, k, r, COUNT(*) AS n FROM ({now}) AS b WHERE r IS NOT NULL "
                                         "GROUP BY blk, k, r HAVING COUNT(*) > 1")] if refine_over < max_block else [])
    return [
        work_table(
            "tl_work_gbs",
            f"AS SELECT blk, k, COUNT(*) AS n FROM ({now}) AS b GROUP BY blk, k HAVING COUNT(*) > 1"),
        *fine,
        work_table("tl_work_fbk", f"AS {block_keys_select(blocks, fields, fresh, 'record_key')}"),
        work_table("tl_work_obk", f"AS {block_keys_select(blocks, fields, 'tl_work_operson', 'record_key')}"),
        work_table(
            "tl_work_bflip",
            "AS SELECT t.blk, t.k FROM (SELECT blk, k, SUM(nf) AS nf, SUM(no) AS no FROM ("
            "SELECT blk, k, 1 AS nf, 0 AS no FROM tl_work_fbk UNION ALL SELECT blk, k, 0 AS nf, 1 AS no FROM tl_work_obk) AS u "
            "GROUP BY blk, k) AS t LEFT JOIN tl_work_gbs AS g ON g.blk = t.blk AND g.k = t.k "
            f"WHERE {_band(after, max_block, refine_over)} <> {_band(before, max_block, refine_over)}"),
        work_table(
            "tl_work_hold",
            f"AS SELECT b.blk, b.k, b.r, b.record_key FROM ({now}) AS b JOIN ("
            "SELECT blk, k FROM tl_work_fbk UNION SELECT blk, k FROM tl_work_bflip) AS t ON t.blk = b.blk AND t.k = b.k"),
        work_table("tl_work_bseed", "AS SELECT DISTINCT h.record_key FROM tl_work_hold AS h "
                                    "JOIN tl_work_bflip AS f ON f.blk = h.blk AND f.k = h.k"),
    ]


def fresh_candidates_sql(max_block: int, refine_over: int) -> list[str]:
    """tl_work_fcand: (a, b) — each fresh record with every record sharing a small block (in
    a block over `refine_over`, sharing its refined key too: agreement.candidates_sql);
    tl_work_fperson: the matching fields of the records in them."""
    small = ("SELECT f.record_key AS a, o.record_key AS b FROM tl_work_fbk AS f "
             f"JOIN tl_work_gbs AS g ON g.blk = f.blk AND g.k = f.k AND g.n <= {min(refine_over, max_block)} "
             "JOIN tl_work_hold AS o ON o.blk = f.blk AND o.k = f.k AND o.record_key <> f.record_key")
    fine = (" UNION SELECT f.record_key AS a, o.record_key AS b FROM tl_work_fbk AS f "
            f"JOIN tl_work_gbs AS g ON g.blk = f.blk AND g.k = f.k AND g.n > {refine_over} AND g.n <= {max_block} "
            "JOIN tl_work_hold AS o ON o.blk = f.blk AND o.k = f.k AND o.r = f.r AND o.record_key <> f.record_key"
            ) if refine_over < max_block else ""
    return [work_table("tl_work_fcand", f"AS SELECT DISTINCT a, b FROM ({small}{fine}) AS c"),
            work_table("tl_work_fperson", "AS SELECT * FROM tl_work_cperson WHERE record_key IN "
                                          "(SELECT a FROM tl_work_fcand UNION SELECT b FROM tl_work_fcand)")]


def fresh_pair_keys_sql() -> str:
    """Add to tl_work_fkeys the pair keys of the fresh pairs the rule would link (tl_work_fpairs):
    a fresh record's own, and its partner's unless the partner held it already."""
    # two branches, not one OR: Postgres runs an OR beside NOT EXISTS as a subquery per row
    keys = f"({pair_keys_sql('tl_work_fpairs')})"
    return ("INSERT INTO tl_work_fkeys SELECT DISTINCT record_key, rule, key FROM ("
            f"SELECT k.record_key, k.rule, k.key FROM {keys} AS k JOIN tl_work_fresh AS f ON f.record_key = k.record_key "
            f"UNION ALL SELECT k.record_key, k.rule, k.key FROM {keys} AS k WHERE NOT EXISTS (SELECT 1 FROM tl_state_keys AS s "
            "WHERE s.record_key = k.record_key AND s.rule = k.rule AND s.key = k.key)) AS u")


AGREEMENT_WORK = ("tl_work_operson", "tl_work_obk", "tl_work_gbs", "tl_work_gbs_r", "tl_work_fbk", "tl_work_hold", "tl_work_fperson",
                  "tl_work_bflip", "tl_work_bseed", "tl_work_fcand", "tl_work_fcmp", "tl_work_fscore", "tl_work_fpairs")

WORK_TABLES = AGREEMENT_WORK + ("tl_work_all", "tl_work_changes", "tl_work_fresh", "tl_work_fkeys", "tl_work_ck", "tl_work_ckl",
               "tl_work_scope", "tl_work_front", KEY_COUNTS, "tl_work_lk", "tl_work_next", "tl_work_stale")
