"""What is special about Zendesk: export cursors and end_of_stream, deleted users and tickets,
per-minute rate limits with Retry-After, admin-only exports, OAuth, and bad values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from threadline.contracts import Batch, ConfigError, ReadRequest, SyncMode
from threadline.engine import run_job
from threadline.job import job_from_dict
from threadline.state import StateStore
from threadline.testing.harness import end_rate_limit_pause, installed_destination, registry_of
from threadline_zendesk import ZendeskConfig, ZendeskSource
from threadline_zendesk.sandbox import ZendeskSandbox

USERS = "/api/v2/incremental/users/cursor.json"
TICKETS = "/api/v2/incremental/tickets/cursor.json"


@pytest.fixture
def zendesk() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox(users=250, tickets=200, ratings=60, export_rate_limit=10_000, rate_limit=10_000) as box:
        yield box  # type: ignore[misc]


def settings(box: ZendeskSandbox, **overrides: Any) -> dict[str, Any]:
    return {"base_url": box.base_url, "email": box.EMAIL, "api_token": box.API_TOKEN, "per_page": 50,
            "ratings_page_size": 20, "requests_per_minute": None, "backoff_base": 0.01, "max_retry_time": 5, **overrides}


def config(box: ZendeskSandbox, **overrides: Any) -> ZendeskConfig:
    return ZendeskConfig.model_validate(settings(box, **overrides))


def read(cfg: ZendeskConfig, stream: str, mode: SyncMode = SyncMode.FULL_REFRESH, **request: Any) -> list[dict]:
    source = ZendeskSource()
    declared = source.discover(cfg).get(stream)
    return [row for m in source.read(cfg, ReadRequest(stream=declared, sync_mode=mode, **request))
            if isinstance(m, Batch) for row in m.records.to_pylist()]


def sync(box: ZendeskSandbox, workdir: Path, streams: list[str], mode: str = "incremental", **overrides: Any):
    job = job_from_dict({
        "name": "zd", "state": str(workdir / ".threadline"), "concurrency": 1, "max_rejected_share": 0.2,
        "sources": {"zd": {"connector": "zendesk", "config": settings(box, **overrides),
                           "streams": {s: {"sync_mode": mode, "write": "upsert"} for s in streams}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(workdir / "zd.duckdb")}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([ZendeskSource], [installed_destination("duckdb")]))


def landed(workdir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workdir / "zd.duckdb"))
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------- cursors and end_of_stream


def test_the_export_starts_at_start_time_then_follows_after_cursor_until_end_of_stream(zendesk: ZendeskSandbox) -> None:
    rows = read(config(zendesk), "users")
    assert sorted(r["id"] for r in rows) == [u["id"] for u in zendesk.users]
    sent = zendesk.requests_to(USERS)
    assert len(sent) == -(-len(rows) // 50)
    assert sent[0].param("start_time") == "946684800" and sent[0].param("cursor") is None
    assert all(r.param("cursor") and r.param("start_time") is None for r in sent[1:])


def test_the_next_sync_resumes_from_the_stored_cursor_and_reads_only_the_changes(
    zendesk: ZendeskSandbox, tmp_path: Path,
) -> None:
    assert sync(zendesk, tmp_path, ["tickets"]).ok
    state = StateStore(tmp_path / ".threadline").get("zd", "zd", "tickets")
    assert state["after_cursor"] and state["cursor"]
    changed = zendesk.update_tickets([3, 7])
    zendesk.clear_requests()
    report = sync(zendesk, tmp_path, ["tickets"])
    assert report.ok and report.stream("zd", "tickets").rows_written == len(changed) == 2
    sent = zendesk.requests_to(TICKETS)
    assert len(sent) == 1 and sent[0].param("cursor") == state["after_cursor"]
    assert landed(tmp_path, "select distinct priority from zd__tickets where id in (3, 7)") == [("urgent",)]


def test_a_sync_with_nothing_new_makes_one_request_and_writes_nothing(zendesk: ZendeskSandbox, tmp_path: Path) -> None:
    assert sync(zendesk, tmp_path, ["users"]).ok
    zendesk.clear_requests()
    report = sync(zendesk, tmp_path, ["users"])
    assert report.ok and report.stream("zd", "users").rows_written == 0
    assert len(zendesk.requests_to(USERS)) == 1


# ---------------------------------------------------------------------- deletions


def test_a_deleted_user_lands_as_inactive_in_the_next_sync(zendesk: ZendeskSandbox, tmp_path: Path) -> None:
    assert sync(zendesk, tmp_path, ["users"]).ok
    victim = zendesk.users[20]["id"]
    zendesk.delete_users([victim])
    assert sync(zendesk, tmp_path, ["users"]).ok
    assert landed(tmp_path, f"select active from zd__users where id = {victim}") == [(False,)]


def test_a_user_deleted_between_two_pages_is_delivered_with_active_false_and_nobody_is_lost(
    zendesk: ZendeskSandbox,
) -> None:
    cfg = config(zendesk)
    source = ZendeskSource()
    request = ReadRequest(stream=source.discover(cfg).get("users"), sync_mode=SyncMode.FULL_REFRESH)
    victims = [zendesk.users[10]["id"], zendesk.users[200]["id"]]  # one already read, one on a later page
    final: dict[int, dict] = {}
    for message in source.read(cfg, request):
        if isinstance(message, Batch):
            if not final:
                zendesk.delete_users(victims)
            final.update({r["id"]: r for r in message.records.to_pylist()})
    assert set(final) == {u["id"] for u in zendesk.users}
    assert all(final[v]["active"] is False for v in victims)


def test_deleted_tickets_are_kept_with_their_status_unless_excluded(zendesk: ZendeskSandbox) -> None:
    zendesk.delete_tickets([5])
    assert [r["status"] for r in read(config(zendesk), "tickets") if r["id"] == 5] == ["deleted"]
    assert not [r for r in read(config(zendesk, exclude_deleted=True), "tickets") if r["id"] == 5]


def test_people_with_two_accounts_share_a_phone_under_different_emails(zendesk: ZendeskSandbox) -> None:
    rows = read(config(zendesk), "users")
    by_phone: dict[str, set[str]] = {}
    for r in rows:
        if r["phone"] and r["email"]:
            by_phone.setdefault(r["phone"], set()).add(r["email"])
    assert any(len(emails) >= 2 for emails in by_phone.values())  # one phone, a home and a work account


def test_user_identities_carry_every_email_and_phone_of_a_user(zendesk: ZendeskSandbox) -> None:
    rows = read(config(zendesk, per_page=150), "user_identities")
    assert sorted(r["id"] for r in rows) == sorted(i["id"] for i in zendesk.identities)
    emails: dict[int, list[dict]] = {}
    for r in rows:
        if r["type"] == "email":
            emails.setdefault(r["user_id"], []).append(r)
    several = {user: found for user, found in emails.items() if len(found) >= 2}
    assert several and all(sum(i["primary"] for i in found) == 1 for found in several.values())
    lookups = zendesk.requests_to("/api/v2/users/show_many.json")
    assert lookups and all(len(r.param("ids").split(",")) <= 100 and r.param("include") == "identities"
                           for r in lookups)


# ---------------------------------------------------------------------- rate limits


def test_a_per_minute_limit_is_waited_out_as_retry_after_says_several_times() -> None:
    with ZendeskSandbox(users=300, tickets=10, ratings=0, export_rate_limit=2, rate_window=0.3) as box:
        rows = read(config(box, per_page=30), "users")
        statuses = [r.status for r in box.requests_to(USERS)]
    assert len({r["id"] for r in rows}) == 300
    assert statuses.count(429) >= 3, "the limit outlasted one back-off, more than once"


def test_a_limit_longer_than_the_run_waits_stops_the_stream_and_the_next_run_resumes_from_the_cursor(
    zendesk: ZendeskSandbox, tmp_path: Path,
) -> None:
    zendesk.inject("rate_limit", retry_after=60, after=2, times=0, path=TICKETS)
    failed = sync(zendesk, tmp_path, ["tickets"], max_retry_time=0.5)
    stream = failed.stream("zd", "tickets")
    # issue 13 item 5: a rate limit longer than the run allows pauses the stream (exit 75), it does not fail it
    assert stream.outcome == "paused" and "429" in stream.error and "60s" in stream.error
    assert stream.rows_written == 100, "the two pages read before the limit are committed"
    saved = StateStore(tmp_path / ".threadline").get("zd", "zd", "tickets")["after_cursor"]
    zendesk.clear_faults()
    zendesk.clear_requests()
    end_rate_limit_pause(tmp_path / ".threadline", "zd", "zd", "tickets")  # as if the window had reset
    assert sync(zendesk, tmp_path, ["tickets"]).ok
    assert zendesk.requests_to(TICKETS)[0].param("cursor") == saved
    assert landed(tmp_path, "select count(*) from zd__tickets") == [(len(zendesk.tickets),)]


def test_an_interrupted_full_refresh_resumes_from_its_last_after_cursor(zendesk: ZendeskSandbox, tmp_path: Path) -> None:
    zendesk.inject("status", status=503, after=2, times=0, path=USERS)
    failed = sync(zendesk, tmp_path, ["users"], mode="full_refresh", max_retry_time=0.3)
    assert failed.stream("zd", "users").outcome == "failed"
    zendesk.clear_faults()
    zendesk.clear_requests()
    assert sync(zendesk, tmp_path, ["users"], mode="full_refresh").ok
    assert zendesk.requests_to(USERS)[0].param("cursor"), "resumed from the cursor, not from start_time"
    assert landed(tmp_path, "select count(*) from zd__users") == [(len(zendesk.users),)]


# ---------------------------------------------------------------------- credentials


def test_an_agent_who_is_not_an_admin_gets_a_config_error_naming_api_token(zendesk: ZendeskSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        ZendeskSource().check(config(zendesk, email=zendesk.AGENT_EMAIL))
    assert caught.value.field == "api_token" and "admin" in caught.value.render()
    assert zendesk.API_TOKEN not in caught.value.render()


def test_a_revoked_token_stops_a_read_with_a_config_error_naming_api_token(zendesk: ZendeskSandbox) -> None:
    zendesk.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        read(config(zendesk), "tickets")
    assert caught.value.field == "api_token" and "Couldn't authenticate you" in caught.value.message


def test_oauth_reads_with_a_bearer_token_and_a_missing_scope_names_oauth_token(zendesk: ZendeskSandbox) -> None:
    oauth = settings(zendesk, email=None, api_token=None, oauth_token=zendesk.OAUTH_TOKEN)
    assert len(read(ZendeskConfig.model_validate(oauth), "satisfaction_ratings")) == len(zendesk.ratings)
    assert zendesk.requests[-1].headers["authorization"] == "Bearer ***"
    limited = ZendeskConfig.model_validate({**oauth, "oauth_token": zendesk.OAUTH_TICKETS_ONLY})
    assert read(limited, "tickets")
    with pytest.raises(ConfigError) as caught:
        read(limited, "users")
    assert caught.value.field == "oauth_token" and "read" in caught.value.hint


def test_config_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="api_token"):
        ZendeskConfig.model_validate({"base_url": "http://127.0.0.1:9", "email": "a@b.example"})


# ---------------------------------------------------------------------- bad values


def test_values_of_unexpected_types_are_quarantined_not_a_crash(zendesk: ZendeskSandbox, tmp_path: Path) -> None:
    odd, not_a_list = zendesk.users[3]["id"], zendesk.users[4]["id"]
    zendesk.set_field("users", odd, "verified", "maybe")
    zendesk.set_field("users", not_a_list, "tags", "vip")
    report = sync(zendesk, tmp_path, ["users"])
    assert report.ok, report.error
    stream = report.stream("zd", "users")
    assert stream.rows_rejected == 2 and stream.rows_written == len(zendesk.users) - 2
    assert landed(tmp_path, f"select count(*) from zd__users where id in ({odd}, {not_a_list})") == [(0,)]


def test_unknown_fields_are_kept_in_extra(zendesk: ZendeskSandbox) -> None:
    import json

    zendesk.set_field("tickets", 2, "sla_policy", {"title": "Gold"})
    row = next(r for r in read(config(zendesk), "tickets") if r["id"] == 2)
    assert json.loads(row["extra"]) == {"sla_policy": {"title": "Gold"}}
