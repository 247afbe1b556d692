"""What is special about Klaviyo: the revision header, the key header, JSON:API pages and
filters, 429 with Retry-After, consent on profiles, deleted lists, rate-limit windows longer
than the run allows, and values of unexpected types."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
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
from threadline_klaviyo import KlaviyoConfig, KlaviyoSource
from threadline_klaviyo.client import DEFAULT_REVISION
from threadline_klaviyo.sandbox import CURRENT_REVISION, KlaviyoSandbox

NEWSLETTER, WINBACK, SMS_VIP = "Xa1B2c", "Yd3E4f", "Zg5H6i"


@pytest.fixture
def klaviyo() -> Iterator[KlaviyoSandbox]:
    with KlaviyoSandbox(people=60, events_page_size=20) as box:
        yield box  # type: ignore[misc]


def config(box: KlaviyoSandbox, **overrides: Any) -> KlaviyoConfig:
    return KlaviyoConfig.model_validate(
        {"base_url": f"{box.base_url}/api", "api_key": box.API_KEY, "page_size": 20, "backoff_base": 0.01, **overrides})


def read(cfg: KlaviyoConfig, stream: str, mode: SyncMode = SyncMode.FULL_REFRESH, **request: Any) -> list[dict]:
    source = KlaviyoSource()
    declared = source.discover(cfg).get(stream)
    return [row for m in source.read(cfg, ReadRequest(stream=declared, sync_mode=mode, **request))
            if isinstance(m, Batch) for row in m.records.to_pylist()]


def sync(box: KlaviyoSandbox, workdir: Path, streams: list[str], **cfg: Any):
    """One engine run into DuckDB (upserts, incremental where offered), state in workdir."""
    job = job_from_dict({
        "name": "kl", "state": str(workdir / ".threadline"), "concurrency": 1, "max_rejected_share": 0.2,
        "sources": {"kl": {"connector": "klaviyo", "config": {
            "base_url": f"{box.base_url}/api", "api_key": box.API_KEY, "page_size": 20, "backoff_base": 0.01, **cfg},
            "streams": {s: {"sync_mode": "full_refresh" if s == "lists" else "incremental", "write": "upsert"}
                        for s in streams}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(workdir / "kl.duckdb")}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([KlaviyoSource], [installed_destination("duckdb")]))


def landed(workdir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workdir / "kl.duckdb"))
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------- headers


def test_the_sandbox_refuses_a_request_without_a_revision_header(klaviyo: KlaviyoSandbox) -> None:
    answer = requests.get(f"{klaviyo.base_url}/api/profiles", headers={"Authorization": f"Klaviyo-API-Key {klaviyo.API_KEY}"},
                          timeout=5)
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["status"] == 400 and "revision" in error["detail"]


def test_every_request_sends_the_key_and_revision_headers(klaviyo: KlaviyoSandbox) -> None:
    read(config(klaviyo, revision="2026-07-15"), "lists")
    sent = klaviyo.requests[0].headers
    assert sent["authorization"].startswith("Klaviyo-API-Key ") and klaviyo.API_KEY not in sent["authorization"]
    assert sent["revision"] == "2026-07-15" and sent["accept"] == "application/vnd.api+json"


def test_the_default_revision_is_klaviyos_current_one(klaviyo: KlaviyoSandbox) -> None:
    read(config(klaviyo), "lists")
    assert klaviyo.requests[0].headers["revision"] == CURRENT_REVISION == DEFAULT_REVISION


@pytest.mark.parametrize("retired", ["2024-10-15", "2023-12-15"])
def test_a_retired_revision_is_refused_with_klaviyos_error_shape_and_is_a_config_error(
    klaviyo: KlaviyoSandbox, retired: str,
) -> None:
    answer = requests.get(f"{klaviyo.base_url}/api/lists", timeout=5, headers={
        "Authorization": f"Klaviyo-API-Key {klaviyo.API_KEY}", "revision": retired})
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert set(error) >= {"id", "status", "code", "title", "detail", "source"} and error["source"] == {"parameter": "revision"}
    assert "retired" in error["detail"]
    with pytest.raises(ConfigError) as caught:
        read(config(klaviyo, revision=retired), "lists")
    assert caught.value.field == "revision" and DEFAULT_REVISION in caught.value.hint


@pytest.mark.parametrize("current", ["2025-01-15", "2026-01-15", "2026-04-15", "2026-10-15"])
def test_current_and_deprecated_revisions_are_served(klaviyo: KlaviyoSandbox, current: str) -> None:
    assert read(config(klaviyo, revision=current), "lists")


def test_an_unknown_revision_is_a_config_error_naming_revision(klaviyo: KlaviyoSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        read(config(klaviyo, revision="2020-01-01"), "profiles")
    assert caught.value.field == "revision"


def test_a_revoked_key_stops_a_read_with_a_config_error_naming_api_key(klaviyo: KlaviyoSandbox) -> None:
    klaviyo.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        read(config(klaviyo), "events")
    assert caught.value.field == "api_key" and klaviyo.API_KEY not in caught.value.render()


# ---------------------------------------------------------------------- pages, filters, rate limits


def test_pages_follow_links_next_to_the_end(klaviyo: KlaviyoSandbox) -> None:
    rows = read(config(klaviyo), "profiles")
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in klaviyo.profiles())
    pages = klaviyo.requests_to("/api/profiles")
    assert len(pages) == -(-len(rows) // 20)
    assert all("page[cursor]" in r.query for r in pages[1:])


def test_incremental_profiles_filter_with_greater_than_a_second_early_so_the_boundary_is_read(
    klaviyo: KlaviyoSandbox,
) -> None:
    updated = sorted(p["attributes"]["updated"] for p in klaviyo.profiles())
    start = datetime.fromisoformat(updated[len(updated) // 2])
    rows = read(config(klaviyo), "profiles", SyncMode.INCREMENTAL, cursor_start=start)
    assert min(r["updated"] for r in rows) == start
    early = (start - timedelta(seconds=1)).isoformat()
    assert klaviyo.requests_to("/api/profiles")[0].query["filter"] == [f"greater-than(updated,{early})"]


def test_the_sandbox_refuses_greater_or_equal_on_profiles_updated_as_klaviyos_openapi_does(klaviyo: KlaviyoSandbox) -> None:
    answer = requests.get(f"{klaviyo.base_url}/api/profiles", timeout=5,
                          params={"filter": "greater-or-equal(updated,2026-01-01T00:00:00+00:00)"},
                          headers={"Authorization": f"Klaviyo-API-Key {klaviyo.API_KEY}", "revision": DEFAULT_REVISION})
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert "greater-or-equal" in error["detail"] and "updated" in error["detail"]
    assert error["source"] == {"parameter": "filter"}


@pytest.mark.parametrize(("path", "parameter", "value"), [
    ("/api/profiles", "fields[profile]", "email,joined_group_at"),  # only list members have joined_group_at
    ("/api/lists/Xa1B2c/profiles", "fields[profile]", "email,emial"),
    ("/api/profiles", "additional-fields[profile]", "subscription"),
])
def test_the_sandbox_refuses_fields_a_profile_does_not_have(klaviyo: KlaviyoSandbox, path: str, parameter: str,
                                                            value: str) -> None:
    answer = requests.get(f"{klaviyo.base_url}{path}", params={parameter: value}, timeout=5,
                          headers={"Authorization": f"Klaviyo-API-Key {klaviyo.API_KEY}", "revision": DEFAULT_REVISION})
    assert answer.status_code == 400 and answer.json()["errors"][0]["source"] == {"parameter": parameter}


def test_profiles_are_found_by_equals_on_email_in_any_case(klaviyo: KlaviyoSandbox) -> None:
    wanted = next(p for p in klaviyo.profiles() if p["attributes"]["email"])
    answer = requests.get(f"{klaviyo.base_url}/api/profiles", timeout=5,
                          params={"filter": f'equals(email,"{wanted["attributes"]["email"].upper()}")'},
                          headers={"Authorization": f"Klaviyo-API-Key {klaviyo.API_KEY}", "revision": DEFAULT_REVISION})
    assert answer.status_code == 200
    assert [p["id"] for p in answer.json()["data"]] == [wanted["id"]]


def test_events_carry_their_metric_name_from_the_included_metrics(klaviyo: KlaviyoSandbox) -> None:
    rows = read(config(klaviyo), "events")
    names = {r["metric_name"] for r in rows}
    assert names == {klaviyo.metric_name(e["relationships"]["metric"]["data"]["id"]) for e in klaviyo.events()}
    assert names >= {"Opened Email", "Started Checkout", "Placed Order"}
    orders = [r for r in rows if r["metric_name"] == "Placed Order"]
    assert orders and all(isinstance(r["value"], float) for r in orders)


def test_a_429_is_waited_out_as_retry_after_says(klaviyo: KlaviyoSandbox) -> None:
    klaviyo.inject("rate_limit", retry_after=0.2, times=2, after=1, path="/api/events")
    rows = read(config(klaviyo), "events")
    assert len(rows) == len(klaviyo.events())
    assert [r.status for r in klaviyo.requests_to("/api/events")].count(429) == 2


def test_a_rate_limit_window_longer_than_the_run_allows_stops_cleanly_with_state_and_a_resume_time(
    klaviyo: KlaviyoSandbox, tmp_path: Path,
) -> None:
    klaviyo.inject("rate_limit", retry_after=3600, after=2, times=0, path="/api/profiles")
    report = sync(klaviyo, tmp_path, ["profiles"], max_rate_limit_wait=1)
    stream = report.stream("kl", "profiles")
    assert stream.outcome == "paused" and "Stopped cleanly" in stream.error and "run the sync again after" in stream.error
    assert stream.rows_written == 40  # the two pages read before the limit are committed
    state = StateStore(tmp_path / ".threadline").get("kl", "kl", "profiles")
    assert "resume_after" in state and state["cursor"], "the cursor of the pages read is saved"
    klaviyo.clear_faults()
    klaviyo.clear_requests()
    end_rate_limit_pause(tmp_path / ".threadline", "kl", "kl", "profiles")  # as if the window had reset
    assert sync(klaviyo, tmp_path, ["profiles"]).ok
    assert klaviyo.requests_to("/api/profiles")[0].query["filter"][0].startswith("greater-than(updated,")
    assert landed(tmp_path, "select count(*) from kl__profiles") == [(len(klaviyo.profiles()),)]


# ---------------------------------------------------------------------- consent and identity


def test_profiles_carry_email_and_sms_consent(klaviyo: KlaviyoSandbox) -> None:
    rows = read(config(klaviyo), "profiles")
    consents = {r["email_consent"] for r in rows}
    assert consents == {p["attributes"]["subscriptions"]["email"]["marketing"]["consent"] for p in klaviyo.profiles()}
    assert consents >= {"SUBSCRIBED", "NEVER_SUBSCRIBED"}
    assert any(r["email"] is None and r["phone_number"] and r["sms_consent"] == "SUBSCRIBED" for r in rows)


def test_an_unsubscribe_between_syncs_lands_in_the_next_sync(klaviyo: KlaviyoSandbox, tmp_path: Path) -> None:
    assert sync(klaviyo, tmp_path, ["profiles"]).ok
    changed = klaviyo.unsubscribe(2)
    assert sync(klaviyo, tmp_path, ["profiles"]).ok
    ids = ", ".join(f"'{p['id']}'" for p in changed)
    assert landed(tmp_path, f"select distinct email_consent from kl__profiles where id in ({ids})") == [("UNSUBSCRIBED",)]


def test_one_person_with_two_emails_is_two_profiles_on_two_lists_sharing_an_external_id(klaviyo: KlaviyoSandbox) -> None:
    rows = read(config(klaviyo), "list_memberships")
    home = {r["external_id"]: r for r in rows if r["list_id"] == NEWSLETTER and r["external_id"]}
    work = [r for r in rows if r["list_id"] == WINBACK and r["email"] and r["email"] not in {h["email"] for h in home.values()}]
    pairs = [(w, home[w["external_id"]]) for w in work if w["external_id"] in home]
    assert pairs and all(w["profile_id"] != h["profile_id"] and w["email"] != h["email"] for w, h in pairs)


# ---------------------------------------------------------------------- bad inputs


def test_a_list_deleted_during_a_read_stops_it_naming_the_list(klaviyo: KlaviyoSandbox) -> None:
    cfg = config(klaviyo)
    source = KlaviyoSource()
    request = ReadRequest(stream=source.discover(cfg).get("list_memberships"), sync_mode=SyncMode.FULL_REFRESH)
    with pytest.raises(FatalError) as caught:
        for message in source.read(cfg, request):
            if isinstance(message, Batch):
                klaviyo.delete_list(SMS_VIP)
    assert f"'{SMS_VIP}' (SMS VIP)" in caught.value.message and "404" in caught.value.message


def test_a_value_of_an_unexpected_type_is_quarantined_not_a_crash(klaviyo: KlaviyoSandbox, tmp_path: Path) -> None:
    victim = klaviyo.profiles()[3]["id"]
    klaviyo.set_attribute(victim, "created", "last tuesday")
    report = sync(klaviyo, tmp_path, ["profiles"])
    assert report.ok, report.error
    stream = report.stream("kl", "profiles")
    assert stream.rows_rejected == 1 and stream.rows_written == len(klaviyo.profiles()) - 1
    assert landed(tmp_path, f"select count(*) from kl__profiles where id = '{victim}'") == [(0,)]


def test_a_base_url_without_the_api_root_is_a_config_error_naming_base_url(klaviyo: KlaviyoSandbox) -> None:
    with pytest.raises(ConfigError) as caught:
        KlaviyoSource().check(config(klaviyo, base_url=klaviyo.base_url))  # /api forgotten
    assert caught.value.field == "base_url" and "/api" in caught.value.hint
