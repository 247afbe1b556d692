"""From raw tables to one long table of values: every mapped identifier and trait of every
record, as (record, field, kind, hint, raw text). Each function returns SQL (DuckDB dialect).

`field` is what the value is in the profile model (an identifier type such as `email` or
`customer_id:crm`, or a trait name); `kind` picks its normalizer; `hint` is what the source
says about reading it (its phone region, its date formats).
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline_profiles.config import TRAIT_KINDS, ProfilesConfig, StreamMapping, identifier_kind
from threadline_profiles.engines.base import lit, quote
from threadline_profiles.store import LandedStream

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


def records_sql(streams: list[tuple[LandedStream, StreamMapping]]) -> str:
    """tl_work_records: one row per landed record of a mapped stream, numbered by record key."""
    parts = [
        f"SELECT {lit(s.source)} AS source, {lit(s.stream)} AS stream, _tl_key AS pk, {record_key_expr(s)} AS record_key, "
        f"_tl_run_id AS run_id, STRFTIME(_tl_landed_at, '%Y-%m-%d %H:%M:%S') AS landed_at, "
        f"{m.cleaning.priority} AS priority FROM {s.table}"
        for s, m in streams
    ]
    union = " UNION ALL ".join(parts) if parts else (
        "SELECT CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS stream, CAST(NULL AS VARCHAR) AS pk, "
        "CAST(NULL AS VARCHAR) AS record_key, CAST(NULL AS VARCHAR) AS run_id, CAST(NULL AS VARCHAR) AS landed_at, "
        "0 AS priority WHERE 1 = 0"
    )
    return f"CREATE TEMP TABLE tl_work_records AS SELECT ROW_NUMBER() OVER (ORDER BY record_key) AS rid, u.* FROM ({union}) AS u"


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
        "CREATE TEMP TABLE tl_work_values AS SELECT r.rid, v.field, v.kind, v.hint, v.raw "
        f"FROM ({' UNION ALL '.join(parts)}) AS v JOIN tl_work_records AS r ON r.record_key = v.record_key"
    )


def distinct_values_sql() -> str:
    """The values to normalize: each distinct (kind, hint, raw) once."""
    return "SELECT DISTINCT kind, hint, raw FROM tl_work_values"


def normalized_values_sql() -> str:
    """tl_work_nv: every value with its normalized form and status."""
    return (
        "CREATE TEMP TABLE tl_work_nv AS SELECT v.rid, v.field, v.kind, v.raw, n.value, n.match_key, n.status, n.reason "
        "FROM tl_work_values AS v JOIN tl_work_norm AS n ON n.kind = v.kind AND n.hint = v.hint AND n.raw = v.raw"
    )


def records_seen_sql() -> str:
    """tl_work_rec: records with `seen_at`, the source's own update time when mapped, else when landed."""
    return (
        "CREATE TEMP TABLE tl_work_rec AS SELECT r.rid, r.source, r.stream, r.pk, r.record_key, r.run_id, r.priority, "
        "COALESCE(u.value, r.landed_at) AS seen_at FROM tl_work_records AS r LEFT JOIN "
        f"(SELECT rid, MAX(value) AS value FROM tl_work_nv WHERE field = {lit(UPDATED_AT)} AND status = 'ok' GROUP BY rid) AS u "
        "ON u.rid = r.rid"
    )


def data_quality_sql() -> str:
    """tl_work_dq: per source, stream, field and status (and reason): how many values."""
    return (
        "CREATE TEMP TABLE tl_work_dq AS SELECT r.source, r.stream, v.field, v.status, v.reason, COUNT(*) AS n "
        "FROM tl_work_nv AS v JOIN tl_work_records AS r ON r.rid = v.rid "
        "GROUP BY r.source, r.stream, v.field, v.status, v.reason"
    )
