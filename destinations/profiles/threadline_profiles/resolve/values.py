"""From raw tables to one long table of values: every mapped identifier and trait of every
record, as (record, field, kind, hint, raw text). Each function returns SQL (DuckDB dialect).

`field` is what the value is in the profile model (an identifier type such as `email` or
`customer_id:crm`, or a trait name); `kind` picks its normalizer; `hint` is what the source
says about reading it (its phone region, its date formats).
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline_profiles.config import (
    TRAIT_KINDS,
    ProfilesConfig,
    StreamMapping,
    identifier_kind,
)
from threadline_profiles.engines.base import lit, quote, work_table
from threadline_profiles.land.landing import LandedStream

UPDATED_AT = "_updated_at"


@dataclass(frozen=True)
class FieldSource:
    """One column of one stream feeding one field."""

    field: str
    kind: str
    hint: str
    column: str


def field_sources(mapping: StreamMapping) -> list[FieldSource]:
    """Every (field, kind, hint, column) a stream mapping declares."""
    formats = mapping.cleaning.date_formats
    out = []
    for column, id_type in mapping.identifiers.items():
        kind = identifier_kind(id_type)
        hint = (mapping.cleaning.phone_region or "") if kind == "phone" else ""
        out.append(FieldSource(id_type, kind, hint, column))
    for trait, column in mapping.trait_columns().items():
        kind = TRAIT_KINDS.get(trait, "text")
        if kind == "text" and column in formats:
            kind = "date"
        hint = "||".join(formats.get(column, [])) if kind == "date" else ("given" if trait == "first_name" else "")
        out.append(FieldSource(trait, kind, hint, column))
    if mapping.updated_at:
        out.append(FieldSource(UPDATED_AT, "datetime", "||".join(formats.get(mapping.updated_at, [])), mapping.updated_at))
    return out


def mapped_streams(config: ProfilesConfig, landed: list[LandedStream]) -> list[tuple[LandedStream, StreamMapping]]:
    """The landed streams that have a mapping, in a stable order."""
    return [(s, config.mappings[s.key]) for s in landed if s.key in config.mappings]


def record_key_expr(stream: LandedStream) -> str:
    return f"{lit(stream.key + ':')} || _tl_key"


def row_hash_expr(mapping: StreamMapping) -> str:
    """An md5 over every column the mapping names (identifiers, traits, events, orders, ...):
    an incremental build compares it with the last build's to find the records that changed.
    Each value is length-prefixed, so no two different rows give the same text."""
    columns = sorted(set(mapping.columns_by_path().values()))
    parts = [f"COALESCE(CAST(LENGTH(CAST({quote(c)} AS VARCHAR)) AS VARCHAR) || ':' || CAST({quote(c)} AS VARCHAR), '-')"
             for c in columns]
    joined = " || '|' || ".join(parts) or lit("")
    return f"MD5({joined})"


# When a record landed, as text that sorts as time does, to the microsecond: it is the `seen_at`
# of a record without an update time, which survivorship orders by. To the second, two commits
# landed within one second tied and the record key chose between them, so which one won hung
# on how fast the engine landed them (examples/mission: DuckDB lands x.followers' two pages in
# one second, Spark in two, and the other page won there).
LANDED_AT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def landed_records_sql(streams: list[tuple[LandedStream, StreamMapping]]) -> str:
    """A SELECT of every landed record of a mapped stream, with its row hash."""
    parts = [
        f"SELECT {lit(s.source)} AS source, {lit(s.stream)} AS stream, _tl_key AS pk, {record_key_expr(s)} AS record_key, "
        f"_tl_run_id AS run_id, STRFTIME(_tl_landed_at, {lit(LANDED_AT_FORMAT)}) AS landed_at, "
        f"{m.cleaning.priority} AS priority, {row_hash_expr(m)} AS row_hash FROM {s.table}"
        for s, m in streams
    ]
    return " UNION ALL ".join(parts) if parts else (
        "SELECT CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS stream, CAST(NULL AS VARCHAR) AS pk, "
        "CAST(NULL AS VARCHAR) AS record_key, CAST(NULL AS VARCHAR) AS run_id, CAST(NULL AS VARCHAR) AS landed_at, "
        "0 AS priority, CAST(NULL AS VARCHAR) AS row_hash WHERE 1 = 0"
    )


# How many leading characters of a record's primary key (after its stream's `source.stream:`)
# group records for numbering on Spark (see `records_sql`)
KEY_PREFIX = 4


def records_sql(landed: str, scope: str | None = None, *, prefix_groups: bool = True) -> str:
    """tl_work_records: the records this pass works on (all, or those in table `scope`),
    numbered in record-key order, so that a record's place among its neighbours (which
    decides anchors and the order limits are settled in) is the same in every build.

    On Spark a window without PARTITION BY is one task, every record through one core, so
    Spark numbers the same way in groups: a record's group is its record key cut after its
    stream's prefix and KEY_PREFIX characters of its primary key. Cutting keys at one length
    per stream keeps their order (a key's group never sorts after a greater key's), so a
    record's number is the records of the groups before its own plus its place within its
    group: the numbers `ROW_NUMBER() OVER (ORDER BY record_key)` gives, each group numbered in
    its own task. The groups' offsets are one small window over the groups. That holds while
    no stream's `source.stream:` begins another's, which only a stream key holding `:` can
    break: the caller passes `prefix_groups=False` then, and Spark numbers in one window too."""
    where = f" WHERE u.record_key IN (SELECT record_key FROM {scope})" if scope else ""
    plain = f"AS SELECT ROW_NUMBER() OVER (ORDER BY u.record_key) AS rid, u.* FROM ({landed}) AS u{where}"
    if not prefix_groups:
        return work_table("tl_work_records", plain)
    group = f"LEFT(u.record_key, LENGTH(u.record_key) - LENGTH(u.pk) + {KEY_PREFIX})"
    grouped = (
        f"AS WITH sizes AS (SELECT {group} AS g, COUNT(*) AS c FROM ({landed}) AS u{where} GROUP BY 1), "
        "offsets AS (SELECT g, SUM(c) OVER (ORDER BY g ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - c AS earlier "
        "FROM sizes) "
        f"SELECT CAST(o.earlier + ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY u.record_key) AS BIGINT) AS rid, u.* "
        f"FROM ({landed}) AS u JOIN offsets AS o ON o.g = {group}{where}")
    return work_table("tl_work_records", plain, spark=grouped)


def values_sql(streams: list[tuple[LandedStream, StreamMapping]]) -> str:
    """tl_work_values: (rid, field, kind, hint, raw) for every non-null mapped value."""
    parts = []
    for stream, mapping in streams:
        for fs in field_sources(mapping):
            col = quote(fs.column)
            parts.append(
                f"SELECT {record_key_expr(stream)} AS record_key, {lit(fs.field)} AS field, {lit(fs.kind)} AS kind, "
                f"{lit(fs.hint)} AS hint, CAST({col} AS VARCHAR) AS raw FROM {stream.table} WHERE {col} IS NOT NULL"
            )
    if not parts:
        parts = ["SELECT CAST(NULL AS VARCHAR) AS record_key, CAST(NULL AS VARCHAR) AS field, CAST(NULL AS VARCHAR) AS kind, "
                 "CAST(NULL AS VARCHAR) AS hint, CAST(NULL AS VARCHAR) AS raw WHERE 1 = 0"]
    return (
        work_table(
            "tl_work_values",
            "AS SELECT r.rid, v.field, v.kind, v.hint, v.raw "
            f"FROM ({' UNION ALL '.join(parts)}) AS v JOIN tl_work_records AS r ON r.record_key = v.record_key")
    )


def distinct_values_sql(known: list[str]) -> str:
    """tl_work_distinct: the values to normalize, each distinct (kind, hint, raw) once and
    numbered (for Engine.map_rows's batches), leaving out those already in the `known` tables."""
    unknown = "".join(
        f" AND NOT EXISTS (SELECT 1 FROM {t} AS n WHERE n.kind = d.kind AND n.hint = d.hint AND n.raw = d.raw)" for t in known)
    select = ("AS SELECT {}d.kind, d.hint, d.raw FROM "
              f"(SELECT DISTINCT kind, hint, raw FROM tl_work_values) AS d WHERE 1 = 1{unknown}")
    # Spark normalizes on its executors, with no batches to cut (SparkEngine.map_rows): no n,
    # and so no window over every value, which would be one task whatever the cluster
    return work_table("tl_work_distinct", select.format("ROW_NUMBER() OVER () AS n, "), spark=select.format(""))


def normalized_values_sql(norm: list[str]) -> str:
    """tl_work_nv: every value with its normalized form and status, from the `norm` tables
    (the values normalized before and those normalized now)."""
    union = " UNION ALL ".join(f"SELECT * FROM {t}" for t in norm)
    return (
        work_table(
            "tl_work_nv",
            "AS SELECT v.rid, v.field, v.kind, v.raw, n.value, n.match_key, n.status, n.reason "
            f"FROM tl_work_values AS v JOIN ({union}) AS n ON n.kind = v.kind AND n.hint = v.hint AND n.raw = v.raw")
    )


def records_seen_sql() -> str:
    """tl_work_rec: records with `seen_at`, the source's own update time when mapped, else when
    landed (`uses_landed`: then re-landing an unchanged record moves its `seen_at`)."""
    return (
        work_table(
            "tl_work_rec",
            "AS SELECT r.rid, r.source, r.stream, r.pk, r.record_key, r.run_id, r.priority, "
            "COALESCE(u.value, r.landed_at) AS seen_at, r.row_hash, r.landed_at, u.value IS NULL AS uses_landed "
            "FROM tl_work_records AS r LEFT JOIN "
            f"(SELECT rid, MAX(value) AS value FROM tl_work_nv WHERE field = {lit(UPDATED_AT)} AND status = 'ok' GROUP BY rid) AS u "
            "ON u.rid = r.rid")
    )
