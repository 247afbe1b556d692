"""What is special about pushing to Mailchimp: subscriber hashes, tags found or created by name,
the 500-address batch limit, contacts Mailchimp does not hold (never subscribed, reported as
rejected), Mailchimp's 429 and refused keys, saved segments, and mirrors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from threadline.contracts import MEMBER_SCHEMA, AudienceTarget, ConfigError, FatalError, PushMode, ReadRequest, SyncMode
from threadline.testing import AudienceContract, sample_members
from threadline_mailchimp import MailchimpConfig, MailchimpSource
from threadline_mailchimp.sandbox import subscriber_hash
from threadline_mailchimp_audiences import MailchimpAudiences, MailchimpAudiencesConfig
from threadline_mailchimp_audiences.destination import NO_EMAIL
from threadline_mailchimp_audiences.sandbox import (
    NOT_ON_LIST,
    SEGMENT_LIMIT_DETAIL,
    THROTTLED_DETAIL,
    MailchimpAudiencesSandbox,
)

CONTACTS = [f"member.{i}@example.com" for i in range(1300)]
TARGET = AudienceTarget("winback_to_mailchimp", "winback", PushMode.DIFF, "run-1", 0, 0)


class Pusher(AudienceContract):
    """The suite's runner-like push (removes, then adds, in batches; finish), at Mailchimp's batch size."""

    destination = MailchimpAudiences
    batch_rows = 500


@pytest.fixture
def mailchimp() -> Iterator[MailchimpAudiencesSandbox]:
    with MailchimpAudiencesSandbox(people=20, contacts=CONTACTS) as box:
        yield box  # type: ignore[misc]


def config(box: MailchimpAudiencesSandbox, **overrides: Any) -> MailchimpAudiencesConfig:
    return MailchimpAudiencesConfig.model_validate({
        "base_url": f"{box.base_url}/3.0", "api_key": box.API_KEY, "list_id": box.newsletter, "tag": "Winback",
        "backoff_base": 0.01, **overrides})


def push(cfg: MailchimpAudiencesConfig, adds: pa.Table | None = None, removes: pa.Table | None = None,
         mode: PushMode = PushMode.DIFF) -> tuple[Any, list[Any]]:
    return Pusher().push(cfg, adds=adds, removes=removes, mode=mode)


def tagged(box: MailchimpAudiencesSandbox, name: str = "Winback") -> set[str]:
    tag = box.tag_id(box.newsletter, name)
    return box.segment_emails(box.newsletter, tag) if tag is not None else set()


def emails(members: pa.Table) -> set[str]:
    return set(members.column("email").to_pylist())


# ---------------------------------------------------------------------------- declarations and hashing


def test_declares_the_email_channel_mailchimps_batch_limit_and_no_minimum() -> None:
    assert MailchimpAudiences.channel == "email"
    assert MailchimpAudiences.max_batch_rows == 500  # members_to_add / members_to_remove per request
    assert MailchimpAudiences.min_members == 0
    assert MailchimpAudiences.plain_columns == ("email",)


def test_subscriber_hash_matches_mailchimps_documented_example() -> None:
    # Mailchimp's guide "How to Use Tags with API 3.0" (API 3.0 guides):
    # https://developer.mailchimp.com/documentation/mailchimp/guides/how-to-use-tags/
    # "The MD5 hash of urist.mcvankab@freddiesjokes.com is 62eeb292278cc15f5817cb78f7790b08."
    # Mailchimp hashes (MD5) only the lower-cased email; phones and names are not sent at all.
    member = {name: None for name in MEMBER_SCHEMA.names} | {"member_id": "p1", "email": "  Urist.McVankab@freddiesjokes.com ",
                                                             "phone": "+15125550100", "first_name": "urist"}
    prepared = MailchimpAudiences().prepare(None, pa.Table.from_pylist([member], schema=MEMBER_SCHEMA))  # type: ignore[arg-type]
    assert prepared.column_names == ["member_id", "email", "subscriber_hash"]
    assert prepared.to_pylist() == [{"member_id": "p1", "email": "urist.mcvankab@freddiesjokes.com",
                                     "subscriber_hash": "62eeb292278cc15f5817cb78f7790b08"}]
    assert subscriber_hash("urist.mcvankab@freddiesjokes.com") == "62eeb292278cc15f5817cb78f7790b08"  # the sandbox agrees


# ---------------------------------------------------------------------------- tags and segments


def test_a_missing_tag_is_created_by_name_and_an_existing_one_is_reused(mailchimp: MailchimpAudiencesSandbox) -> None:
    push(config(mailchimp), adds=sample_members(0, 5))
    created = mailchimp.tag_id(mailchimp.newsletter, "Winback")
    push(config(mailchimp), adds=sample_members(5, 5))
    assert mailchimp.tag_id(mailchimp.newsletter, "Winback") == created
    assert len(mailchimp.requests_to(f"/3.0/lists/{mailchimp.newsletter}/segments", "POST")) == 1
    assert tagged(mailchimp) == emails(sample_members(0, 10))


def test_a_push_signs_in_with_an_oauth_access_token_as_bearer(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp, api_key=None, access_token=mailchimp.ACCESS_TOKEN)
    MailchimpAudiences().check(cfg)
    push(cfg, adds=sample_members(0, 5))
    assert tagged(mailchimp) == emails(sample_members(0, 5))
    assert all(r.headers["authorization"] == "Bearer ***" for r in mailchimp.requests)


def test_pushed_tags_are_read_back_by_the_mailchimp_source(mailchimp: MailchimpAudiencesSandbox) -> None:
    push(config(mailchimp), adds=sample_members(0, 3))
    source_config = MailchimpConfig.model_validate({"base_url": f"{mailchimp.base_url}/3.0", "api_key": mailchimp.API_KEY,
                                                    "list_ids": [mailchimp.newsletter]})
    stream = MailchimpSource().discover(source_config).get("members")
    rows = [r for m in MailchimpSource().read(source_config, ReadRequest(stream, SyncMode.FULL_REFRESH))
            if hasattr(m, "records") for r in m.records.to_pylist()]
    tagged_rows = {r["email_address"] for r in rows if "Winback" in (r["tags"] or [])}
    assert tagged_rows == emails(sample_members(0, 3))


def test_a_saved_segment_is_refused_at_check_naming_segment_id(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp, target="static_segment", segment_id=mailchimp.SAVED_SEGMENT_ID)
    with pytest.raises(ConfigError) as caught:
        MailchimpAudiences().check(cfg)
    assert caught.value.field == "segment_id"
    assert "saved segment" in caught.value.message and "static segment" in caught.value.hint


def test_a_static_segment_target_needs_its_id() -> None:
    with pytest.raises(ValueError, match="segment_id is required"):
        MailchimpAudiencesConfig.model_validate({"api_key": "k-us21", "list_id": "a", "target": "static_segment"})


def test_a_deleted_audience_mid_push_is_an_error_naming_the_audience(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp)
    writer = MailchimpAudiences().open_audience(cfg, TARGET)
    mailchimp.delete_list(cfg.list_id)
    with pytest.raises(FatalError) as caught:
        writer.add(MailchimpAudiences().prepare(cfg, sample_members(0, 3)))
    writer.abort()
    assert cfg.list_id in caught.value.message and "404" in caught.value.message


# ---------------------------------------------------------------------------- batches


def test_the_sandbox_refuses_more_than_500_addresses_as_mailchimp_does(mailchimp: MailchimpAudiencesSandbox) -> None:
    import requests

    tag = mailchimp.STATIC_SEGMENT_ID
    answer = requests.post(f"{mailchimp.base_url}/3.0/lists/{mailchimp.newsletter}/segments/{tag}",
                           json={"members_to_add": CONTACTS[:501]}, auth=("x", mailchimp.API_KEY), timeout=10)
    assert answer.status_code == 400
    assert answer.json()["detail"] == SEGMENT_LIMIT_DETAIL


def test_a_writer_given_more_than_500_rows_sends_at_most_500_a_request(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp)
    members = sample_members(0, 1201)
    writer = MailchimpAudiences().open_audience(cfg, TARGET)
    result = writer.add(MailchimpAudiences().prepare(cfg, members))
    report = writer.finish()
    batches = [r for r in mailchimp.requests if r.method == "POST" and "members_to_add" in r.body]
    assert [len(json.loads(r.body)["members_to_add"]) for r in batches] == [500, 500, 201]
    assert result.accepted == 1201 and report.match_estimate == 1201


# ---------------------------------------------------------------------------- rows Mailchimp does not take


def test_addresses_mailchimp_does_not_hold_are_rejected_with_its_reason_and_never_subscribed(
        mailchimp: MailchimpAudiencesSandbox) -> None:
    outsiders = pa.Table.from_pylist(
        [{**m, "email": f"stranger.{i}@example.org"} for i, m in enumerate(sample_members(2000, 2).to_pylist())],
        schema=MEMBER_SCHEMA)
    members = pa.concat_tables([sample_members(0, 3), outsiders])
    contacts_before = len(mailchimp.members(mailchimp.newsletter))
    report, results = push(config(mailchimp), adds=members)
    rejected = [r for res in results for r in res.rejected]
    assert sorted(r.member_id for r in rejected) == ["p002000", "p002001"]
    assert all(NOT_ON_LIST in r.reason and "@" not in r.reason for r in rejected)
    assert (report.sent, report.accepted, report.rejected) == (5, 3, 2)
    assert len(mailchimp.members(mailchimp.newsletter)) == contacts_before, "a push must never add a contact"
    assert tagged(mailchimp) == emails(sample_members(0, 3))


def test_a_member_without_an_email_is_rejected_before_any_request(mailchimp: MailchimpAudiencesSandbox) -> None:
    members = pa.Table.from_pylist([{**sample_members(0, 1).to_pylist()[0], "email": None}], schema=MEMBER_SCHEMA)
    report, results = push(config(mailchimp), adds=members)
    assert [(r.member_id, r.reason) for r in results[0].rejected] == [("p000000", NO_EMAIL)]
    assert not [r for r in mailchimp.requests if "members_to_add" in r.body]


def test_removing_a_contact_mailchimp_no_longer_holds_counts_as_done(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp)
    push(cfg, adds=sample_members(0, 4))
    mailchimp.archive(mailchimp.newsletter, "member.1@example.com")
    report, results = push(cfg, removes=sample_members(0, 2))
    assert results[0].accepted == 2 and not results[0].rejected  # nothing stays pending in the ledger
    assert report.details["removes_not_on_list"] == 1
    assert tagged(mailchimp) == {"member.2@example.com", "member.3@example.com"}


# ---------------------------------------------------------------------------- mirrors


def test_a_mirror_untags_everyone_it_did_not_push_and_reports_mailchimps_count(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp)
    push(cfg, adds=sample_members(0, 8))
    report, _ = push(cfg, adds=sample_members(5, 6), mode=PushMode.MIRROR)
    assert tagged(mailchimp) == emails(sample_members(5, 6))
    assert report.details["mirror_removed"] == 5
    assert report.match_estimate == 6


# ---------------------------------------------------------------------------- rate limits and keys


def test_mailchimps_429_is_waited_out_and_the_push_completes(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp)
    mailchimp.throttle(3)
    report, _ = push(cfg, adds=sample_members(0, 20))
    throttled = [r for r in mailchimp.requests if r.status == 429]
    assert len(throttled) == 3
    assert report.accepted == 20 and tagged(mailchimp) == emails(sample_members(0, 20))


def test_mailchimps_429_body_is_its_problem_document(mailchimp: MailchimpAudiencesSandbox) -> None:
    import requests

    mailchimp.throttle(1)
    answer = requests.get(f"{mailchimp.base_url}/3.0/ping", auth=("x", mailchimp.API_KEY), timeout=10)
    assert answer.status_code == 429 and answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["detail"] == THROTTLED_DETAIL


def test_a_key_revoked_mid_push_is_a_config_error_on_api_key(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp)
    with pytest.raises(ConfigError) as caught:
        Pusher().push(cfg, adds=sample_members(0, 30), between_batches=mailchimp.revoke_credentials)
    assert caught.value.field == "api_key"
    assert "API Key Invalid" in caught.value.message and "API keys" in caught.value.hint
    assert mailchimp.API_KEY not in caught.value.render()


def test_a_key_without_a_data_centre_is_a_config_error_before_any_request() -> None:
    cfg = MailchimpAudiencesConfig.model_validate({"api_key": "0123456789abcdef", "list_id": "a1b2c3d4e5"})
    with pytest.raises(ConfigError) as caught:
        MailchimpAudiences().check(cfg)
    assert caught.value.field == "api_key" and "data-centre" in caught.value.message


def test_membership_keys_are_the_hashes_mailchimp_shows(mailchimp: MailchimpAudiencesSandbox) -> None:
    cfg = config(mailchimp)
    push(cfg, adds=sample_members(0, 3))
    hashes = mailchimp.segment_hashes(mailchimp.newsletter, mailchimp.tag_id(mailchimp.newsletter, "Winback"))
    prepared = MailchimpAudiences().prepare(cfg, sample_members(0, 3))
    assert hashes == set(prepared.column("subscriber_hash").to_pylist())
