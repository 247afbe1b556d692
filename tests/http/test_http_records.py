"""JSON pages become Arrow against the stream's schema; bad bodies are clear errors."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest

from threadline.contracts import Batch, ConfigError, FatalError, ReadRequest, SyncMode
from threadline.http import BearerAuth, HttpClient, RestStream, RetryPolicy, parse_type
from threadline.sandbox import CustomersSandbox, Reply, Sandbox, SandboxRequest, route

FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, max_retry_time=5)
FULL = {
    "id": "int64", "email": "string", "lifetime_value": "decimal(18,2)",
    "address": "struct<city: string, postcode: string>", "tags": "list<string>", "updated_at": "timestamp",
}


class ShapesSandbox(Sandbox):
    """Bodies of other shapes than the customers API's."""

    name = "shapes"

    @route("GET", "/bare")
    def bare(self, req: SandboxRequest) -> Reply:
        return Reply.json([{"id": 1}, {"id": 2}])

    @route("GET", "/nested")
    def nested(self, req: SandboxRequest) -> Reply:
        return Reply.json({"result": {"items": [{"id": 1}, {"id": 2}], "more": False}, "ok": True})

    @route("GET", "/mixed")
    def mixed(self, req: SandboxRequest) -> Reply:
        return Reply.json({"data": [{"id": 1, "score": 5}, {"id": "two", "score": "n/a"}, {"id": 3, "score": 2.5}]})

    @route("GET", "/jsonish")
    def jsonish(self, req: SandboxRequest) -> Reply:
        return Reply.json({"data": [
            {"id": 1, "extra": {"name": "Zoë", "n": 12345678901234567890123, "f": 0.1}},
            {"id": 2, "extra": None}, {"id": 3},
        ]})

    @route("GET", "/jsonish-small")
    def jsonish_small(self, req: SandboxRequest) -> Reply:  # a long digit run inside a string is no reason to leave
        return Reply.json({"data": [{"id": 1, "extra": {"name": "Zoë", "n": 7, "f": 0.1}}, {"id": 2}],
                           "links": {"next": None, "self": "/p?cursor=0000045276883842902342"}})

    @route("GET", "/others")
    def others(self, req: SandboxRequest) -> Reply:  # ?some=1: the second record lacks one undeclared field
        second = {"id": 2, "b": [1, 2]} if req.param("some") else {"id": 2, "b": [1, 2], "a": None}
        return Reply.json({"data": [{"id": 1, "b": {"x": "Zoë"}, "a": 1}, second, {"id": 3, "b": None, "a": "z"}]})

    @route("GET", "/epoch")
    def epoch(self, req: SandboxRequest) -> Reply:
        return Reply.json({"data": [{"id": 1, "seen": 1700000000000000}]})


@pytest.fixture(scope="module")
def crm():
    with CustomersSandbox(count=30) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def clean(crm):
    crm.reset()


@pytest.fixture(scope="module")
def shapes():
    with ShapesSandbox() as sandbox:
        yield sandbox


def read(sandbox, schema, path="/customers", records_path="data", params=None) -> pa.Table:
    stream = RestStream(name="customers", path=path, schema=schema, records_path=records_path,
                        params=params or {"limit": 1000})
    client = HttpClient(sandbox.base_url, auth=BearerAuth(CustomersSandbox.TOKEN), connector="crm", retry=FAST)
    batches = [m.records for m in stream.read(client, ReadRequest(stream.to_stream(), SyncMode.FULL_REFRESH))
               if isinstance(m, Batch)]
    return pa.Table.from_batches(batches)


def test_records_match_the_declared_schema_exactly(crm):
    table = read(crm, FULL)
    assert table.schema == RestStream(name="x", path="/", schema=FULL).schema
    assert table.num_rows == 30


def test_values_are_parsed_by_type(crm):
    first = read(crm, FULL).slice(0, 1).to_pylist()[0]
    expected = crm.customers[0]
    assert first["lifetime_value"] == Decimal(expected["lifetime_value"])
    assert first["address"] == expected["address"]
    assert first["tags"] == expected["tags"]
    assert first["updated_at"].isoformat() == "2024-01-01T00:00:00+00:00"


def test_fields_outside_the_schema_are_left_out(crm):
    assert read(crm, {"id": "int64"}).column_names == ["id"]


def test_json_columns_keep_nested_objects_as_json_text(crm):
    table = read(crm, {"id": "int64", "address": "json"})
    assert table.schema.field("address").type == pa.string()
    assert json.loads(table.column("address")[0].as_py()) == crm.customers[0]["address"]


def test_json_columns_come_from_the_bytes_path_and_keep_text_as_sent(shapes):
    from threadline.http.records import PageParser

    stream = RestStream(name="x", path="/jsonish-small", schema={"id": "int64", "extra": "json"})
    parser = stream._parser
    calls = []
    original = PageParser._parsed
    PageParser._parsed = lambda self, *a: calls.append(a) or original(self, *a)  # type: ignore[method-assign]
    try:
        table = read(shapes, {"id": "int64", "extra": "json"}, path="/jsonish-small")
    finally:
        PageParser._parsed = original  # type: ignore[method-assign]
    assert calls == []  # no json.loads + pa.array for a page whose json column orjson reads exactly
    assert parser.json_columns == {"extra"}
    assert table.column("extra").to_pylist() == ['{"name":"Zoë","n":7,"f":0.1}', None]


def test_json_columns_keep_integers_past_64_bits_exactly(shapes):
    table = read(shapes, {"id": "int64", "extra": "json"}, path="/jsonish")
    extra = table.column("extra").to_pylist()
    assert json.loads(extra[0]) == {"name": "Zoë", "n": 12345678901234567890123, "f": 0.1}
    assert "12345678901234567890123" in extra[0]  # not 1.2345678901234568e+22
    assert extra[1:] == [None, None]  # null and absent alike


@pytest.mark.parametrize("query", ["", "?some=1"])
def test_undeclared_fields_are_kept_as_json_whether_every_record_has_them_or_not(shapes, query):
    stream = RestStream(name="x", path=f"/others{query}", schema={"id": "int64", "extra": "json"}, other_fields="extra")
    client = HttpClient(shapes.base_url, connector="shapes", retry=FAST)
    batches = [m.records for m in stream.read(client, ReadRequest(stream.to_stream(), SyncMode.FULL_REFRESH))
               if isinstance(m, Batch)]
    extra = [json.loads(text) for text in pa.Table.from_batches(batches).column("extra").to_pylist()]
    second = {"b": [1, 2]} if query else {"a": None, "b": [1, 2]}
    assert extra == [{"a": 1, "b": {"x": "Zoë"}}, second, {"a": "z", "b": None}]


@pytest.mark.parametrize("enabled", [True, False])
def test_parsing_pages_leaves_the_garbage_collector_as_it_found_it(crm, enabled):
    import gc

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        assert read(crm, {"id": "int64", "address": "json"}).num_rows == 30  # the orjson path, paused around each page
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_a_body_that_is_the_list_itself(shapes):
    assert read(shapes, {"id": "int64"}, path="/bare", records_path="").column("id").to_pylist() == [1, 2]


def test_a_nested_records_path(shapes):
    table = read(shapes, {"id": "int64"}, path="/nested", records_path="result.items")
    assert table.column("id").to_pylist() == [1, 2]


def test_values_that_do_not_fit_are_handed_over_as_text_not_dropped(shapes):
    table = read(shapes, {"id": "int64", "score": "float64"}, path="/mixed")
    assert table.num_rows == 3
    assert table.column("id").to_pylist() == ["1", "two", "3"]  # the engine coerces and quarantines


def test_epoch_numbers_become_timestamps(shapes):
    table = read(shapes, {"id": "int64", "seen": "timestamp"}, path="/epoch")
    assert table.schema.field("seen").type == pa.timestamp("us", tz="UTC")
    assert table.column("seen")[0].as_py().year == 2023


def test_a_records_path_that_matches_nothing_is_an_error_not_an_empty_success(crm):
    with pytest.raises(FatalError) as raised:
        read(crm, {"id": "int64"}, records_path="items")
    text = str(raised.value)
    assert "'items' matched nothing" in text and "data" in text and "crm / customers" in text


def test_an_html_page_is_a_fatal_error_with_a_hint(crm):
    crm.inject("html")
    with pytest.raises(FatalError) as raised:
        read(crm, {"id": "int64"})
    assert "HTML" in str(raised.value)
    assert "base_url" in raised.value.hint


def test_malformed_json_is_retried(crm):
    crm.inject("malformed_json")
    assert read(crm, {"id": "int64"}).num_rows == 30
    assert [r.fault for r in crm.requests] == ["malformed_json", ""]


def test_malformed_json_that_persists_is_a_transient_error(crm):
    crm.inject("malformed_json", times=0)
    with pytest.raises(Exception) as raised:
        read(crm, {"id": "int64"})
    assert "not valid JSON" in str(raised.value)


@pytest.mark.parametrize("text,expected", [
    ("int64", pa.int64()), ("timestamp", pa.timestamp("us", tz="UTC")), ("decimal(18,2)", pa.decimal128(18, 2)),
    ("list<string>", pa.list_(pa.string())), ("struct<a: int64, b: list<string>>",
                                               pa.struct([("a", pa.int64()), ("b", pa.list_(pa.string()))])),
])
def test_type_strings(text, expected):
    assert parse_type(text) == expected


def test_a_bare_struct_asks_for_its_fields():
    with pytest.raises(ConfigError) as raised:
        parse_type("struct", "streams.customers.schema.address")
    assert raised.value.field == "streams.customers.schema.address"
    assert "json" in raised.value.hint


@pytest.mark.parametrize("odd", [None, [1], "text", {}])
def test_a_nested_json_column_reads_every_record_whatever_lies_on_its_path(odd):
    stream = RestStream(name="x", path="/x", schema={"id": "int64", "props": "json"}, columns={"props": "b.x"})
    records = [{"id": 1, "b": {"x": {"k": "Zoë"}}}, {"id": 2, "b": odd}, {"id": 3, "b": {"x": None}}, {"id": 4}]
    texts = stream._parser.plan.json_columns_from(records)["props"].to_pylist()
    assert [json.loads(t) if t is not None else None for t in texts] == [{"k": "Zoë"}, None, None, None]
