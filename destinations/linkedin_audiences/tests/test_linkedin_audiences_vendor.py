"""What is special about LinkedIn: versioned Rest.li headers, per-element statuses, the OAuth
refresh flow, per-member throttling, its batch limit, segments found or created by name."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import requests
from threadline.contracts import MEMBER_SCHEMA, AudienceTarget, ConfigError, FatalError, PushMode
from threadline.testing.audience import sample_members
from threadline_linkedin_audiences import LinkedInAudiences, LinkedInAudiencesConfig
from threadline_linkedin_audiences.destination import MAX_BATCH_ROWS, elements_body
from threadline_linkedin_audiences.sandbox import LinkedInAudiencesSandbox

USERS = f"/rest/dmpSegments/{LinkedInAudiencesSandbox.SEGMENT_ID}/users"


@pytest.fixture
def linkedin() -> Iterator[LinkedInAudiencesSandbox]:
    with LinkedInAudiencesSandbox() as box:
        yield box


def config(box: LinkedInAudiencesSandbox, **changes: Any) -> LinkedInAudiencesConfig:
    raw = {"base_url": f"{box.base_url}/rest", "token_url": f"{box.base_url}/oauth/v2/accessToken",
           "client_id": box.CLIENT_ID, "client_secret": box.CLIENT_SECRET, "refresh_token": box.REFRESH_TOKEN,
           "ad_account_id": box.AD_ACCOUNT_ID, "segment_id": box.SEGMENT_ID, "backoff_base": 0.01, **changes}
    return LinkedInAudiencesConfig.model_validate({k: v for k, v in raw.items() if v is not None})


def push(cfg: LinkedInAudiencesConfig, adds: pa.Table, removes: pa.Table | None = None, *, batch: int = 40) -> Any:
    dest = LinkedInAudiences()
    removes = removes if removes is not None else sample_members(0, 0)
    writer = dest.open_audience(cfg, AudienceTarget("linkedin", "buyers", PushMode.DIFF, "run-1", adds.num_rows,
                                                    removes.num_rows))
    results = []
    for method, members in (("remove", removes), ("add", adds)):
        prepared = dest.prepare(cfg, members) if members.num_rows else None
        for offset in range(0, members.num_rows, batch):
            results.append(getattr(writer, method)(prepared.slice(offset, batch)))
    return writer.finish(), results


def members(*rows: dict[str, str | None]) -> pa.Table:
    return pa.Table.from_pylist([{n: row.get(n) for n in MEMBER_SCHEMA.names} for row in rows], schema=MEMBER_SCHEMA)


def rest_headers(box: LinkedInAudiencesSandbox, **changes: str | None) -> dict[str, str]:
    token = requests.post(f"{box.base_url}/oauth/v2/accessToken", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": box.REFRESH_TOKEN, "client_id": box.CLIENT_ID,
        "client_secret": box.CLIENT_SECRET}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "LinkedIn-Version": "202601", "X-Restli-Protocol-Version": "2.0.0",
               "X-RestLi-Method": "BATCH_CREATE", **changes}
    return {k: v for k, v in headers.items() if v is not None}


# ---------------------------------------------------------------------- hashes


def test_email_hash_is_sha256_of_the_trimmed_lower_cased_address() -> None:
    # LinkedIn's DMP Segment Users page
    # (https://learn.microsoft.com/en-us/linkedin/marketing/matched-audiences/create-and-manage-segment-users)
    # shows SHA256_EMAIL values (6b56c85c…) but never the address they hash, so there is no
    # published pair to match: the expected digest is computed here independently with hashlib
    # from the normalization partners document (trim, lower-case, SHA-256 hex).
    expected = "e814ff3dc480a94c7ce9334062ec4733c75a002f4bcec0197f62ffea64059e2f"
    assert hashlib.sha256(b"ada.lovelace@example.com").hexdigest() == expected
    cfg = LinkedInAudiencesConfig(client_id="c", client_secret="s", refresh_token="r", ad_account_id="1", segment_id="2")
    prepared = LinkedInAudiences().prepare(cfg, members({"member_id": "p1", "email": "  Ada.Lovelace@Example.COM "}))
    assert prepared.column("email_sha256").to_pylist() == [expected]


def test_no_phone_is_prepared_and_names_only_on_request_in_the_clear() -> None:
    # LinkedIn's user id types are SHA256_EMAIL, SHA512_EMAIL and GOOGLE_AID: no phone. Names
    # are matching hints LinkedIn takes unhashed, so they go only when send_names is set.
    cfg = LinkedInAudiencesConfig(client_id="c", client_secret="s", refresh_token="r", ad_account_id="1", segment_id="2")
    row = members({"member_id": "p1", "email": "a@example.com", "phone": "+15125550101", "first_name": " Zoë ",
                   "last_name": "O'Neil", "country": "gb"})
    assert LinkedInAudiences().prepare(cfg, row).column_names == ["member_id", "email_sha256"]
    named = LinkedInAudiences().prepare(cfg.model_copy(update={"send_names": True}), row).to_pylist()[0]
    assert (named["first_name"], named["last_name"], named["country"]) == ("Zoë", "O'Neil", "GB")
    assert set(LinkedInAudiences.plain_columns) == {"first_name", "last_name"}


# ---------------------------------------------------------------------- declarations


def test_declares_advertising_channel_linkedin_batch_limit_minimum_and_diff_only() -> None:
    assert LinkedInAudiences.channel == "advertising"
    assert LinkedInAudiences.max_batch_rows == MAX_BATCH_ROWS == LinkedInAudiencesSandbox.MAX_BATCH_ELEMENTS == 5000
    assert LinkedInAudiences.min_members == 300
    assert LinkedInAudiences.modes == (PushMode.DIFF,)


def test_registered_as_a_plugin_with_its_sandbox() -> None:
    from threadline.plugins import registry

    assert registry().destinations["linkedin_audiences"] is LinkedInAudiences
    assert registry().sandboxes["linkedin_audiences"] is LinkedInAudiencesSandbox


# ---------------------------------------------------------------------- the request LinkedIn gets


def test_users_call_is_a_versioned_restli_batch_create(linkedin: LinkedInAudiencesSandbox) -> None:
    push(config(linkedin), members({"member_id": "p1", "email": "a@example.com"}, {"member_id": "p2", "email": "b@x.org"}))
    [sent] = linkedin.requests_to(USERS, "POST")
    assert sent.headers["x-restli-method"] == "BATCH_CREATE" and sent.headers["linkedin-version"] == "202607"
    assert sent.headers["x-restli-protocol-version"] == "2.0.0" and sent.headers["authorization"] == "Bearer ***"
    assert json.loads(sent.body) == {"elements": [
        {"action": "ADD", "userIds": [{"idType": "SHA256_EMAIL", "idValue": hashlib.sha256(b"a@example.com").hexdigest()}]},
        {"action": "ADD", "userIds": [{"idType": "SHA256_EMAIL", "idValue": hashlib.sha256(b"b@x.org").hexdigest()}]},
    ]}


def test_names_are_sent_as_valid_json_when_asked(linkedin: LinkedInAudiencesSandbox) -> None:
    tricky = members({"member_id": "p1", "email": "a@example.com", "first_name": 'Jo "JJ"', "last_name": "Back\\slash",
                      "country": "US"},
                     {"member_id": "p2", "email": "b@example.com", "first_name": "Zoë\tAnn", "last_name": None})
    report, _ = push(config(linkedin, send_names=True), tricky)
    assert report.accepted == 2
    elements = json.loads(linkedin.requests_to(USERS, "POST")[0].body)["elements"]
    assert (elements[0]["firstName"], elements[0]["lastName"], elements[0]["country"]) == ('Jo "JJ"', "Back\\slash", "US")
    assert elements[1]["firstName"] == "ZoëAnn" and "lastName" not in elements[1] and "country" not in elements[1]


def test_member_without_email_is_rejected_and_not_sent(linkedin: LinkedInAudiencesSandbox) -> None:
    report, results = push(config(linkedin), members({"member_id": "p1", "email": "a@example.com"},
                                                     {"member_id": "p2", "phone": "+15125550102"}))
    rejected = [r for result in results for r in result.rejected]
    assert [r.member_id for r in rejected] == ["p2"] and "no email" in rejected[0].reason
    assert (report.sent, report.accepted, report.rejected) == (2, 1, 1)
    assert len(json.loads(linkedin.requests_to(USERS, "POST")[0].body)["elements"]) == 1


def test_each_refused_element_is_a_rejection_with_linkedins_message(linkedin: LinkedInAudiencesSandbox) -> None:
    batch = sample_members(0, 6)
    hashes = [hashlib.sha256(e.encode()).hexdigest() for e in batch.column("email").to_pylist()]
    linkedin.reject(hashes[1], "Member data for userIds[0] could not be processed")
    linkedin.reject(hashes[4], "Member data for userIds[0] could not be processed")
    report, results = push(config(linkedin), batch)
    rejected = results[0].rejected
    assert [r.member_id for r in rejected] == ["p000001", "p000004"]
    assert rejected[0].reason == "LinkedIn 400: Member data for userIds[0] could not be processed"
    assert (report.accepted, report.rejected) == (4, 2) and linkedin.segment_hashes(linkedin.SEGMENT_ID) == \
        set(hashes) - {hashes[1], hashes[4]}


def test_remove_sends_remove_elements(linkedin: LinkedInAudiencesSandbox) -> None:
    cfg = config(linkedin)
    push(cfg, sample_members(0, 5))
    push(cfg, sample_members(0, 0), removes=sample_members(0, 2))
    assert len(linkedin.segment_hashes(linkedin.SEGMENT_ID)) == 3
    assert {e["action"] for e in json.loads(linkedin.requests_to(USERS, "POST")[-1].body)["elements"]} == {"REMOVE"}


# ---------------------------------------------------------------------- what the sandbox enforces


def test_missing_version_header_is_400_version_missing(linkedin: LinkedInAudiencesSandbox) -> None:
    answer = requests.post(linkedin.base_url + USERS, json={"elements": []}, timeout=10,
                           headers=rest_headers(linkedin, **{"LinkedIn-Version": None}))
    assert answer.status_code == 400 and answer.json()["code"] == "VERSION_MISSING"


def test_missing_batch_create_method_or_protocol_header_is_400(linkedin: LinkedInAudiencesSandbox) -> None:
    element = {"action": "ADD", "userIds": [{"idType": "SHA256_EMAIL", "idValue": "a" * 64}]}
    for missing in ("X-RestLi-Method", "X-Restli-Protocol-Version"):
        answer = requests.post(linkedin.base_url + USERS, json={"elements": [element]}, timeout=10,
                               headers=rest_headers(linkedin, **{missing: None}))
        assert answer.status_code == 400, missing
    assert not linkedin.segment_hashes(linkedin.SEGMENT_ID)


def test_more_elements_than_linkedin_takes_is_400_and_nothing_applied(linkedin: LinkedInAudiencesSandbox) -> None:
    element = {"action": "ADD", "userIds": [{"idType": "SHA256_EMAIL", "idValue": "a" * 64}]}
    answer = requests.post(linkedin.base_url + USERS, json={"elements": [element] * (MAX_BATCH_ROWS + 1)}, timeout=30,
                           headers=rest_headers(linkedin))
    assert answer.status_code == 400 and "maximum of 5000" in answer.json()["message"]
    assert not linkedin.segment_hashes(linkedin.SEGMENT_ID)


def test_a_full_batch_of_five_thousand_is_one_accepted_call(linkedin: LinkedInAudiencesSandbox) -> None:
    report, _ = push(config(linkedin), sample_members(0, MAX_BATCH_ROWS), batch=MAX_BATCH_ROWS)
    assert report.accepted == MAX_BATCH_ROWS and len(linkedin.requests_to(USERS, "POST")) == 1


def test_writer_refuses_a_call_larger_than_linkedins_limit(linkedin: LinkedInAudiencesSandbox) -> None:
    cfg = config(linkedin)
    dest = LinkedInAudiences()
    writer = dest.open_audience(cfg, AudienceTarget("linkedin", "a", PushMode.DIFF, "r", MAX_BATCH_ROWS + 1, 0))
    with pytest.raises(ValueError, match="at most 5000"):
        writer.add(dest.prepare(cfg, sample_members(0, MAX_BATCH_ROWS + 1)))


def test_per_member_throttling_answers_429_and_is_waited_out() -> None:
    with LinkedInAudiencesSandbox(rate_limit=(2, 0.5)) as box:
        report, _ = push(config(box, backoff_base=0.2), sample_members(0, 12), batch=2)
        assert report.accepted == 12 and len(box.segment_hashes(box.SEGMENT_ID)) == 12
        assert any(r.status == 429 for r in box.requests_to(USERS, "POST"))


def test_retired_version_is_a_config_error_on_linkedin_version(linkedin: LinkedInAudiencesSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        push(config(linkedin, linkedin_version="202401"), sample_members(0, 3))
    assert caught.value.field == "linkedin_version" and "426" in caught.value.render()


def test_a_version_linkedin_sunset_last_month_is_refused_and_the_default_is_served(linkedin: LinkedInAudiencesSandbox) -> None:
    # LinkedIn's migrations page: 202511 was sunset on 2026-11-16; the sandbox served it before.
    with pytest.raises(ConfigError) as caught:
        push(config(linkedin, linkedin_version="202511"), sample_members(0, 3))
    assert caught.value.field == "linkedin_version"
    default = LinkedInAudiencesConfig.model_fields["linkedin_version"].default
    assert default in linkedin.active_versions and default > "202601"  # 202601 goes on 2027-01-15
    push(config(linkedin), sample_members(0, 3))


# ---------------------------------------------------------------------- OAuth2


def test_expired_access_token_is_renewed_from_the_refresh_token(linkedin: LinkedInAudiencesSandbox) -> None:
    cfg = config(linkedin)
    dest = LinkedInAudiences()
    writer = dest.open_audience(cfg, AudienceTarget("linkedin", "a", PushMode.DIFF, "r", 20, 0))
    prepared = dest.prepare(cfg, sample_members(0, 20))
    writer.add(prepared.slice(0, 10))
    linkedin.expire_tokens()
    writer.add(prepared.slice(10))
    statuses = [r.status for r in linkedin.requests_to(USERS, "POST")]
    assert statuses == [200, 401, 200] and len(linkedin.requests_to("/oauth/v2/accessToken", "POST")) == 2
    assert len(linkedin.segment_hashes(linkedin.SEGMENT_ID)) == 20


def test_configured_access_token_is_used_until_linkedin_refuses_it(linkedin: LinkedInAudiencesSandbox) -> None:
    push(config(linkedin, access_token="AQVstale-token"), sample_members(0, 3))
    assert [r.status for r in linkedin.requests_to(USERS, "POST")] == [401, 200]
    assert len(linkedin.requests_to("/oauth/v2/accessToken", "POST")) == 1


def test_revoked_refresh_token_mid_push_is_a_config_error_on_refresh_token(linkedin: LinkedInAudiencesSandbox) -> None:
    cfg = config(linkedin)
    dest = LinkedInAudiences()
    writer = dest.open_audience(cfg, AudienceTarget("linkedin", "a", PushMode.DIFF, "r", 20, 0))
    prepared = dest.prepare(cfg, sample_members(0, 20))
    writer.add(prepared.slice(0, 10))
    linkedin.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        writer.add(prepared.slice(10))
    text = caught.value.render()
    assert caught.value.field == "refresh_token" and "invalid_grant" in text and "authorize the app again" in text
    assert linkedin.REFRESH_TOKEN not in text and linkedin.CLIENT_SECRET not in text


# ---------------------------------------------------------------------- accounts and segments


def test_ad_account_without_a_role_is_a_config_error_on_ad_account_id(linkedin: LinkedInAudiencesSandbox) -> None:
    cfg = config(linkedin, ad_account_id=linkedin.OTHER_AD_ACCOUNT_ID, segment_id=None, segment_name="buyers")
    with pytest.raises(ConfigError) as caught:
        LinkedInAudiences().check(cfg)
    assert caught.value.field == "ad_account_id" and "403" in caught.value.render()


def test_company_segment_is_refused(linkedin: LinkedInAudiencesSandbox) -> None:
    cfg = config(linkedin, segment_id=linkedin.COMPANY_SEGMENT_ID)
    with pytest.raises(ConfigError) as caught:
        LinkedInAudiences().check(cfg)
    assert caught.value.field == "segment_id" and "COMPANY" in caught.value.render()
    with pytest.raises(FatalError) as pushed:
        push(cfg, sample_members(0, 2))
    assert "400" in pushed.value.render() and f"segment {linkedin.COMPANY_SEGMENT_ID}" in pushed.value.render()


def test_first_push_by_name_creates_the_segment_waits_and_the_next_finds_it() -> None:
    with LinkedInAudiencesSandbox(ready_after=0.2) as box:
        cfg = config(box, segment_id=None, segment_name="recent buyers", source_platform="THREADLINE",
                     created_segment_wait=0.4)
        LinkedInAudiences().check(cfg)  # creates nothing
        assert "recent buyers" not in box.segment_names().values()
        first, _ = push(cfg, sample_members(0, 4))
        created = first.details["segment_id"]
        assert first.details["created_segment"] is True and box.segment_names()[created] == "recent buyers"
        second, _ = push(cfg, sample_members(4, 4))
        assert second.details["segment_id"] == created and second.details["created_segment"] is False
        assert len(box.segment_hashes(created)) == 8


def test_users_before_a_new_segment_is_ready_are_a_404_naming_the_segment() -> None:
    with LinkedInAudiencesSandbox(ready_after=60) as box:
        cfg = config(box, segment_id=None, segment_name="too soon", source_platform="THREADLINE", created_segment_wait=0)
        with pytest.raises(FatalError) as caught:
            push(cfg, sample_members(0, 2))
        assert "404" in caught.value.render() and "wait a few seconds" in caught.value.hint


def test_creating_a_segment_needs_source_platform(linkedin: LinkedInAudiencesSandbox) -> None:
    cfg = config(linkedin, segment_id=None, segment_name="no such segment")
    for attempt in (lambda: LinkedInAudiences().check(cfg), lambda: push(cfg, sample_members(0, 2))):
        with pytest.raises(ConfigError) as caught:
            attempt()
        assert caught.value.field == "source_platform"


def test_a_mirror_push_is_refused_naming_the_mode(linkedin: LinkedInAudiencesSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        LinkedInAudiences().open_audience(config(linkedin), AudienceTarget("l", "a", PushMode.MIRROR, "r", 1, 0))
    assert caught.value.field == "mode"


def test_elements_body_keeps_row_order() -> None:
    rows = pa.table({"member_id": ["a", "b", "c"], "email_sha256": ["1" * 64, "2" * 64, "3" * 64]})
    body = json.loads(elements_body(rows, "REMOVE", names=False))
    assert [e["userIds"][0]["idValue"][0] for e in body["elements"]] == ["1", "2", "3"]
