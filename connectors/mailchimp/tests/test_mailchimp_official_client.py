"""Mailchimp's official Python client (mailchimp-marketing), unmodified, against the sandbox,
as a new user would point it: every stream the connector reads pages through to its end with
the parameters the connector sends, with an API key and with an OAuth access token.

The client returns plain dicts (it has no typed models), so the shapes Mailchimp documents
for a member (`interests`, `marketing_permissions`, `_links`) are checked here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import mailchimp_marketing as MailchimpMarketing
import pytest
from mailchimp_marketing.api_client import ApiClientError
from threadline.contracts import Batch, ReadRequest, SyncMode
from threadline_mailchimp import MailchimpConfig, MailchimpSource
from threadline_mailchimp.sandbox import MailchimpSandbox

PAGE = 100


@pytest.fixture(scope="module")
def mailchimp() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(people=120) as box:
        yield box  # type: ignore[misc]


def official(box: MailchimpSandbox, **config: Any) -> Any:
    client = MailchimpMarketing.Client()
    client.set_config(config or {"api_key": box.API_KEY})  # the server (us21) is taken from the key's suffix
    # The client builds https://<server>.api.mailchimp.com/3.0; `host` is its one setting for another root.
    client.api_client.host = f"{box.base_url}/3.0"
    return client


def every_member(client: Any, list_id: str, **params: Any) -> list[dict[str, Any]]:
    members, offset = [], 0
    while True:
        page = client.lists.get_list_members_info(list_id, count=PAGE, offset=offset, **params)
        members += page["members"]
        offset += len(page["members"])
        if not page["members"] or offset >= page["total_items"]:
            return members


def test_the_client_pings_with_the_api_key(mailchimp: MailchimpSandbox) -> None:
    assert official(mailchimp).ping.get() == {"health_status": "Everything's Chimpy!"}


def test_the_client_reads_with_an_oauth_access_token_sent_as_bearer(mailchimp: MailchimpSandbox) -> None:
    mailchimp.clear_requests()
    client = official(mailchimp, access_token=mailchimp.ACCESS_TOKEN, server=mailchimp.DATA_CENTER)
    assert [x["id"] for x in client.lists.get_all_lists()["lists"]] == mailchimp.list_ids
    assert mailchimp.requests[-1].headers["authorization"].startswith("Bearer ")


def test_a_wrong_oauth_token_is_refused_with_401(mailchimp: MailchimpSandbox) -> None:
    client = official(mailchimp, access_token="not-a-token", server=mailchimp.DATA_CENTER)
    with pytest.raises(ApiClientError) as caught:
        client.lists.get_all_lists()
    assert caught.value.status_code == 401


def test_lists_page_through_with_their_links(mailchimp: MailchimpSandbox) -> None:
    client, lists, offset = official(mailchimp), [], 0
    while True:
        page = client.lists.get_all_lists(count=2, offset=offset)
        lists += page["lists"]
        offset += len(page["lists"])
        if offset >= page["total_items"]:
            break
    assert [x["id"] for x in lists] == mailchimp.list_ids
    assert all({"rel", "href", "method"} <= set(link) for x in lists for link in x["_links"])


def test_members_page_through_every_audience_as_the_connector_reads_them(mailchimp: MailchimpSandbox) -> None:
    client = official(mailchimp)
    for list_id in mailchimp.list_ids:
        members = every_member(client, list_id, sort_field="last_changed", sort_dir="ASC",
                               since_last_changed="2000-01-01T00:00:00+00:00", exclude_fields=["members._links", "_links"])
        changed = [m["last_changed"] for m in members]
        assert changed == sorted(changed)
        assert sorted(m["id"] for m in members) == sorted(m["id"] for m in mailchimp.members(list_id))
        assert all("_links" not in m for m in members)


def test_members_carry_interests_marketing_permissions_and_links(mailchimp: MailchimpSandbox) -> None:
    members = every_member(official(mailchimp), mailchimp.list_ids[0])
    assert all(isinstance(m["interests"], dict) and all(isinstance(v, bool) for v in m["interests"].values())
               for m in members)
    assert all({"marketing_permission_id", "text", "enabled"} <= set(p) for m in members for p in m["marketing_permissions"])
    assert all({"self", "activity", "tags"} <= {link["rel"] for link in m["_links"]} for m in members)
    subscribed = [m for m in members if m["status"] == "subscribed"]
    assert subscribed and all(m["marketing_permissions"][0]["enabled"] for m in subscribed)


def test_fields_keeps_only_the_fields_named(mailchimp: MailchimpSandbox) -> None:
    page = official(mailchimp).lists.get_list_members_info(mailchimp.list_ids[0], count=5,
                                                          fields=["members.id", "members.status", "total_items"])
    assert set(page) == {"members", "total_items"}
    assert all(set(m) == {"id", "status"} for m in page["members"])


def test_exclude_fields_drops_the_fields_named(mailchimp: MailchimpSandbox) -> None:
    page = official(mailchimp).lists.get_list_members_info(mailchimp.list_ids[0], count=5,
                                                          exclude_fields=["members.merge_fields", "members._links", "_links"])
    assert "_links" not in page and page["members"]
    assert all("merge_fields" not in m and "_links" not in m and "email_address" in m for m in page["members"])


def test_member_activity_is_read_for_every_member(mailchimp: MailchimpSandbox) -> None:
    client = official(mailchimp)
    list_id = mailchimp.list_ids[0]
    read = [(m["id"], e["action"], e["timestamp"]) for m in every_member(client, list_id, fields=["members.id", "total_items"])
            for e in client.lists.get_list_member_activity(list_id, m["id"])["activity"]]
    assert sorted(read) == sorted((e["email_id"], e["action"], e["timestamp"]) for e in mailchimp.activity()
                                  if e["list_id"] == list_id)


def test_a_members_tags_are_read_with_the_date_they_were_added(mailchimp: MailchimpSandbox) -> None:
    tagged = next(m for m in mailchimp.members(mailchimp.list_ids[0]) if m["tags"])
    answer = official(mailchimp).lists.get_list_member_tags(mailchimp.list_ids[0], tagged["id"])
    assert [t["name"] for t in answer["tags"]] == [t["name"] for t in tagged["tags"]]
    assert answer["total_items"] == len(tagged["tags"]) and all(t["date_added"] for t in answer["tags"])


def test_one_member_is_read_by_hash_or_by_address(mailchimp: MailchimpSandbox) -> None:
    client, member = official(mailchimp), mailchimp.members(mailchimp.list_ids[0])[0]
    assert client.lists.get_list_member(mailchimp.list_ids[0], member["id"])["email_address"] == member["email_address"]
    by_address = client.lists.get_list_member(mailchimp.list_ids[0], member["email_address"], fields=["id"])
    assert by_address == {"id": member["id"]}
    with pytest.raises(ApiClientError) as caught:
        client.lists.get_list_member(mailchimp.list_ids[0], "0" * 32)
    assert caught.value.status_code == 404


# ---------------------------------------------------------------------- campaign reports


def every_page(call: Any, records: str, *args: Any, **params: Any) -> list[dict[str, Any]]:
    rows, offset = [], 0
    while True:
        page = call(*args, count=PAGE, offset=offset, **params)
        rows += page[records]
        offset += len(page[records])
        if not page[records] or offset >= page["total_items"]:
            return rows


def test_campaign_reports_page_through_with_their_figures(mailchimp: MailchimpSandbox) -> None:
    reports = every_page(official(mailchimp).reports.get_all_campaign_reports, "reports")
    assert [r["id"] for r in reports] == [r["id"] for r in mailchimp.reports()]
    newsletter = [r for r in reports if r["list_id"] == mailchimp.list_ids[0]]
    assert newsletter and all(r["emails_sent"] >= r["opens"]["unique_opens"] > 0 for r in newsletter)
    assert all({"hard_bounces", "soft_bounces", "syntax_errors"} <= set(r["bounces"]) for r in reports)
    one = official(mailchimp).reports.get_campaign_report(reports[0]["id"])
    assert one["id"] == reports[0]["id"] and one["emails_sent"] == reports[0]["emails_sent"]


def test_an_unknown_campaign_report_is_a_404(mailchimp: MailchimpSandbox) -> None:
    with pytest.raises(ApiClientError) as caught:
        official(mailchimp).reports.get_campaign_report("0000000000")
    assert caught.value.status_code == 404


def test_recipients_activity_and_unsubscribes_agree_with_the_report(mailchimp: MailchimpSandbox) -> None:
    client = official(mailchimp)
    report = next(r for r in mailchimp.reports() if r["unsubscribed"] and r["bounces"]["hard_bounces"])
    campaign = report["id"]
    sent_to = every_page(client.reports.get_campaign_recipients, "sent_to", campaign)
    assert len(sent_to) == report["emails_sent"]
    assert sum(1 for r in sent_to if r["status"] == "hard") == report["bounces"]["hard_bounces"]
    emails = every_page(client.reports.get_email_activity_for_campaign, "emails", campaign)
    opened = {e["email_id"] for e in emails if any(a["action"] == "open" for a in e["activity"])}
    assert len(opened) == report["opens"]["unique_opens"] == sum(1 for r in sent_to if r["open_count"] > 0)
    bounced = {e["email_id"] for e in emails if any(a["action"] == "bounce" for a in e["activity"])}
    assert bounced == {r["email_id"] for r in sent_to if r["status"] == "hard"}
    unsubscribed = every_page(client.reports.get_unsubscribed_list_for_campaign, "unsubscribes", campaign)
    assert len(unsubscribed) == report["unsubscribed"] and all(u["timestamp"] for u in unsubscribed)


# The connector's own requests, replayed through the client: each one must be a call the client
# (generated from Mailchimp's API definition; it refuses arguments it does not know) can make.
OPERATIONS = [(re.compile(r"^/3\.0/lists/?$"), "lists", "get_all_lists", ()),
              (re.compile(r"^/3\.0/lists/([^/]+)/members/?$"), "lists", "get_list_members_info", ("list_id",)),
              (re.compile(r"^/3\.0/lists/([^/]+)/members/([^/]+)/activity/?$"), "lists", "get_list_member_activity",
               ("list_id", "subscriber_hash")),
              (re.compile(r"^/3\.0/reports/?$"), "reports", "get_all_campaign_reports", ()),
              (re.compile(r"^/3\.0/reports/([^/]+)/sent-to/?$"), "reports", "get_campaign_recipients", ("campaign_id",)),
              (re.compile(r"^/3\.0/reports/([^/]+)/email-activity/?$"), "reports", "get_email_activity_for_campaign",
               ("campaign_id",)),
              (re.compile(r"^/3\.0/reports/([^/]+)/unsubscribed/?$"), "reports", "get_unsubscribed_list_for_campaign",
               ("campaign_id",))]


def as_client_call(path: str, query: dict[str, list[str]]) -> tuple[str, str, dict[str, Any]]:
    """(API group, method, arguments) of the client call that makes this request."""
    for pattern, group, method, names in OPERATIONS:
        match = pattern.match(path)
        if match:
            kwargs: dict[str, Any] = dict(zip(names, match.groups()))
            for name, (value,) in query.items():
                kwargs[name] = (value.split(",") if name in ("fields", "exclude_fields") else
                                int(value) if name in ("count", "offset") else value)
            return group, method, kwargs
    raise AssertionError(f"the connector called {path}, which the test knows no client operation for")


def test_every_request_the_connector_makes_is_one_the_official_client_makes(mailchimp: MailchimpSandbox) -> None:
    cfg = MailchimpConfig(api_key=mailchimp.API_KEY, base_url=f"{mailchimp.base_url}/3.0", page_size=100,
                          backoff_base=0.01)
    source = MailchimpSource()
    mailchimp.clear_requests()
    for stream in source.discover(cfg).streams:
        request = ReadRequest(stream=stream, sync_mode=SyncMode.INCREMENTAL if stream.cursor_field else SyncMode.FULL_REFRESH,
                              cursor_start=datetime(2020, 1, 1, tzinfo=UTC) if stream.cursor_field else None)
        assert any(isinstance(m, Batch) for m in source.read(cfg, request))
    sent = mailchimp.requests
    client = official(mailchimp)
    assert {as_client_call(r.path, r.query)[1] for r in sent} == {o[2] for o in OPERATIONS}
    # activity is one request per member: the first few of each operation show its shape
    shown: dict[str, list[Any]] = {}
    for recorded in sent:
        shown.setdefault(as_client_call(recorded.path, recorded.query)[1], []).append(recorded)
    for recorded in [r for requests in shown.values() for r in requests[:10]]:
        mailchimp.clear_requests()
        group, method, kwargs = as_client_call(recorded.path, recorded.query)
        getattr(getattr(client, group), method)(**kwargs)
        replayed = mailchimp.requests[-1]
        assert (replayed.path, replayed.query) == (recorded.path, recorded.query)
