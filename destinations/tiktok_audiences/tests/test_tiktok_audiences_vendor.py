"""What is special about TikTok: HTTP 200 error codes, the hashes it documents, its batch limit,
audiences found or created by name, and rows that cannot be matched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import requests
from threadline.activation import sha256_hex
from threadline.contracts import MEMBER_SCHEMA, AudienceTarget, ConfigError, FatalError, PushMode, TransientError
from threadline.testing.audience import sample_members
from threadline_tiktok_audiences import TikTokAudiences, TikTokAudiencesConfig
from threadline_tiktok_audiences.destination import MAPPING_PATH, MAX_BATCH_ROWS
from threadline_tiktok_audiences.sandbox import TikTokAudiencesSandbox


@pytest.fixture
def tiktok() -> Iterator[TikTokAudiencesSandbox]:
    with TikTokAudiencesSandbox() as box:
        yield box


def config(box: TikTokAudiencesSandbox, **changes: Any) -> TikTokAudiencesConfig:
    raw = {"base_url": box.base_url, "access_token": box.TOKEN, "advertiser_id": box.ADVERTISER_ID,
           "audience_id": box.AUDIENCE_ID, "backoff_base": 0.01, **changes}
    return TikTokAudiencesConfig.model_validate({k: v for k, v in raw.items() if v is not None})


def push(cfg: TikTokAudiencesConfig, adds: pa.Table, removes: pa.Table | None = None, *, batch: int = 40) -> Any:
    dest = TikTokAudiences()
    removes = removes if removes is not None else sample_members(0, 0)
    writer = dest.open_audience(cfg, AudienceTarget("tiktok", "lapsed", PushMode.DIFF, "run-1", adds.num_rows,
                                                    removes.num_rows))
    results = []
    for method, members in (("remove", removes), ("add", adds)):
        prepared = dest.prepare(cfg, members) if members.num_rows else None
        for offset in range(0, members.num_rows, batch):
            results.append(getattr(writer, method)(prepared.slice(offset, batch)))
    return writer.finish(), results


def members(*rows: dict[str, str | None]) -> pa.Table:
    full = [{name: row.get(name) for name in MEMBER_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=MEMBER_SCHEMA)


# ---------------------------------------------------------------------- hashes TikTok documents


def test_email_hash_matches_tiktoks_documented_example() -> None:
    # https://ads.tiktok.com/help/article/how-to-create-a-custom-audience-with-a-customer-file
    # (table "supported IDs and formats"): normalized "janedoe@gmail.com", hashed below.
    documented = "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69"
    cfg = TikTokAudiencesConfig(access_token="t", advertiser_id="1", audience_id="2")
    prepared = TikTokAudiences().prepare(cfg, members({"member_id": "p1", "email": "  JaneDoe@Gmail.com "}))
    assert prepared.column("email_sha256").to_pylist() == [documented]


def test_phone_hash_matches_tiktoks_documented_example() -> None:
    # Same page: phone normalized "+37493828222" (INTL example), hashed
    # 65b7e6dc…22d4 — which is the SHA-256 of the digits without '+', the form TikTok also
    # accepts ("Also supported - Without '+'"); prepare sends exactly that.
    documented = "65b7e6dcf6f4310f8d7cbfbd78289a753062fb054d6664fb9aaac5df66a422d4"
    assert sha256_hex("37493828222") == documented and sha256_hex("+37493828222") != documented
    cfg = TikTokAudiencesConfig(access_token="t", advertiser_id="1", audience_id="2")
    prepared = TikTokAudiences().prepare(cfg, members({"member_id": "p1", "phone": "+37493828222"}))
    assert prepared.column("phone_sha256").to_pylist() == [documented]


def test_no_name_or_address_is_prepared_tiktok_takes_none() -> None:
    # TikTok's mapping id types are emails, phones and device ids: a name hash has no place to go.
    cfg = TikTokAudiencesConfig(access_token="t", advertiser_id="1", audience_id="2")
    prepared = TikTokAudiences().prepare(cfg, sample_members(0, 3))
    assert prepared.column_names == ["member_id", "email_sha256", "phone_sha256"]
    no_phone = TikTokAudiences().prepare(cfg.model_copy(update={"send_phone": False}), sample_members(0, 3))
    assert no_phone.column_names == ["member_id", "email_sha256"]


# ---------------------------------------------------------------------- declarations


def test_declares_advertising_channel_tiktok_batch_limit_minimum_and_diff_only() -> None:
    assert TikTokAudiences.channel == "advertising"
    assert TikTokAudiences.max_batch_rows == MAX_BATCH_ROWS == TikTokAudiencesSandbox.MAX_BATCH_ROWS == 10_000
    assert TikTokAudiences.min_members == 1000
    assert TikTokAudiences.modes == (PushMode.DIFF,)


def test_registered_as_a_plugin_with_its_sandbox() -> None:
    from threadline.plugins import registry

    assert registry().destinations["tiktok_audiences"] is TikTokAudiences
    assert registry().sandboxes["tiktok_audiences"] is TikTokAudiencesSandbox


# ---------------------------------------------------------------------- the request TikTok gets


def test_mapping_request_is_positional_hashes_with_the_access_token_header(tiktok: TikTokAudiencesSandbox) -> None:
    cfg = config(tiktok)
    push(cfg, members({"member_id": "p1", "email": "a@example.com", "phone": "+15125550101"},
                      {"member_id": "p2", "email": "b@example.com"}))
    [sent] = tiktok.requests_to(MAPPING_PATH, "POST")
    assert sent.headers["access-token"] == "***"  # present, and masked in the recording
    body = json.loads(sent.body)
    assert body["advertiser_ids"] == [tiktok.ADVERTISER_ID] and body["action"] == "add"
    assert body["id_schema"] == ["EMAIL_SHA256", "PHONE_SHA256"]
    audience = [tiktok.AUDIENCE_ID]
    assert body["batch_data"] == [
        [{"id": sha256_hex("a@example.com"), "audience_ids": audience},
         {"id": sha256_hex("15125550101"), "audience_ids": audience}],
        [{"id": sha256_hex("b@example.com"), "audience_ids": audience}, {}],
    ]


def test_member_without_email_or_phone_is_rejected_and_not_sent(tiktok: TikTokAudiencesSandbox) -> None:
    cfg = config(tiktok)
    report, results = push(cfg, members({"member_id": "p1", "email": "a@example.com"},
                                        {"member_id": "p2", "first_name": "ann"},
                                        {"member_id": "p3", "phone": "+15125550103"}))
    rejected = [r for result in results for r in result.rejected]
    assert [r.member_id for r in rejected] == ["p2"] and "no email or phone" in rejected[0].reason
    assert (report.sent, report.accepted, report.rejected) == (3, 2, 1)
    assert len(json.loads(tiktok.requests_to(MAPPING_PATH, "POST")[0].body)["batch_data"]) == 2
    assert tiktok.audience_hashes(tiktok.AUDIENCE_ID, "PHONE_SHA256") == {sha256_hex("15125550103")}


def test_remove_deletes_the_members_email_and_phone(tiktok: TikTokAudiencesSandbox) -> None:
    cfg = config(tiktok)
    first = sample_members(0, 6)
    push(cfg, first)
    push(cfg, sample_members(0, 0), removes=first.slice(0, 2))
    assert len(tiktok.audience_hashes(tiktok.AUDIENCE_ID)) == 4
    assert len(tiktok.audience_hashes(tiktok.AUDIENCE_ID, "PHONE_SHA256")) == 4
    assert json.loads(tiktok.requests_to(MAPPING_PATH, "POST")[-1].body)["action"] == "delete"


# ---------------------------------------------------------------------- batch limit


def test_a_full_batch_of_ten_thousand_rows_is_one_accepted_call(tiktok: TikTokAudiencesSandbox) -> None:
    cfg = config(tiktok)
    report, _ = push(cfg, sample_members(0, MAX_BATCH_ROWS), batch=MAX_BATCH_ROWS)
    assert report.accepted == MAX_BATCH_ROWS and len(tiktok.requests_to(MAPPING_PATH, "POST")) == 1
    assert len(tiktok.audience_hashes(tiktok.AUDIENCE_ID)) == MAX_BATCH_ROWS


def test_the_sandbox_refuses_more_rows_than_tiktok_takes_with_40002(tiktok: TikTokAudiencesSandbox) -> None:
    row = [{"id": "a" * 64, "audience_ids": [tiktok.AUDIENCE_ID]}]
    body = {"advertiser_ids": [tiktok.ADVERTISER_ID], "action": "add", "id_schema": ["EMAIL_SHA256"],
            "batch_data": [row] * (MAX_BATCH_ROWS + 1)}
    answer = requests.post(tiktok.base_url + MAPPING_PATH, json=body, headers={"Access-Token": tiktok.TOKEN}, timeout=30)
    assert answer.status_code == 200 and answer.json()["code"] == 40002
    assert "at most 10000" in answer.json()["message"] and not tiktok.audience_hashes(tiktok.AUDIENCE_ID)


def test_writer_refuses_a_call_larger_than_tiktoks_limit(tiktok: TikTokAudiencesSandbox) -> None:
    cfg = config(tiktok)
    dest = TikTokAudiences()
    writer = dest.open_audience(cfg, AudienceTarget("tiktok", "a", PushMode.DIFF, "r", MAX_BATCH_ROWS + 1, 0))
    with pytest.raises(ValueError, match="at most 10000"):
        writer.add(dest.prepare(cfg, sample_members(0, MAX_BATCH_ROWS + 1)))
    assert not tiktok.requests


# ---------------------------------------------------------------------- TikTok's codes (all HTTP 200)


@pytest.mark.parametrize("code", [40100, 51021, 50000])
def test_throttling_and_system_codes_are_retried(tiktok: TikTokAudiencesSandbox, code: int) -> None:
    cfg = config(tiktok)
    tiktok.throttle(3, code)
    report, _ = push(cfg, sample_members(0, 50))
    assert report.accepted == 50 and len(tiktok.audience_hashes(tiktok.AUDIENCE_ID)) == 50
    assert len(tiktok.requests_to(MAPPING_PATH, "POST")) == 2 + 3  # two batches, three answered with the code


def test_throttling_that_does_not_end_stops_with_a_transient_error_naming_the_code(tiktok: TikTokAudiencesSandbox) -> None:
    tiktok.throttle(50)
    with pytest.raises(TransientError) as caught:
        push(config(tiktok), sample_members(0, 5))
    text = caught.value.render()
    assert "40100" in text and "tiktok_audiences" in text and "QPS limit" in text


def test_a_per_second_limit_is_answered_with_40100_and_waited_out() -> None:
    with TikTokAudiencesSandbox(qps=2) as box:
        report, _ = push(config(box, backoff_base=0.3), sample_members(0, 12), batch=2)
        assert report.accepted == 12 and len(box.audience_hashes(box.AUDIENCE_ID)) == 12
        assert len(box.requests_to(MAPPING_PATH, "POST")) > 6  # calls beyond two a second were throttled, then sent again


def test_revoked_token_is_a_config_error_on_access_token(tiktok: TikTokAudiencesSandbox) -> None:
    cfg = config(tiktok)
    dest = TikTokAudiences()
    writer = dest.open_audience(cfg, AudienceTarget("tiktok", "a", PushMode.DIFF, "r", 20, 0))
    prepared = dest.prepare(cfg, sample_members(0, 20))
    writer.add(prepared.slice(0, 10))
    tiktok.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        writer.add(prepared.slice(10))
    assert caught.value.field == "access_token" and "40105" in caught.value.render()
    assert "authorize" in caught.value.hint and tiktok.TOKEN not in caught.value.render()


def test_missing_token_is_40104_a_config_error_on_access_token(tiktok: TikTokAudiencesSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        TikTokAudiences().check(config(tiktok, access_token=""))
    assert caught.value.field == "access_token" and "40104" in caught.value.render()


def test_advertiser_the_token_may_not_operate_is_a_config_error_on_advertiser_id(tiktok: TikTokAudiencesSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        push(config(tiktok, advertiser_id=tiktok.OTHER_ADVERTISER_ID), sample_members(0, 3))
    assert caught.value.field == "advertiser_id" and "40001" in caught.value.render()


def test_audience_of_another_advertiser_is_a_fatal_error_naming_the_audience(tiktok: TikTokAudiencesSandbox) -> None:
    with pytest.raises(FatalError) as caught:
        push(config(tiktok, audience_id="999"), sample_members(0, 3))
    text = caught.value.render()
    assert "40002" in text and "audience 999" in text and "request_id" in text
    assert "member." not in text  # no identifier in the error


def test_check_names_an_unknown_audience(tiktok: TikTokAudiencesSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        TikTokAudiences().check(config(tiktok, audience_id="999"))
    assert caught.value.field == "audience_id"


# ---------------------------------------------------------------------- audiences by name


def test_first_push_by_name_creates_the_audience_and_the_next_finds_it(tiktok: TikTokAudiencesSandbox) -> None:
    cfg = config(tiktok, audience_id=None, audience_name="lapsed customers")
    TikTokAudiences().check(cfg)  # creates nothing
    assert "lapsed customers" not in tiktok.audience_ids().values()
    first, _ = push(cfg, sample_members(0, 5))
    created = first.details["audience_id"]
    assert first.details["created_audience"] is True and tiktok.audience_ids()[created] == "lapsed customers"
    second, _ = push(cfg, sample_members(5, 5))
    assert second.details == {**second.details, "audience_id": created, "created_audience": False}
    assert len(tiktok.audience_hashes(created)) == 10 and list(tiktok.audience_ids().values()).count("lapsed customers") == 1


def test_config_needs_an_audience_id_or_name() -> None:
    with pytest.raises(ValueError, match="audience_id .* or audience_name"):
        TikTokAudiencesConfig(access_token="t", advertiser_id="1")


def test_a_mirror_push_is_refused_naming_the_mode(tiktok: TikTokAudiencesSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        TikTokAudiences().open_audience(config(tiktok), AudienceTarget("tiktok", "a", PushMode.MIRROR, "r", 1, 0))
    assert caught.value.field == "mode" and "no replace" in caught.value.hint
