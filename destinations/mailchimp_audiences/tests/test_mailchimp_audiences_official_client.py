"""Mailchimp's official Python client (mailchimp-marketing), unmodified, making every call the
`mailchimp_audiences` destination makes, against the sandbox: ping, the audience, the tag
search and creation, batch adds and removes, the segment read-back and count, and removal by
subscriber hash; and the tag and segment calls a user makes beside it (a member's tags, the
audience's segments)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mailchimp_marketing as MailchimpMarketing
import pytest
from mailchimp_marketing.api_client import ApiClientError
from threadline_mailchimp.sandbox import subscriber_hash
from threadline_mailchimp_audiences.destination import BATCH_LIMIT, PAGE_LIMIT
from threadline_mailchimp_audiences.sandbox import MailchimpAudiencesSandbox

CONTACTS = [f"member.{i}@example.com" for i in range(60)]


@pytest.fixture
def mailchimp() -> Iterator[MailchimpAudiencesSandbox]:
    with MailchimpAudiencesSandbox(people=20, contacts=CONTACTS) as box:
        yield box  # type: ignore[misc]


@pytest.fixture
def client(mailchimp: MailchimpAudiencesSandbox) -> Any:
    client = MailchimpMarketing.Client()
    client.set_config({"api_key": mailchimp.API_KEY})
    # The client builds https://<server>.api.mailchimp.com/3.0; `host` is its one setting for another root.
    client.api_client.host = f"{mailchimp.base_url}/3.0"
    return client


def test_the_clients_check_calls_answer_with_only_the_fields_asked_for(mailchimp: MailchimpAudiencesSandbox, client: Any) -> None:
    assert client.ping.get()["health_status"]
    assert client.lists.get_list(mailchimp.newsletter, fields=["id", "name"]) == {"id": mailchimp.newsletter, "name": "Newsletter"}


def test_the_client_finds_or_creates_a_tag_and_batches_contacts_into_it(mailchimp: MailchimpAudiencesSandbox, client: Any) -> None:
    list_id = mailchimp.newsletter
    assert client.lists.tag_search(list_id, name="winback")["tags"] == []
    tag = client.lists.create_segment(list_id, {"name": "winback", "static_segment": []})
    assert client.lists.tag_search(list_id, name="winback")["tags"] == [{"id": tag["id"], "name": "winback"}]
    answer = client.lists.batch_segment_members({"members_to_add": CONTACTS[:40] + ["stranger@example.org"]}, list_id, tag["id"])
    assert answer["total_added"] == 40 and answer["error_count"] == 1
    answer = client.lists.batch_segment_members({"members_to_remove": CONTACTS[:10]}, list_id, tag["id"])
    assert answer["total_removed"] == 10
    assert client.lists.get_segment(list_id, tag["id"], fields=["id", "name", "member_count"]) == {
        "id": tag["id"], "name": "winback", "member_count": 30}
    page = client.lists.get_segment_members_list(list_id, tag["id"], count=PAGE_LIMIT, offset=0,
                                                 fields=["members.id", "members.email_address", "total_items"])
    assert page["total_items"] == 30 and sorted(m["email_address"] for m in page["members"]) == sorted(CONTACTS[10:40])
    assert all(set(m) == {"id", "email_address"} for m in page["members"])
    client.lists.remove_segment_member(list_id, tag["id"], subscriber_hash(CONTACTS[10]))
    assert mailchimp.segment_emails(list_id, tag["id"]) == set(CONTACTS[11:40])


def test_more_than_the_batch_limit_is_refused_to_the_client(mailchimp: MailchimpAudiencesSandbox, client: Any) -> None:
    with pytest.raises(ApiClientError) as caught:
        client.lists.batch_segment_members({"members_to_add": [f"x{i}@example.com" for i in range(BATCH_LIMIT + 1)]},
                                           mailchimp.newsletter, mailchimp.STATIC_SEGMENT_ID)
    assert caught.value.status_code == 400


def test_the_audiences_segments_are_listed_by_type(mailchimp: MailchimpAudiencesSandbox, client: Any) -> None:
    static = client.lists.list_segments(mailchimp.newsletter, type="static", count=1000)
    assert mailchimp.STATIC_SEGMENT_ID in {s["id"] for s in static["segments"]}
    assert all(s["type"] == "static" for s in static["segments"]) and static["total_items"] == len(static["segments"])
    saved = client.lists.list_segments(mailchimp.newsletter, type="saved")
    assert [s["id"] for s in saved["segments"]] == [mailchimp.SAVED_SEGMENT_ID]


def test_a_members_tags_are_set_by_name_and_read_back(mailchimp: MailchimpAudiencesSandbox, client: Any) -> None:
    list_id, member = mailchimp.newsletter, subscriber_hash(CONTACTS[0])
    client.lists.update_list_member_tags(list_id, member, {"tags": [{"name": "spring-2026", "status": "active"}]})
    assert [t["name"] for t in client.lists.get_list_member_tags(list_id, member)["tags"]] == ["spring-2026"]
    assert CONTACTS[0] in mailchimp.segment_emails(list_id, mailchimp.tag_id(list_id, "spring-2026"))
    client.lists.update_list_member_tags(list_id, member, {"tags": [{"name": "spring-2026", "status": "inactive"}]})
    assert client.lists.get_list_member_tags(list_id, member)["tags"] == []
