"""Column types map to Arrow exactly, and a row read from the replication slot (pgoutput's text)
equals the same row read in bulk (binary COPY)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pyarrow as pa

from threadline.contracts import OPERATION_COLUMN, ReadRequest, SyncMode, Batch
from threadline.engine.coerce import coerce
from threadline_postgres import PostgresSource
from threadline_postgres.testing import TEST_DSN, execute

from pg_jobs import source_config

COLUMNS = """id int primary key, amount numeric(12,3), huge numeric(50,10), loose numeric, at timestamptz,
  local_at timestamp, day date, clock time, ints int[], words text[], doc jsonb, raw_doc json, ref uuid,
  blob bytea, flag boolean, ratio real, score double precision, small smallint, big bigint, code varchar(10),
  fixed char(3), span interval, addr inet, mood text"""

ROWS = """(1, 123.456, 12345678901234567890123456789012345678.1234567891, 1.5, '2024-01-02 03:04:05.123456+02',
  '2024-01-02 03:04:05', '2024-01-02', '12:34:56.5', '{1,2,NULL}', '{"a","b c","with \\"quote\\"",NULL}',
  '{"a": [1, 2], "b": {"c": null}}', '{"x":1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', true, 1.5,
  2.25, 7, 9000000000, 'hello', 'ab', '1 year 2 days 03:04:05.5', '10.0.0.1/32', 'happy'),
  (2, -0.5, null, null, null, null, null, null, '{}', '{}', 'null', '[]', null, '\\x', false, null, null, null,
  null, null, null, null, null, null),
  (3, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null)"""


def _stream(schema: str, cdc: bool):
    config = PostgresSource.spec.model_validate(source_config(schema, cdc=cdc))
    return config, PostgresSource().discover(config).get("everything")


def _rows(messages, stream) -> list[dict]:
    batches = [coerce(m.records, stream.schema, stream.primary_key).good for m in messages if isinstance(m, Batch)]
    rows = [r for b in batches for r in b.to_pylist()]
    return sorted(({k: v for k, v in r.items() if k != OPERATION_COLUMN} for r in rows), key=lambda r: r["id"])


def test_each_column_type_becomes_its_exact_arrow_type(schema):
    execute(f'create table "{schema}".everything ({COLUMNS})')
    _, stream = _stream(schema, cdc=False)
    types = {f.name: f.type for f in stream.schema}
    assert types["amount"] == pa.decimal128(12, 3)
    assert types["huge"] == pa.decimal256(50, 10)
    assert types["loose"] == pa.string()  # any precision: exact as text
    assert types["at"] == pa.timestamp("us", tz="UTC") and types["local_at"] == pa.timestamp("us")
    assert types["day"] == pa.date32() and types["clock"] == pa.time64("us")
    assert types["ints"] == pa.list_(pa.int32()) and types["words"] == pa.list_(pa.string())
    assert types["doc"] == pa.json_() and types["raw_doc"] == pa.json_()
    assert types["ref"] == pa.uuid() and types["blob"] == pa.binary()
    assert (types["flag"], types["ratio"], types["score"]) == (pa.bool_(), pa.float32(), pa.float64())
    assert (types["small"], types["big"]) == (pa.int16(), pa.int64())
    assert types["code"] == types["fixed"] == types["addr"] == types["mood"] == pa.string()
    assert types["span"] == pa.month_day_nano_interval()
    assert stream.primary_key == ("id",)


def test_a_full_refresh_reads_each_value_exactly(schema):
    execute(f'create table "{schema}".everything ({COLUMNS})')
    execute(f'insert into "{schema}".everything values {ROWS}')
    config, stream = _stream(schema, cdc=False)
    first = _rows(PostgresSource().read(config, ReadRequest(stream, SyncMode.FULL_REFRESH)), stream)[0]
    assert first["amount"] == decimal.Decimal("123.456")
    assert first["huge"] == decimal.Decimal("12345678901234567890123456789012345678.1234567891")
    assert first["at"] == dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=dt.timezone.utc)
    assert first["clock"] == dt.time(12, 34, 56, 500000)
    assert first["ints"] == [1, 2, None] and first["words"] == ["a", "b c", 'with "quote"', None]
    assert first["ref"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert first["blob"] == b"\x00\xff\x10" and first["fixed"] == "ab "
    assert first["span"] == pa.MonthDayNano([12, 2, (3 * 3600 + 4 * 60 + 5.5) * 10**9])


def test_rows_from_the_replication_slot_equal_the_same_rows_read_in_bulk(cdc_schema):
    schema = cdc_schema
    execute(f'create table "{schema}".everything ({COLUMNS})')
    config, stream = _stream(schema, cdc=True)
    source = PostgresSource()
    request = ReadRequest(stream, SyncMode.INCREMENTAL)
    state = {}
    for message in source.read(config, request):  # the (empty) snapshot; the slot exists from here on
        state = getattr(message, "state", state)
    execute(f'insert into "{schema}".everything values {ROWS}')
    changes = list(source.read(config, ReadRequest(stream, SyncMode.INCREMENTAL, state=state)))
    from_slot = _rows(changes, stream)
    in_bulk = _rows(source.read(config, ReadRequest(stream, SyncMode.FULL_REFRESH)), stream)
    assert len(from_slot) == 3
    assert from_slot == in_bulk

