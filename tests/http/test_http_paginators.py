"""Every paginator walks the sandbox to the end by itself, and a looping API is stopped."""

from __future__ import annotations

import pyarrow as pa
import pytest

from threadline.contracts import Batch, Checkpoint, FatalError, ReadRequest, SyncMode
from threadline.http import (
    BearerAuth,
    BodyCursorPaginator,
    HeaderCursorPaginator,
    HttpClient,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageInfo,
    PageNumberPaginator,
    PageRequest,
    PaginationLoop,
    RestStream,
    RetryPolicy,
    SinglePage,
)
from threadline.sandbox import CustomersSandbox

SCHEMA = {"id": "int64", "email": "string", "updated_at": "timestamp"}


@pytest.fixture(scope="module")
def crm():
    with CustomersSandbox(count=95) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def clean(crm):
    crm.reset()


def read(crm, paginator, params=None) -> tuple[list[int], list]:
    stream = RestStream(
        name="customers", path="/customers", schema=SCHEMA, primary_key=["id"],
        paginator=paginator, params=params or {},
    )
    client = HttpClient(crm.base_url, auth=BearerAuth(CustomersSandbox.TOKEN), connector="crm",
                        retry=RetryPolicy(max_attempts=2, backoff_base=0.01))
    messages = list(stream.read(client, ReadRequest(stream.to_stream(), SyncMode.FULL_REFRESH)))
    batches = [m.records for m in messages if isinstance(m, Batch)]
    ids = pa.Table.from_batches(batches).column("id").to_pylist() if batches else []
    return ids, messages


ALL_IDS = list(range(1, 96))


@pytest.mark.parametrize("paginator,params", [
    (OffsetPaginator(limit=20), {}),
    (OffsetPaginator(limit=20, total_path="total"), {}),
    (PageNumberPaginator(page_size=20), {}),
    (PageNumberPaginator(page_size=20, total_pages_path="pages_that_do_not_exist"), {}),
    (BodyCursorPaginator(cursor_path="next_cursor"), {"limit": 20}),
    (HeaderCursorPaginator(header="X-Next-Cursor"), {"limit": 20}),
    (NextUrlPaginator(next_url_path="next"), {"limit": 20}),
    (LinkHeaderPaginator(), {"limit": 20}),
], ids=lambda p: type(p).__name__ if not isinstance(p, dict) else "")
def test_paginator_reads_every_record_once_and_stops(crm, paginator, params):
    ids, _ = read(crm, paginator, params)
    assert ids == ALL_IDS


def test_offset_paginator_stops_on_the_total_without_an_empty_page(crm):
    read(crm, OffsetPaginator(limit=20, total_path="total"))
    assert len(crm.requests) == 5


def test_offset_paginator_without_total_stops_on_the_empty_page(crm):
    read(crm, OffsetPaginator(limit=20))
    assert len(crm.requests) == 6
    assert crm.requests[-1].param("offset") == "95"


def test_offset_survives_a_server_capping_the_page_size():
    with CustomersSandbox(count=30, max_page_size=7) as small:
        ids, _ = read(small, OffsetPaginator(limit=100))
    assert ids == list(range(1, 31))


def test_single_page_makes_one_request(crm):
    ids, _ = read(crm, SinglePage(), {"limit": 1000})
    assert ids == ALL_IDS and len(crm.requests) == 1


def test_a_checkpoint_follows_every_page(crm):
    _, messages = read(crm, OffsetPaginator(limit=50, total_path="total"))
    assert [type(m).__name__ for m in messages] == ["Batch", "Checkpoint", "Batch", "Checkpoint"]
    assert all(m.state == {} for m in messages if isinstance(m, Checkpoint))


@pytest.mark.parametrize("paginator", [
    BodyCursorPaginator(), HeaderCursorPaginator(), NextUrlPaginator(), LinkHeaderPaginator(),
], ids=lambda p: type(p).__name__)
def test_a_repeated_page_is_detected_as_a_loop(crm, paginator):
    crm.inject("repeat_page", after=2)  # the third page repeats the second, next token included
    with pytest.raises(FatalError) as raised:
        read(crm, paginator, {"limit": 20})
    text = str(raised.value)
    assert "same page twice" in text and "crm / customers" in text and "GET http://127.0.0.1:" in text
    assert len(crm.requests) == 3


def test_a_cursor_that_comes_back_later_is_detected_as_a_loop():
    paginator, request = BodyCursorPaginator().fresh(), PageRequest("/customers")
    for token in ("a", "b"):
        paginator.advance(PageInfo(response=None, body={"next_cursor": token}, count=1), request)
    with pytest.raises(PaginationLoop) as raised:
        paginator.advance(PageInfo(response=None, body={"next_cursor": "a"}, count=1), request)
    assert "loop forever" in str(raised.value)


@pytest.mark.parametrize("paginator", [
    OffsetPaginator(limit=20, offset_param="start"), PageNumberPaginator(page_param="p", page_size=20),
], ids=lambda p: type(p).__name__)
def test_an_api_ignoring_the_page_parameter_is_stopped(crm, paginator):
    with pytest.raises(FatalError) as raised:
        read(crm, paginator)
    assert "same page twice" in str(raised.value)
    # the two same pages, and the one fetched ahead while the second parsed (small pages read ahead)
    assert len(crm.requests) == 3


def test_a_repeated_offset_page_is_an_error_not_silent_duplicates(crm):
    crm.inject("repeat_page", after=1)
    with pytest.raises(FatalError):
        read(crm, OffsetPaginator(limit=20))


def test_a_paginator_prototype_is_reusable(crm):
    paginator = BodyCursorPaginator()
    assert read(crm, paginator, {"limit": 50})[0] == ALL_IDS
    assert read(crm, paginator, {"limit": 50})[0] == ALL_IDS
