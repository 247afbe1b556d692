"""What is special about pushing to Klaviyo lists: profiles found by address in lookups of 100,
list calls of at most 1000 profile ids, addresses Klaviyo has no profile for (never created,
reported as rejected), Klaviyo's 429 with Retry-After, refused keys and revisions, mirrors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import requests
from threadline.contracts import MEMBER_SCHEMA, AudienceTarget, Batch, ConfigError, FatalError, PushMode, ReadRequest, SyncMode
from threadline.testing import AudienceContract, sample_members
from threadline_klaviyo import KlaviyoConfig, KlaviyoSource
from threadline_klaviyo.client import DEFAULT_REVISION
from threadline_klaviyo_lists import KlaviyoLists, KlaviyoListsConfig
from threadline_klaviyo_lists.destination import NO_EMAIL, NO_PROFILE
from threadline_klaviyo_lists.sandbox import KlaviyoListsSandbox

CONTACTS = [f"member.{i}@example.com" for i in range(2600)]
TARGET = AudienceTarget("winback_to_klaviyo", "winback", PushMode.DIFF, "run-1", 0, 0)


class Pusher(AudienceContract):
    """The suite's runner-like push (removes, then adds, in batches; finish), at Klaviyo's batch size."""

    destination = KlaviyoLists
    batch_rows = 1000


@pytest.fixture
def klaviyo() -> Iterator[KlaviyoListsSandbox]:
    with KlaviyoListsSandbox(people=20, contacts=CONTACTS) as box:
        yield box  # type: ignore[misc]


def config(box: KlaviyoListsSandbox, **overrides: Any) -> KlaviyoListsConfig:
    return KlaviyoListsConfig.model_validate({"base_url": f"{box.base_url}/api", "api_key": box.API_KEY,
                                              "list_id": box.AUDIENCE_LIST_ID, "backoff_base": 0.01, **overrides})


def push(cfg: KlaviyoListsConfig, adds: pa.Table | None = None, removes: pa.Table | None = None,
         mode: PushMode = PushMode.DIFF) -> tuple[Any, list[Any]]:
    return Pusher().push(cfg, adds=adds, removes=removes, mode=mode)


def emails(members: pa.Table) -> set[str]:
    return set(members.column("email").to_pylist())


def bodies(box: KlaviyoListsSandbox, method: str) -> list[list[Any]]:
    return [json.loads(r.body)["data"] for r in box.requests if r.method == method and "relationships" in r.path]


# ---------------------------------------------------------------------------- declarations and identifiers


def test_declares_the_email_channel_klaviyos_batch_limit_and_no_minimum() -> None:
    assert KlaviyoLists.channel == "email"
    assert KlaviyoLists.max_batch_rows == 1000  # "accepts a maximum of 1000 profiles per call"
    assert KlaviyoLists.min_members == 0
    assert KlaviyoLists.plain_columns == ("email",)


def test_only_the_normalized_email_is_prepared_phones_and_names_never_leave() -> None:
    # Klaviyo takes addresses, not hashes, and publishes no hashing example: the address is
    # trimmed and lower-cased (as Klaviyo matches it) and nothing else is kept.
    member = {name: None for name in MEMBER_SCHEMA.names} | {
        "member_id": "p1", "email": "  Sarah.Mason@Klaviyo-Demo.com ", "phone": "+15125550100", "first_name": "sarah"}
    prepared = KlaviyoLists().prepare(None, pa.Table.from_pylist([member], schema=MEMBER_SCHEMA))  # type: ignore[arg-type]
    assert prepared.to_pylist() == [{"member_id": "p1", "email": "sarah.mason@klaviyo-demo.com"}]


# ---------------------------------------------------------------------------- batches


def test_profiles_are_found_100_addresses_a_lookup_and_added_in_one_call(klaviyo: KlaviyoListsSandbox) -> None:
    report, _ = push(config(klaviyo), adds=sample_members(0, 250))
    lookups = [r for r in klaviyo.requests if r.path == "/api/profiles"]
    assert len(lookups) == 3 and all("any(email," in r.query["filter"][0] for r in lookups)
    assert [len(b) for b in bodies(klaviyo, "POST")] == [250]
    assert klaviyo.list_emails(klaviyo.AUDIENCE_LIST_ID) == emails(sample_members(0, 250))
    # pushed as diffs, the list may hold members added another way: its count is a detail, not a match estimate
    assert report.details["list_profiles"] == 250 and report.match_estimate is None


def test_a_writer_given_more_than_1000_rows_sends_at_most_1000_ids_a_call(klaviyo: KlaviyoListsSandbox) -> None:
    cfg = config(klaviyo)
    writer = KlaviyoLists().open_audience(cfg, TARGET)
    result = writer.add(KlaviyoLists().prepare(cfg, sample_members(0, 2500)))
    writer.finish()
    assert [len(b) for b in bodies(klaviyo, "POST")] == [1000, 1000, 500]
    assert result.accepted == 2500


def test_the_sandbox_refuses_more_than_1000_profiles_as_a_jsonapi_error(klaviyo: KlaviyoListsSandbox) -> None:
    ids = [klaviyo.profile_id(e) for e in CONTACTS[:1001]]
    answer = requests.post(f"{klaviyo.base_url}/api/lists/{klaviyo.AUDIENCE_LIST_ID}/relationships/profiles",
                           json={"data": [{"type": "profile", "id": i} for i in ids]}, timeout=10,
                           headers={"Authorization": f"Klaviyo-API-Key {klaviyo.API_KEY}", "revision": DEFAULT_REVISION})
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["code"] == "invalid" and "1000" in error["detail"] and error["source"] == {"pointer": "/data"}


# ---------------------------------------------------------------------------- rows Klaviyo does not take


def test_addresses_without_a_klaviyo_profile_are_rejected_and_never_created(klaviyo: KlaviyoListsSandbox) -> None:
    outsiders = pa.Table.from_pylist(
        [{**m, "email": f"stranger.{i}@example.org"} for i, m in enumerate(sample_members(5000, 2).to_pylist())],
        schema=MEMBER_SCHEMA)
    profiles_before = len(klaviyo.profiles())
    report, results = push(config(klaviyo), adds=pa.concat_tables([sample_members(0, 3), outsiders]))
    rejected = [r for res in results for r in res.rejected]
    assert sorted(r.member_id for r in rejected) == ["p005000", "p005001"]
    assert all(r.reason == NO_PROFILE for r in rejected)
    assert (report.sent, report.accepted, report.rejected) == (5, 3, 2)
    assert len(klaviyo.profiles()) == profiles_before, "a push must never create a profile"
    assert klaviyo.list_emails(klaviyo.AUDIENCE_LIST_ID) == emails(sample_members(0, 3))


def test_a_member_without_an_email_is_rejected_without_a_lookup(klaviyo: KlaviyoListsSandbox) -> None:
    members = pa.Table.from_pylist([{**sample_members(0, 1).to_pylist()[0], "email": None}], schema=MEMBER_SCHEMA)
    _, results = push(config(klaviyo), adds=members)
    assert [(r.member_id, r.reason) for r in results[0].rejected] == [("p000000", NO_EMAIL)]
    assert not [r for r in klaviyo.requests if r.path == "/api/profiles"]


def test_removing_a_member_whose_profile_is_gone_counts_as_done(klaviyo: KlaviyoListsSandbox) -> None:
    cfg = config(klaviyo)
    push(cfg, adds=sample_members(0, 4))
    klaviyo.delete_profile("member.1@example.com")
    report, results = push(cfg, removes=sample_members(0, 2))
    assert results[0].accepted == 2 and not results[0].rejected  # nothing stays pending in the ledger
    assert report.details["removes_without_profile"] == 1
    assert klaviyo.list_emails(klaviyo.AUDIENCE_LIST_ID) == {"member.2@example.com", "member.3@example.com"}


# ---------------------------------------------------------------------------- mirrors and reading back


def test_a_mirror_takes_everyone_else_off_a_list_it_did_not_start(klaviyo: KlaviyoListsSandbox) -> None:
    newsletter = klaviyo.newsletter  # seeded with other people
    assert klaviyo.list_emails(newsletter)
    report, _ = push(config(klaviyo, list_id=newsletter), adds=sample_members(0, 6), mode=PushMode.MIRROR)
    assert klaviyo.list_emails(newsletter) == emails(sample_members(0, 6))
    assert report.details["mirror_removed"] > 0 and report.match_estimate == 6


def test_pushed_memberships_are_read_back_by_the_klaviyo_source(klaviyo: KlaviyoListsSandbox) -> None:
    push(config(klaviyo), adds=sample_members(0, 3))
    source_config = KlaviyoConfig.model_validate({"base_url": f"{klaviyo.base_url}/api", "api_key": klaviyo.API_KEY,
                                                  "list_ids": [klaviyo.AUDIENCE_LIST_ID]})
    stream = KlaviyoSource().discover(source_config).get("list_memberships")
    rows = [r for m in KlaviyoSource().read(source_config, ReadRequest(stream, SyncMode.FULL_REFRESH))
            if isinstance(m, Batch) for r in m.records.to_pylist()]
    assert {r["email"] for r in rows} == emails(sample_members(0, 3))


# ---------------------------------------------------------------------------- rate limits, keys, lists


def test_klaviyos_429_retry_after_is_honoured_and_the_push_completes(klaviyo: KlaviyoListsSandbox) -> None:
    klaviyo.throttle(1, retry_after=1)
    report, _ = push(config(klaviyo), adds=sample_members(0, 20))
    throttled = [r for r in klaviyo.requests if r.status == 429]
    assert len(throttled) == 1
    assert report.accepted == 20 and klaviyo.list_emails(klaviyo.AUDIENCE_LIST_ID) == emails(sample_members(0, 20))


def test_klaviyos_429_carries_retry_after_and_its_jsonapi_error(klaviyo: KlaviyoListsSandbox) -> None:
    klaviyo.throttle(1, retry_after=3)
    answer = requests.get(f"{klaviyo.base_url}/api/lists", timeout=10,
                          headers={"Authorization": f"Klaviyo-API-Key {klaviyo.API_KEY}", "revision": DEFAULT_REVISION})
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert "RateLimit-Remaining" not in answer.headers  # Klaviyo leaves them out of 429s
    assert answer.json()["errors"][0]["code"] == "throttled"


def test_a_key_revoked_mid_push_is_a_config_error_on_api_key(klaviyo: KlaviyoListsSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        Pusher().push(config(klaviyo), adds=sample_members(0, 2001), between_batches=klaviyo.revoke_credentials)
    assert caught.value.field == "api_key" and "401" in caught.value.message
    assert klaviyo.API_KEY not in caught.value.render()


def test_a_revision_klaviyo_refuses_is_a_config_error_on_revision(klaviyo: KlaviyoListsSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        KlaviyoLists().check(config(klaviyo, revision="2019-01-01"))
    assert caught.value.field == "revision" and "2019-01-01" in caught.value.message


def test_a_deleted_list_mid_push_is_an_error_naming_the_list(klaviyo: KlaviyoListsSandbox) -> None:
    cfg = config(klaviyo)
    writer = KlaviyoLists().open_audience(cfg, TARGET)
    klaviyo.delete_list(cfg.list_id)
    with pytest.raises(FatalError) as caught:
        writer.add(KlaviyoLists().prepare(cfg, sample_members(0, 3)))
    writer.abort()
    assert cfg.list_id in caught.value.message and "404" in caught.value.message
