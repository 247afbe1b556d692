"""Reading one page ahead: a stream whose paginator can tell the next request from the raw
answer at no extra cost fetches the next page while the current one parses. Order, errors and
checkpoints are as without it."""

from __future__ import annotations

import pytest

from threadline.contracts import Batch, Checkpoint, FatalError, ReadRequest, SyncMode
from threadline.http import (
    BearerAuth, BodyCursorPaginator, HttpClient, LinkHeaderPaginator, OffsetPaginator, RestStream, RetryPolicy,
)
from threadline.sandbox import CustomersSandbox

WITH_JSON = {"id": "int64", "email": "string", "address": "json"}  # json columns: orjson reads every page anyway
PLAIN = {"id": "int64", "email": "string"}


@pytest.fixture
def crm():
    with CustomersSandbox(count=95) as sandbox:
        yield sandbox


def stream(paginator, schema=WITH_JSON, **kw) -> RestStream:
    return RestStream(name="customers", path="/customers", schema=schema, primary_key=["id"], paginator=paginator, **kw)


def read(crm, declared: RestStream) -> list:
    client = HttpClient(crm.base_url, auth=BearerAuth(CustomersSandbox.TOKEN), connector="crm",
                        retry=RetryPolicy(max_attempts=2, backoff_base=0.01))
    return list(declared.read(client, ReadRequest(declared.to_stream(), SyncMode.FULL_REFRESH)))


def ids(messages: list) -> list[int]:
    return [i for m in messages if isinstance(m, Batch) for i in m.records.column("id").to_pylist()]


def test_streams_read_ahead_only_where_the_guess_costs_nothing():
    assert stream(OffsetPaginator(limit=20)).reads_ahead()  # the json columns parse each page with orjson anyway
    assert stream(OffsetPaginator(limit=20), schema=PLAIN).reads_ahead()  # a small page's parse is orjson's too

    class OwnParse(RestStream):
        def parse_page(self, response):
            return super().parse_page(response)

    own = OwnParse(name="customers", path="/customers", schema=PLAIN, paginator=OffsetPaginator(limit=20))
    assert not own.reads_ahead()  # a page parsed its own way would be parsed twice
    assert stream(LinkHeaderPaginator(), schema=PLAIN).reads_ahead()  # the next page is in a header


def test_reading_ahead_keeps_the_order_and_sends_no_request_past_the_end(crm):
    messages = read(crm, stream(OffsetPaginator(limit=20, total_path="total")))
    assert ids(messages) == sorted(c["id"] for c in crm.customers)
    assert len(crm.requests) == 5  # 95 records, 20 a page: the guess knew the total


def test_a_cursor_stream_reads_ahead_every_page_once(crm):
    messages = read(crm, stream(BodyCursorPaginator(cursor_path="next_cursor", cursor_param="cursor"),
                                params={"limit": 20}))
    assert ids(messages) == sorted(c["id"] for c in crm.customers)
    assert len({(r.path, str(sorted(r.query.items()))) for r in crm.requests}) == len(crm.requests) == 5


def test_an_error_on_a_page_fetched_ahead_is_raised_after_the_pages_before_it(crm):
    crm.inject("status", status=404, after=2)  # the third page
    delivered = []
    with pytest.raises(FatalError) as raised:
        for message in stream(OffsetPaginator(limit=20, total_path="total")).read(
                HttpClient(crm.base_url, auth=BearerAuth(CustomersSandbox.TOKEN), connector="crm"),
                ReadRequest(stream(OffsetPaginator(limit=20)).to_stream(), SyncMode.FULL_REFRESH)):
            delivered.append(message)
    assert raised.value.status == 404 and "offset=40" in str(raised.value)
    assert len(ids(delivered)) == 40 and sum(isinstance(m, Checkpoint) for m in delivered) == 2


def test_a_page_fetched_ahead_that_fails_to_parse_is_asked_for_again(crm):
    crm.inject("malformed_json", after=1)  # the second page, fetched while the first parsed
    messages = read(crm, stream(OffsetPaginator(limit=20, total_path="total")))
    assert ids(messages) == sorted(c["id"] for c in crm.customers)
    assert len(crm.requests) == 6


def fetched_ahead(crm, declared: RestStream, monkeypatch, cap: int = 64) -> int:
    """How many pages were fetched on the read-ahead thread (every page is read, in order)."""
    import threading

    import threadline.http.stream as stream_module

    monkeypatch.setattr(stream_module, "READ_AHEAD_MAX_BYTES", cap)  # 64: every page of the sandbox is bigger
    fetch, on_threads = RestStream._fetch, []

    def counted(self, client, request):
        on_threads.append(threading.current_thread() is not threading.main_thread())
        return fetch(self, client, request)

    monkeypatch.setattr(RestStream, "_fetch", counted)
    assert ids(read(crm, declared)) == sorted(c["id"] for c in crm.customers)
    return sum(on_threads)


def test_a_big_page_is_read_ahead_only_when_the_next_request_is_in_its_headers(crm, monkeypatch):
    # Guessing from the body of a big page cost more than it saved; from a header it costs nothing.
    assert fetched_ahead(crm, stream(LinkHeaderPaginator(), params={"limit": 20}), monkeypatch) == 4
    assert fetched_ahead(crm, stream(OffsetPaginator(limit=20, total_path="total")), monkeypatch) == 0


def test_small_pages_of_a_stream_without_json_columns_are_read_ahead_big_ones_are_not(crm, monkeypatch):
    import threadline.http.stream as stream_module

    plain = stream(OffsetPaginator(limit=20, total_path="total"), schema=PLAIN)
    monkeypatch.setattr(stream_module, "SMALL_PAGE_BYTES", 10**6)
    assert fetched_ahead(crm, plain, monkeypatch, cap=10**6) == 4
    monkeypatch.setattr(stream_module, "SMALL_PAGE_BYTES", 64)  # every page of the sandbox is bigger
    assert fetched_ahead(crm, plain, monkeypatch, cap=10**6) == 0
