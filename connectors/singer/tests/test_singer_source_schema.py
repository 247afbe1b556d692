"""JSON Schema to Arrow and back, and RECORD lines parsed in bulk."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from threadline_singer.records import InvalidJSONLine, RecordParser
from threadline_singer.schema import (
    arrow_to_json_schema,
    is_json_field,
    json_schema_to_arrow,
    json_schema_to_field,
)

UTC = pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(
    ("schema", "arrow_type"),
    [
        ({"type": "integer"}, pa.int64()),
        ({"type": ["null", "number"]}, pa.float64()),
        ({"type": ["integer", "number", "null"]}, pa.float64()),
        ({"type": "boolean"}, pa.bool_()),
        ({"type": "string"}, pa.string()),
        ({"type": ["string", "null"], "format": "date-time"}, UTC),
        ({"type": "string", "format": "date"}, pa.date32()),
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}, UTC),
        ({"type": "array", "items": {"type": "string"}}, pa.list_(pa.string())),
        (
            {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}}},
            pa.struct([("city", pa.string()), ("zip", pa.int64())]),
        ),
    ],
)
def test_json_schema_types_map_to_arrow_types(schema, arrow_type):
    assert json_schema_to_field("f", schema).type == arrow_type


def test_null_in_the_types_makes_a_field_nullable():
    assert json_schema_to_field("f", {"type": ["null", "integer"]}).nullable
    assert not json_schema_to_field("f", {"type": "integer"}).nullable


@pytest.mark.parametrize(
    "schema",
    [{}, {"type": "object"}, {"type": ["string", "integer"]}, {"type": "array", "items": {}},
     {"anyOf": [{"type": "string"}, {"type": "object"}]}],
)
def test_free_form_and_mixed_values_are_kept_as_json_text(schema):
    field = json_schema_to_field("f", schema)
    assert field.type == pa.string() and is_json_field(field)


def test_nested_json_option_keeps_objects_as_text():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert is_json_field(json_schema_to_field("f", schema, nested="json"))


def test_arrow_schemas_round_trip_through_json_schema():
    arrow = pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("seen", UTC),
        pa.field("born", pa.date32()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("address", pa.struct([("city", pa.string())])),
    ])
    back = json_schema_to_arrow(arrow_to_json_schema(arrow))
    assert back.types == arrow.types
    assert [f.nullable for f in back] == [False, True, True, True, True]


def lines(*records: str) -> list[bytes]:
    return [b'{"type":"RECORD","stream":"s","record":' + r.encode() + b"}" for r in records]


def test_record_lines_become_a_typed_batch():
    parser = RecordParser(json_schema_to_arrow({"properties": {
        "id": {"type": "integer"}, "seen": {"type": "string", "format": "date-time"},
        "born": {"type": "string", "format": "date"}, "extra": {"type": "object"}}}))
    parsed = parser.parse_lines(lines(
        '{"id": 1, "seen": "2024-01-02T03:04:05+02:00", "born": "1990-05-06", "extra": {"a": [1]}}',
        '{"id": 2, "seen": "2024-01-02 03:04:05", "born": null}',
    ))
    rows = parsed.batch.to_pylist()
    assert rows[0]["seen"] == dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.timezone.utc)
    assert rows[1]["seen"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)  # no zone: UTC
    assert rows[0]["born"] == dt.date(1990, 5, 6)
    assert rows[0]["extra"] == '{"a":[1]}'
    assert parsed.rejected == []


def test_a_line_with_a_wrong_value_is_rejected_and_its_neighbours_kept():
    parser = RecordParser(json_schema_to_arrow({"properties": {"id": {"type": "integer"}}}))
    parsed = parser.parse_lines(lines(*[f'{{"id": {i}}}' for i in range(10)], '{"id": "eleven"}', '{"id": 12}'))
    assert parsed.batch.column("id").to_pylist() == [*range(10), 12]
    assert len(parsed.rejected) == 1 and '"eleven"' in parsed.rejected[0][0]


def test_an_unparsable_timestamp_is_left_as_text_for_the_engine_to_quarantine():
    parser = RecordParser(json_schema_to_arrow({"properties": {"t": {"type": "string", "format": "date-time"}}}))
    parsed = parser.parse_lines(lines('{"t": "2024-01-01T00:00:00Z"}', '{"t": "last tuesday"}'))
    assert parsed.batch.column("t").to_pylist() == ["2024-01-01T00:00:00Z", "last tuesday"]


def test_a_line_that_is_not_json_raises_with_its_position():
    parser = RecordParser(json_schema_to_arrow({"properties": {"id": {"type": "integer"}}}))
    with pytest.raises(InvalidJSONLine) as bad:
        parser.parse_lines([*lines('{"id": 1}', '{"id": 2}'), b'{"type":"RECORD", oops'])
    assert bad.value.index == 2


def test_record_dicts_with_decimals_and_datetimes_become_a_batch():
    from decimal import Decimal

    parser = RecordParser(json_schema_to_arrow({"properties": {
        "n": {"type": "number"}, "t": {"type": "string", "format": "date-time"}}}))
    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    parsed = parser.parse_records([{"n": Decimal("1.5"), "t": when}, {"n": Decimal("2"), "t": "2024-01-02T00:00:00Z"}])
    assert parsed.batch.column("n").to_pylist() == [1.5, 2.0]
    assert parsed.batch.column("t").type == UTC


def test_record_chunks_from_a_pipe_are_parsed_in_full_batches():
    from threadline_singer.protocol import StreamDecoder

    schema = {"properties": {"id": {"type": "integer"}}}
    decoder = StreamDecoder("s", json_schema_to_arrow(schema), where="test", batch_rows=100)
    list(decoder.feed_lines([b'{"type":"SCHEMA","stream":"s","schema":{"properties":{"id":{"type":"integer"}}}}']))
    records = [b'{"type":"RECORD","stream":"s","record":{"id":%d}}' % i for i in range(210)]
    sizes = []
    for start in range(0, 210, 30):  # chunks as they come off a pipe
        sizes += [m.records.num_rows for m in decoder.feed_lines(records[start : start + 30])]
    sizes += [m.records.num_rows for m in decoder.finish()]
    assert sizes == [100, 100, 10]
