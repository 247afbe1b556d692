"""Stage 1, land: one raw table per source stream, upserted by primary key, with lineage.

Every raw table carries the stream's own columns plus

    _tl_key        the record's primary key as text (several key columns joined by "|")
    _tl_source     the source's name in the job file
    _tl_stream     the stream's name
    _tl_run_id     the run that last wrote the record
    _tl_landed_at  when that run committed it

Batches go into a per-writer staging table as they arrive (so memory stays flat) and are
merged into the raw table at each commit: delete the staged keys, insert the staged rows,
in one transaction. A REPLACE stream merges into a side table that replaces the raw table
when the stream finishes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import OPERATION_COLUMN, Operation

from threadline_profiles.engines.base import lit, quote, sql_type
from threadline_profiles.store import STREAMS_TABLE, ProfileStore


@dataclass(frozen=True)
class LandedStream:
    """A source stream as the store keeps it: where it landed and its primary key."""

    source: str
    stream: str
    table: str
    primary_key: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.source}.{self.stream}"


def landed_streams(store: ProfileStore) -> list[LandedStream]:
    """Every stream that has landed in the store, in a fixed order."""
    store.ensure_catalog()
    rows = store.engine.rows(f"SELECT source, stream, table_name, primary_key FROM {STREAMS_TABLE} ORDER BY source, stream")
    return [
        LandedStream(r["source"], r["stream"], r["table_name"], tuple(k for k in (r["primary_key"] or "").split("|") if k))
        for r in rows
    ]


LINEAGE = ("_tl_key", "_tl_source", "_tl_stream", "_tl_run_id", "_tl_landed_at")


def register_stream(source: str, stream: str, table: str, primary_key: tuple[str, ...]) -> list[str]:
    where = f"source = {lit(source)} AND stream = {lit(stream)}"
    return [
        f"DELETE FROM {STREAMS_TABLE} WHERE {where}",
        f"INSERT INTO {STREAMS_TABLE} VALUES ({lit(source)}, {lit(stream)}, {lit(table)}, "
        f"{lit('|'.join(primary_key))}, CURRENT_TIMESTAMP)",
    ]


def create_raw_table(table: str, schema: pa.Schema) -> str:
    columns = [f"{quote(f.name)} {sql_type(f.type)}" for f in schema if f.name not in LINEAGE]
    lineage = ["_tl_key VARCHAR", "_tl_source VARCHAR", "_tl_stream VARCHAR", "_tl_run_id VARCHAR", "_tl_landed_at TIMESTAMP"]
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns + lineage)})"


def add_missing_columns(table: str, schema: pa.Schema, existing: list[str]) -> list[str]:
    """A stream that gained columns since its table was created gets them added."""
    have = set(existing)
    return [
        f"ALTER TABLE {table} ADD COLUMN {quote(f.name)} {sql_type(f.type)}"
        for f in schema if f.name not in have and f.name not in LINEAGE
    ]


def create_stage_table(stage: str, schema: pa.Schema) -> list[str]:
    columns = [f"{quote(f.name)} {sql_type(f.type)}" for f in schema]
    return [
        f"DROP TABLE IF EXISTS {stage}",
        f"CREATE TABLE {stage} ({', '.join(columns + ['_tl_key VARCHAR', '_tl_seq BIGINT'])})",
    ]


def insert_into_stage(stage: str, view: str, schema: pa.Schema) -> str:
    cols = ", ".join(quote(f.name) for f in schema)
    return f"INSERT INTO {stage} ({cols}, _tl_key, _tl_seq) SELECT {cols}, _tl_key, _tl_seq FROM {view}"


def duplicate_keys_sql(stage: str) -> str:
    return f"SELECT COUNT(*) - COUNT(DISTINCT _tl_key) FROM {stage}"


def staged_keys_landed_sql(stage: str, into: str) -> str:
    """How many staged keys `into` already holds (none: the merge is an append)."""
    return f"SELECT COUNT(*) FROM {stage} WHERE _tl_key IN (SELECT _tl_key FROM {into})"


def merge_stage(stage: str, into: str, schema: pa.Schema, source: str, stream: str, run_id: str,
                has_duplicates: bool = True, keys_landed: bool = True) -> list[str]:
    """Upsert the staged rows into `into` by key (the last staged row of a key wins), then
    empty the stage. Run inside one transaction. Without duplicate keys in the stage the
    ranking is skipped (it is the costly part). In a change stream (a schema with the
    `_threadline_op` column), a key whose last staged row is a delete is removed: the record
    is gone, and the next build resolves without it. Without `keys_landed` (no staged key is
    in `into`) the merge is one INSERT, atomic by itself."""
    cols = ", ".join(quote(f.name) for f in schema)
    staged = (f"(SELECT *, ROW_NUMBER() OVER (PARTITION BY _tl_key ORDER BY _tl_seq DESC) AS _tl_rn FROM {stage}) "
              "AS staged WHERE _tl_rn = 1") if has_duplicates else f"{stage}"
    if OPERATION_COLUMN in schema.names:
        live = f"{quote(OPERATION_COLUMN)} IS DISTINCT FROM {lit(Operation.DELETE.value)}"
        staged = f"{staged} AND {live}" if has_duplicates else f"{stage} WHERE {live}"
    return [
        *([f"DELETE FROM {into} WHERE _tl_key IN (SELECT _tl_key FROM {stage})"] if keys_landed else []),
        f"INSERT INTO {into} ({cols}, _tl_key, _tl_source, _tl_stream, _tl_run_id, _tl_landed_at) "
        f"SELECT {cols}, _tl_key, {lit(source)}, {lit(stream)}, {lit(run_id)}, CURRENT_TIMESTAMP FROM {staged}",
        f"TRUNCATE {stage}",  # one statement on every engine (a DELETE rewrites the table on Spark)
    ]


def replace_table(raw: str, side: str) -> list[str]:
    """The raw table becomes exactly the side table's rows (run inside one transaction)."""
    return [f"DELETE FROM {raw}", f"INSERT INTO {raw} SELECT * FROM {side}", f"DROP TABLE {side}"]


def create_side_table(side: str, raw: str) -> list[str]:
    return [f"DROP TABLE IF EXISTS {side}", f"CREATE TABLE {side} AS SELECT * FROM {raw} WHERE 1 = 0"]


def record_keys(batch: pa.RecordBatch, primary_key: tuple[str, ...], fallback_prefix: str, offset: int) -> pa.Array:
    """The `_tl_key` of every row: its primary key as text, or (no key declared) a key unique
    to this run and row, so appends never collide."""
    if not primary_key:
        return pa.array([f"{fallback_prefix}:{offset + i}" for i in range(batch.num_rows)], pa.string())
    parts = [pc.cast(batch.column(name), pa.string()) for name in primary_key]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "|", null_handling="emit_null")
