"""The sandbox's export answers checked against Zendesk's OpenAPI for the incremental exports.

The schemas below are transcribed from the response schemas of Zendesk's published OpenAPI
document for the Support API (developer.zendesk.com, `oas.yaml`; read on 2026-12-06 from the
incremental-exports part of it that api-evangelist/zendesk keeps as
openapi/_original/incremental-openapi-original.yml): `CursorBasedExportIncremental{Users,Tickets}Response`
and `TimeBasedExportIncremental{Users,Tickets}Response`. Zendesk's user and ticket objects are
checked only for what the connector keys on (an integer `id`, `updated_at` as a time); their
full schemas were not read. A field of Zendesk's that the sandbox leaves out or types otherwise
fails here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from threadline_zendesk.sandbox import ZendeskSandbox

jsonschema = pytest.importorskip("jsonschema", reason="needs jsonschema: pip install jsonschema")

ITEM = {"type": "object", "required": ["id", "updated_at"],
        "properties": {"id": {"type": "integer"}, "updated_at": {"type": "string"}}}
NULLABLE_STRING = {"type": ["string", "null"]}
CURSOR_EXPORT = {kind: {"type": "object", "required": [kind, "end_of_stream", "after_cursor", "after_url"], "properties": {
    "after_cursor": NULLABLE_STRING, "after_url": NULLABLE_STRING, "before_cursor": NULLABLE_STRING,
    "before_url": NULLABLE_STRING, "end_of_stream": {"type": "boolean"}, kind: {"type": "array", "items": ITEM}}}
    for kind in ("users", "tickets")}
TIME_EXPORT = {kind: {"type": "object", "required": [kind, "end_of_stream", "end_time", "next_page", "count"], "properties": {
    "count": {"type": "integer"}, "end_of_stream": {"type": "boolean"}, "end_time": {"type": "integer"},
    "next_page": NULLABLE_STRING, kind: {"type": "array", "items": ITEM}}}
    for kind in ("users", "tickets")}


@pytest.fixture(scope="module")
def box() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox(users=120, tickets=150, ratings=20, export_rate_limit=10_000, rate_limit=10_000) as sandbox:
        yield sandbox


def get(box: ZendeskSandbox, url: str, **params: Any) -> requests.Response:
    if url.startswith("/"):
        url = box.base_url + url
    return requests.get(url, params=params, auth=(f"{box.EMAIL}/token", box.API_TOKEN), timeout=10)


def walk(box: ZendeskSandbox, path: str, next_key: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of an export, following its own links."""
    pages, answer = [], get(box, path, **params)
    while True:
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        if pages[-1]["end_of_stream"]:
            return pages
        answer = get(box, pages[-1][next_key])


@pytest.mark.parametrize("kind", ["users", "tickets"])
def test_every_page_of_the_cursor_export_is_zendesks_cursor_export_response(box, kind):
    pages = walk(box, f"/api/v2/incremental/{kind}/cursor.json", "after_url", start_time=0, per_page=40)
    for page in pages:
        jsonschema.Draft7Validator(CURSOR_EXPORT[kind]).validate(page)
    assert sorted(x["id"] for p in pages for x in p[kind]) == sorted(x["id"] for x in box.items(kind))


@pytest.mark.parametrize("kind", ["users", "tickets"])
def test_every_page_of_the_time_export_is_zendesks_time_export_response(box, kind):
    pages = walk(box, f"/api/v2/incremental/{kind}.json", "next_page", start_time=0, per_page=40)
    for page in pages:
        jsonschema.Draft7Validator(TIME_EXPORT[kind]).validate(page)
        assert page["count"] == len(page[kind])
    assert {x["id"] for p in pages for x in p[kind]} == {x["id"] for x in box.items(kind)}
    assert pages[-1]["next_page"] is None and len(pages) > 2


def test_a_time_export_page_ends_on_a_whole_second_and_the_next_asks_from_it(box):
    first = get(box, "/api/v2/incremental/users.json", start_time=0, per_page=4).json()
    last_second = first["end_time"]
    stamps = [int(datetime.fromisoformat(u["updated_at"].replace("Z", "+00:00")).timestamp()) for u in first["users"]]
    assert stamps[-1] == last_second and len(first["users"]) >= 4  # extended through the page's last second
    assert f"start_time={last_second}" in first["next_page"]
    second = get(box, first["next_page"]).json()
    repeated = [u["id"] for u in second["users"] if u["id"] in {x["id"] for x in first["users"]}]
    assert repeated == [u["id"] for u, s in zip(first["users"], stamps) if s == last_second]  # duplicates, as Zendesk warns


def test_a_time_export_moves_on_when_one_second_holds_more_than_a_page(box):
    """Items change in threes here; with one item a page, a page that could not leave its
    start second would ask for that second again forever."""
    start, seen, pages = 0, set(), 0
    while pages < 2000:
        page = get(box, "/api/v2/incremental/users.json", start_time=start, per_page=1).json()
        seen |= {u["id"] for u in page["users"]}
        pages += 1
        if page["end_of_stream"]:
            break
        assert page["end_time"] > start or pages == 1
        start = page["end_time"]
    assert seen == {u["id"] for u in box.users}


def test_a_time_export_refuses_a_start_time_in_the_last_minute(box):
    recent = get(box, "/api/v2/incremental/tickets.json", start_time=int(time.time()) - 10)
    assert recent.status_code == 400 and "Too recent start_time" in recent.text
    assert get(box, "/api/v2/incremental/tickets.json").status_code == 400
