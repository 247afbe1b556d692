"""Publishing a build: the tables that lookups, reports and the next build read.

Each published table is filled from the work tables by one SELECT. A full build creates
them under new names first and swaps them in by renames; an incremental build deletes the
rows of the records (or profiles) it resolved again and inserts their new rows. Either way
every change lands in one transaction, so a build killed at any point leaves the last
complete build in place. Summaries over the whole store (data quality, blocked values,
dropped links) are then recomputed from the published tables, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline_profiles.engines.base import Engine


@dataclass(frozen=True)
class Published:
    select: str
    by: str  # which rows an incremental build replaces: "record_key", "profile_id", or "" (append only)


TABLES = {
    "tl_members": Published("SELECT profile_id, record_key, source, stream, pk, seen_at FROM tl_work_members", "record_key"),
    "tl_profiles": Published("SELECT profile_id, created_at, updated_at, records, sources FROM tl_work_profiles", "profile_id"),
    "tl_golden": Published(
        "SELECT profile_id, field, value, source, stream, record_key, seen_at, rule FROM tl_work_golden", "profile_id"),
    "tl_record_values": Published(
        "SELECT r.record_key, r.source, r.stream, v.field, v.kind, v.raw, v.value, v.match_key, v.status, v.reason "
        "FROM tl_work_nv AS v JOIN tl_work_rec AS r ON r.rid = v.rid", "record_key"),
    "tl_links": Published(
        "SELECT a.record_key, b.record_key AS linked_record_key, l.rule, l.key FROM tl_work_links AS l "
        "JOIN tl_work_rec AS a ON a.rid = l.rid JOIN tl_work_rec AS b ON b.rid = l.anchor", "record_key"),
    # links the guards or a limit refused, weighed (see evidence.py)
    "tl_links_refused": Published(
        "SELECT a.record_key, b.record_key AS linked_record_key, f.rule, f.weight, f.reason, f.detail FROM tl_work_refused AS f "
        "JOIN tl_work_rec AS a ON a.rid = f.rid JOIN tl_work_rec AS b ON b.rid = f.anchor", "record_key"),
    # what the next build compares with (see incremental.py)
    # (landing time only where seen_at comes from it; elsewhere landing again changes nothing)
    "tl_state_records": Published("SELECT record_key, row_hash, CASE WHEN uses_landed THEN landed_at END AS landed_at, "
                                  "uses_landed FROM tl_work_rec", "record_key"),
    # (with the agreement rule's pairs as keys, and each record's matching fields: incremental.py)
    "tl_state_keys": Published(
        "SELECT r.record_key, k.rule, k.key FROM tl_work_keys AS k JOIN tl_work_rec AS r ON r.rid = k.rid "
        "UNION ALL SELECT record_key, rule, key FROM tl_work_akeys", "record_key"),
    "tl_state_person": Published("SELECT * FROM tl_work_sperson", "record_key"),
    "tl_state_drops": Published(
        "SELECT r.record_key, d.rule, d.reason, CAST(SUM(d.links) AS BIGINT) AS links FROM tl_work_drops AS d "
        "LEFT JOIN tl_work_rec AS r ON r.rid = d.rid GROUP BY r.record_key, d.rule, d.reason", "record_key"),
}

# Every distinct value normalized so far. A full build normalizes straight into the new
# table (no copy of millions of rows); an incremental one adds the values new to the store.
NORM_CACHE = "tl_norm_cache"


def fresh_values_table(full: bool) -> str:
    """Where this build's newly normalized values go."""
    return next_name(NORM_CACHE) if full else "tl_work_newnorm"


def summaries(max_records: int) -> dict[str, str]:
    """Summary table -> its SELECT over the published tables."""
    return {
        "tl_dq": "SELECT source, stream, field, status, reason, COUNT(*) AS n FROM tl_record_values "
                 "GROUP BY source, stream, field, status, reason",
        "tl_blocked": (
            f"SELECT rule AS field, key AS value, COUNT(*) AS records, 'shared by more than {max_records} records' AS reason "
            f"FROM tl_state_keys GROUP BY rule, key HAVING COUNT(*) > {max_records} UNION ALL "
            "SELECT field, match_key AS value, COUNT(DISTINCT record_key) AS records, reason FROM tl_record_values "
            "WHERE status = 'blocked' GROUP BY field, match_key, reason"
        ),
        "tl_dropped_links": "SELECT rule, reason, CAST(SUM(links) AS BIGINT) AS links FROM tl_state_drops GROUP BY rule, reason",
    }


def prepare_full() -> list[str]:
    """Outside the transaction: every table under its new name."""
    return [f"CREATE TABLE {next_name(t)} AS {p.select}" for t, p in TABLES.items()]


def swap_full() -> list[str]:
    """Inside the transaction: the new tables replace the published ones."""
    out = []
    for table in [*TABLES, NORM_CACHE]:
        out += [f"DROP TABLE IF EXISTS {table}", f"ALTER TABLE {next_name(table)} RENAME TO {table}"]
    return out


def replace_incremental() -> list[str]:
    """Inside the transaction: the rows of the resolved scope are replaced."""
    out = []
    for table, p in TABLES.items():
        if p.by == "record_key":
            # (dropped links that belong to no record, the agreement rule's skipped blocks, are
            # counted over the whole store by every build)
            nulls = " OR record_key IS NULL" if table == "tl_state_drops" else ""
            out.append(f"DELETE FROM {table} WHERE record_key IN (SELECT record_key FROM tl_work_scope){nulls}")
        elif p.by == "profile_id":
            out.append(f"DELETE FROM {table} WHERE profile_id IN (SELECT profile_id FROM tl_work_stale)")
        out.append(f"INSERT INTO {table} {p.select}")
    return out + [f"INSERT INTO {NORM_CACHE} SELECT * FROM {fresh_values_table(full=False)}"]


def refresh_summaries(max_records: int) -> list[str]:
    out = []
    for table, select in summaries(max_records).items():
        out += [f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} AS {select}"]
    return out


def next_name(table: str) -> str:
    return f"tl_next_{table[3:]}"


def drop_leftovers(engine: Engine) -> None:
    """Tables a killed full build may have left under their new names."""
    engine.run([f"DROP TABLE IF EXISTS {next_name(t)}" for t in [*TABLES, NORM_CACHE]])
