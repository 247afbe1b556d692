"""zenpy (the Zendesk Python client, 2.0, unmodified) against the sandbox: it pages the user and
ticket exports (cursor-based, as the connector reads them) and the satisfaction ratings with
the connector's page sizes, resumes an export from its cursor, reads users with identities
the way the user_identities stream asks for them, follows a rating to its ticket, and meets
Zendesk's auth errors as its own exceptions. Answers load into zenpy's objects (dates parsed).

zenpy sends to https://<subdomain>.zendesk.com; its session gets a transport adapter that
carries those requests to the sandbox on 127.0.0.1 (threadline.testing.vendor), as a proxy
would, and the sandbox's links name that host as Zendesk's do, so zenpy, which only reads
answers from its own host, follows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from threadline.testing.vendor import SandboxAdapter, route_to_sandbox
from threadline_zendesk import ZendeskConfig, ZendeskSource
from threadline_zendesk.sandbox import ZendeskSandbox
from zenpy import Zenpy
from zenpy.lib.exception import APIException

ACCOUNT = "https://threadline.zendesk.com"


@pytest.fixture(scope="module")
def box() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox(users=150, tickets=220, ratings=90, export_rate_limit=10_000, rate_limit=10_000) as sandbox:
        yield sandbox


def client(box: ZendeskSandbox, **credentials: Any) -> tuple[Zenpy, SandboxAdapter]:
    zenpy = Zenpy(subdomain="threadline", disable_cache=True,
                  **(credentials or {"email": box.EMAIL, "token": box.API_TOKEN}))
    return zenpy, route_to_sandbox(zenpy.users.session, ACCOUNT, box.base_url)


def connector_params(name: str) -> dict[str, Any]:
    config = ZendeskConfig.model_validate({"base_url": ACCOUNT, "email": "a@b.example", "api_token": "t",
                                           "per_page": 40, "ratings_page_size": 25})
    return dict(ZendeskSource().stream(config, name).params)


def test_zenpy_pages_the_user_and_ticket_exports_with_the_connectors_page_size(box):
    zenpy, adapter = client(box)
    users = list(zenpy.users.incremental(start_time=0, per_page=connector_params("users")["per_page"]))
    assert sorted(u.id for u in users) == [u["id"] for u in box.users]
    tickets = list(zenpy.tickets.incremental(start_time=0, paginate_by_time=False,
                                             per_page=connector_params("tickets")["per_page"]))
    assert sorted(t.id for t in tickets) == [t["id"] for t in box.tickets]
    assert all(t.updated is not None and t.created is not None for t in tickets)
    assert len(adapter.sent) > 2 and all(url.startswith(ACCOUNT) for url in adapter.sent)  # every page via the links


def test_zenpy_resumes_a_ticket_export_from_its_cursor_and_sees_only_what_changed(box):
    zenpy, _ = client(box)
    first = zenpy.tickets.incremental(start_time=0, paginate_by_time=False)
    everything = list(first)
    changed = box.update_tickets([everything[3].id, everything[9].id])
    later = list(zenpy.tickets.incremental(cursor=first.after_cursor, paginate_by_time=False))
    assert sorted(t.id for t in later) == sorted(t["id"] for t in changed)


def test_zenpy_pages_satisfaction_ratings_and_follows_a_rating_to_its_ticket(box):
    zenpy, _ = client(box)
    ratings = list(zenpy.satisfaction_ratings(cursor_pagination=connector_params("satisfaction_ratings")["page[size]"]))
    assert [r.id for r in ratings] == [r["id"] for r in box.ratings]
    rated = ratings[0]
    assert rated.ticket.id == rated.ticket_id and rated.created is not None


def test_zenpy_reads_users_with_identities_as_the_identities_stream_asks(box):
    zenpy, _ = client(box)
    params = connector_params("user_identities")
    ids = [u["id"] for u in box.users[:30]]
    users = list(zenpy.users(ids=ids, include=params["include"]))
    assert sorted(u.id for u in users) == ids
    asked = box.requests_to("/api/v2/users/show_many.json")[-1]
    assert asked.query["include"] == ["identities"] and asked.status == 200
    someone = box.users[4]
    assert [i.to_dict() for i in zenpy.users.identities(id=someone["id"])] == box.identities_of(someone)


def test_zenpy_meets_a_wrong_token_and_an_agent_without_export_access_as_api_errors(box):
    zenpy, _ = client(box, email=box.EMAIL, token="wrong")
    with pytest.raises(APIException) as caught:
        list(zenpy.users.incremental(start_time=0))
    assert caught.value.response.status_code == 401
    agent, _ = client(box, email=box.AGENT_EMAIL, token=box.API_TOKEN)
    with pytest.raises(APIException) as refused:
        list(agent.tickets.incremental(start_time=0, paginate_by_time=False))
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("kind", ["users", "tickets"])
def test_zenpy_pages_the_time_based_exports_when_asked_to_paginate_by_time(box, kind):
    """`incremental(start_time=…, paginate_by_time=True)` is zenpy's time-based export
    (/incremental/users.json, /incremental/tickets.json: `end_time` and `next_page`), kept for
    integrations written before the cursor exports. The sandbox served only the cursor exports
    before, so that call was a 404."""
    zenpy, adapter = client(box)
    api = getattr(zenpy, kind)
    got = list(api.incremental(start_time=0, paginate_by_time=True, per_page=connector_params(kind)["per_page"]))
    assert {x.id for x in got} == {x["id"] for x in box.items(kind)}  # items of a page's last second come twice
    assert sum(f"/api/v2/incremental/{kind}.json?" in url for url in adapter.sent) > 2
    assert all(x.updated_at is not None for x in got)
