"""What is special about Mailchimp: the data centre in the key, consent status, deleted
audiences, rate-limit windows longer than the run allows, and values of unexpected types."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from threadline.contracts import Batch, ConfigError, FatalError, ReadRequest, SyncMode
from threadline.engine import run_job
from threadline.job import job_from_dict
from threadline.state import StateStore
from threadline.testing.harness import end_rate_limit_pause
from threadline.testing.harness import installed_destination, registry_of
from threadline_mailchimp import MailchimpConfig, MailchimpSource
from threadline_mailchimp.sandbox import MailchimpSandbox, subscriber_hash

NEWSLETTER, PRODUCT, VIP = "a1b2c3d4e5", "f6a7b8c9d0", "0e1d2c3b4a"


@pytest.fixture
def mailchimp() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(people=40) as box:
        yield box  # type: ignore[misc]


def config(box: MailchimpSandbox, **overrides: Any) -> MailchimpConfig:
    values = {"base_url": f"{box.base_url}/3.0", "api_key": box.API_KEY, "page_size": 25, "backoff_base": 0.01,
              **overrides}
    return MailchimpConfig.model_validate(values)


def read(cfg: MailchimpConfig, stream: str, mode: SyncMode = SyncMode.FULL_REFRESH, **request: Any) -> list[dict]:
    source = MailchimpSource()
    declared = source.discover(cfg).get(stream)
    rows: list[dict] = []
    for message in source.read(cfg, ReadRequest(stream=declared, sync_mode=mode, **request)):
        if isinstance(message, Batch):
            rows += message.records.to_pylist()
    return rows


def sync(box: MailchimpSandbox, workdir: Path, streams: list[str], **cfg: Any):
    """One engine run into DuckDB (upserts), state in workdir; up to a fifth of rows may be quarantined."""
    job = job_from_dict({
        "name": "mc", "state": str(workdir / ".threadline"), "concurrency": 1, "max_rejected_share": 0.2,
        "sources": {"mc": {"connector": "mailchimp", "config": {
            "base_url": f"{box.base_url}/3.0", "api_key": box.API_KEY, "page_size": 25, "backoff_base": 0.01, **cfg},
            "streams": {s: {"sync_mode": "incremental" if s == "members" else "full_refresh", "write": "upsert"}
                        for s in streams}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(workdir / "mc.duckdb")}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([MailchimpSource], [installed_destination("duckdb")]))


def landed(workdir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workdir / "mc.duckdb"))
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------- the key and its data centre


def test_the_data_centre_comes_from_the_key_suffix() -> None:
    cfg = MailchimpConfig(api_key="0123456789abcdef0123456789abcdef-us21")
    assert MailchimpSource().api_root(cfg) == "https://us21.api.mailchimp.com/3.0"


def test_a_key_without_a_data_centre_is_a_config_error_naming_api_key() -> None:
    with pytest.raises(ConfigError) as caught:
        MailchimpSource().api_root(MailchimpConfig(api_key="0123456789abcdef"))
    assert caught.value.field == "api_key" and "data-centre suffix" in caught.value.message


def test_a_key_for_another_data_centre_is_refused_as_mailchimp_does(mailchimp: MailchimpSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        MailchimpSource().check(config(mailchimp, api_key=mailchimp.WRONG_DC_KEY))
    error = caught.value
    assert error.field == "api_key"
    assert "another data centre" in error.message and "-us6" in error.message
    assert mailchimp.WRONG_DC_KEY not in error.render()  # the key itself never appears


def test_a_key_revoked_during_a_read_stops_it_with_a_config_error_naming_api_key(mailchimp: MailchimpSandbox) -> None:
    mailchimp.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        read(config(mailchimp), "members")
    assert caught.value.field == "api_key"


# ---------------------------------------------------------------------- an OAuth access token instead of a key


def token_config(box: MailchimpSandbox, **overrides: Any) -> MailchimpConfig:
    return config(box, api_key=None, access_token=box.ACCESS_TOKEN, **overrides)


def test_an_oauth_access_token_reads_every_stream_sent_as_bearer(mailchimp: MailchimpSandbox) -> None:
    rows = read(token_config(mailchimp, list_ids=[NEWSLETTER]), "members")
    assert len(rows) == len(mailchimp.members(NEWSLETTER))
    assert all(r.headers["authorization"] == "Bearer ***" for r in mailchimp.requests)


def test_with_a_token_the_data_centre_comes_from_data_center() -> None:
    cfg = MailchimpConfig(access_token="0a1b2c", data_center="us6")
    assert MailchimpSource().api_root(cfg) == "https://us6.api.mailchimp.com/3.0"


def test_a_token_without_a_data_centre_is_a_config_error_naming_data_center() -> None:
    with pytest.raises(ConfigError) as caught:
        MailchimpSource().api_root(MailchimpConfig(access_token="0a1b2c"))
    assert caught.value.field == "data_center" and "oauth2/metadata" in caught.value.hint


def test_a_refused_token_is_a_config_error_naming_access_token(mailchimp: MailchimpSandbox) -> None:
    mailchimp.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        MailchimpSource().check(token_config(mailchimp))
    assert caught.value.field == "access_token" and mailchimp.ACCESS_TOKEN not in caught.value.render()


@pytest.mark.parametrize("credentials", [{}, {"api_key": "0123-us21", "access_token": "0a1b2c"}])
def test_a_config_takes_exactly_one_of_a_key_and_a_token(credentials: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one of api_key"):
        MailchimpConfig.model_validate(credentials)


# ---------------------------------------------------------------------- consent and identity


def test_member_status_arrives_as_consent_columns(mailchimp: MailchimpSandbox) -> None:
    rows = read(config(mailchimp), "members")
    statuses = {r["status"] for r in rows}
    assert statuses == {m["status"] for m in mailchimp.members()} >= {"subscribed", "unsubscribed", "cleaned"}
    unsubscribed = [r for r in rows if r["status"] == "unsubscribed"]
    assert any(r["unsubscribe_reason"] for r in unsubscribed)
    assert all(r["last_changed"] is not None for r in rows)
    assert all(r["unsubscribe_reason"] is None for r in rows if r["status"] != "unsubscribed")


def test_the_same_person_on_two_audiences_is_two_rows_keyed_by_audience(mailchimp: MailchimpSandbox) -> None:
    rows = read(config(mailchimp), "members")
    keys = [(r["list_id"], r["id"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(mailchimp.members())
    on_both = {r["id"] for r in rows if r["list_id"] == NEWSLETTER} & {r["id"] for r in rows if r["list_id"] == PRODUCT}
    assert on_both, "some people are on the newsletter and on product updates with the same email"
    newsletter = {r["email_address"] for r in rows if r["list_id"] == NEWSLETTER}
    work = [r for r in rows if r["list_id"] == PRODUCT and r["email_address"] not in newsletter]  # their work address
    assert work and all(r["id"] == subscriber_hash(r["email_address"]) for r in work)


def test_an_unsubscribe_between_syncs_lands_in_the_next_incremental_sync(mailchimp: MailchimpSandbox, tmp_path: Path) -> None:
    assert sync(mailchimp, tmp_path, ["members"]).ok
    changed = mailchimp.unsubscribe(3, reason="Too many emails")
    mailchimp.clear_requests()
    assert sync(mailchimp, tmp_path, ["members"]).ok
    sent = {r.query.get("since_last_changed", [None])[0] for r in mailchimp.requests if r.path.endswith("/members")}
    assert None not in sent, "the incremental sync asks for changes only"
    ids = ", ".join(f"'{m['id']}'" for m in changed)
    rows = landed(tmp_path, f"select status, unsubscribe_reason from mc__members where list_id = '{NEWSLETTER}' and id in ({ids})")
    assert rows == [("unsubscribed", "Too many emails")] * 3


def test_the_cursor_is_sent_one_second_early_because_mailchimp_filters_after_it(mailchimp: MailchimpSandbox) -> None:
    from datetime import datetime

    changed = sorted(datetime.fromisoformat(m["last_changed"]) for m in mailchimp.members(NEWSLETTER))
    start = changed[len(changed) // 2]
    rows = read(config(mailchimp, list_ids=[NEWSLETTER]), "members", SyncMode.INCREMENTAL, cursor_start=start)
    assert min(r["last_changed"] for r in rows) == start  # records at the boundary are read again, not lost
    one_second_early = (start - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert mailchimp.requests_to(f"/3.0/lists/{NEWSLETTER}/members")[0].query["since_last_changed"] == [one_second_early]


def test_member_pages_are_asked_for_with_only_the_fields_the_columns_read(mailchimp: MailchimpSandbox) -> None:
    rows = read(config(mailchimp, list_ids=[NEWSLETTER]), "members")
    assert len(rows) == len(mailchimp.members(NEWSLETTER))
    asked = mailchimp.requests_to(f"/3.0/lists/{NEWSLETTER}/members")[0].query["fields"]
    answer = requests.get(f"{mailchimp.base_url}/3.0/lists/{NEWSLETTER}/members", auth=("any", mailchimp.API_KEY),
                          params={"fields": asked[0], "count": 3}, timeout=5).json()
    assert set(answer) == {"members", "total_items"}
    assert all(m["email_address"] and m["merge_fields"] and "_links" not in m and "stats" not in m
               for m in answer["members"])


# ---------------------------------------------------------------------- bad inputs


def test_a_configured_audience_that_was_deleted_fails_check_naming_the_list(mailchimp: MailchimpSandbox) -> None:
    mailchimp.delete_list(VIP)
    with pytest.raises(ConfigError) as caught:
        MailchimpSource().check(config(mailchimp, list_ids=[VIP]))
    assert caught.value.field == "list_ids"
    assert VIP in caught.value.message and "404" in caught.value.message and "deleted" in caught.value.message


def test_an_audience_deleted_during_a_read_stops_it_naming_the_audience_after_the_others_landed(
    mailchimp: MailchimpSandbox,
) -> None:
    cfg = config(mailchimp)
    source = MailchimpSource()
    request = ReadRequest(stream=source.discover(cfg).get("members"), sync_mode=SyncMode.FULL_REFRESH)
    newsletter_rows = 0
    with pytest.raises(FatalError) as caught:
        for message in source.read(cfg, request):
            if isinstance(message, Batch):
                newsletter_rows += message.records.num_rows
                mailchimp.delete_list(PRODUCT)  # gone after the audiences were listed
    assert "'f6a7b8c9d0' (Product updates)" in caught.value.message and "404" in caught.value.message
    assert newsletter_rows == len(mailchimp.members(NEWSLETTER))


def test_a_rate_limit_window_longer_than_the_run_allows_stops_cleanly_with_state_and_a_resume_time(
    mailchimp: MailchimpSandbox, tmp_path: Path,
) -> None:
    assert sync(mailchimp, tmp_path, ["members"]).ok
    saved = StateStore(tmp_path / ".threadline").get("mc", "mc", "members")
    mailchimp.inject("rate_limit", retry_after=3600, after=2, times=0, path="/3.0/lists")
    report = sync(mailchimp, tmp_path, ["members"], max_rate_limit_wait=1)
    stream = report.stream("mc", "members")
    assert stream.outcome == "paused"
    assert "Stopped cleanly" in stream.error and "run the sync again after" in stream.error
    state = StateStore(tmp_path / ".threadline").get("mc", "mc", "members")
    assert state["cursor"] == saved["cursor"], "the cursor of the last finished sync is kept"
    assert "resume_after" in state
    mailchimp.clear_faults()
    end_rate_limit_pause(tmp_path / ".threadline", "mc", "mc", "members")  # as if the window had reset
    assert sync(mailchimp, tmp_path, ["members"]).ok


def test_a_value_of_an_unexpected_type_is_quarantined_not_a_crash(mailchimp: MailchimpSandbox, tmp_path: Path) -> None:
    victim = mailchimp.members(NEWSLETTER)[4]["id"]
    mailchimp.set_member_field(NEWSLETTER, victim, "member_rating", "five stars")
    report = sync(mailchimp, tmp_path, ["members"])
    assert report.ok, report.error
    stream = report.stream("mc", "members")
    assert stream.rows_rejected == 1
    assert stream.rows_written == len(mailchimp.members()) - 1
    assert landed(tmp_path, f"select count(*) from mc__members where id = '{victim}' and list_id = '{NEWSLETTER}'") == [(0,)]


def test_member_activity_carries_the_member_and_audience(mailchimp: MailchimpSandbox) -> None:
    rows = read(config(mailchimp, list_ids=[VIP]), "member_activity")
    expected = [e for e in mailchimp.activity() if e["list_id"] == VIP]
    assert len(rows) == len(expected) > 0
    assert {r["action"] for r in rows} <= {"open", "click", "bounce", "sent"}
    assert all(r["email_id"] and r["list_id"] == VIP for r in rows)


def test_throttling_without_retry_after_that_outlasts_the_retries_also_stops_cleanly(mailchimp: MailchimpSandbox) -> None:
    from threadline.contracts import Checkpoint
    from threadline.contracts import RateLimitStop

    # Mailchimp's 429 (over 10 simultaneous connections) carries no Retry-After.
    mailchimp.inject("rate_limit", retry_after=None, after=2, times=0, path="/3.0/lists")
    cfg = config(mailchimp)
    source = MailchimpSource()
    messages = []
    with pytest.raises(RateLimitStop) as caught:
        for message in source.read(cfg, ReadRequest(source.discover(cfg).get("members"), SyncMode.INCREMENTAL,
                                                    state={"cursor": "2024-01-01T00:00:00"})):
            messages.append(message)
    assert isinstance(messages[-1], Checkpoint)
    assert messages[-1].state["cursor"] == "2024-01-01T00:00:00" and "resume_after" in messages[-1].state
    assert "run the sync again after" in caught.value.render()


def test_a_base_url_without_the_api_root_is_a_config_error_naming_base_url(mailchimp: MailchimpSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        MailchimpSource().check(config(mailchimp, base_url=mailchimp.base_url))  # /3.0 forgotten
    assert caught.value.field == "base_url" and "/3.0" in caught.value.hint


# ---------------------------------------------------------------------- campaign reports


def test_email_activity_is_one_row_per_action_with_its_campaign_and_recipient(mailchimp: MailchimpSandbox) -> None:
    rows = read(config(mailchimp), "email_activity")
    expected = mailchimp.email_activity()
    assert len(rows) == len(expected) > 0
    assert {r["action"] for r in rows} >= {"open", "click"}
    assert sorted((r["campaign_id"], r["email_id"], r["action"], r["timestamp"].isoformat()) for r in rows) == \
        sorted((e["campaign_id"], e["email_id"], e["action"], e["timestamp"]) for e in expected)
    assert all(r["email_address"] and r["list_id"] for r in rows)


def test_recipients_of_a_campaign_sent_to_a_tag_arrive_in_sent_to(mailchimp: MailchimpSandbox) -> None:
    from datetime import datetime, timezone

    tagged = [m for m in mailchimp.members(NEWSLETTER) if m["status"] == "subscribed" and any(t["name"] == "customer" for t in m["tags"])]
    campaign = mailchimp.send_campaign(NEWSLETTER, "customer", "Thank you", datetime(2026, 11, 21, 9, tzinfo=timezone.utc),
                                       open_rate=1.0)
    rows = [r for r in read(config(mailchimp), "sent_to") if r["campaign_id"] == campaign]
    assert tagged and sorted(r["email_id"] for r in rows) == sorted(m["id"] for m in tagged)
    assert all(r["status"] == "sent" and r["open_count"] == 1 for r in rows)
    report = next(r for r in read(config(mailchimp), "campaign_reports") if r["id"] == campaign)
    assert report["emails_sent"] == report["unique_opens"] == len(tagged) and report["open_rate"] == 1.0


def test_a_campaign_deleted_during_a_read_stops_it_naming_the_campaign(mailchimp: MailchimpSandbox) -> None:
    cfg = config(mailchimp)
    source = MailchimpSource()
    request = ReadRequest(stream=source.discover(cfg).get("sent_to"), sync_mode=SyncMode.FULL_REFRESH)
    victim = mailchimp.reports()[-1]
    with pytest.raises(FatalError) as caught:
        for message in source.read(cfg, request):
            if isinstance(message, Batch):
                mailchimp.delete_campaign(victim["id"])
    assert victim["id"] in caught.value.message and "404" in caught.value.message
