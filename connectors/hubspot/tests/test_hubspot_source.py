"""What is special about HubSpot: the search endpoint's 10,000-result cap, archived records,
associations, missing scopes and expired tokens, 429s without Retry-After, and bad values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from threadline.contracts import (
    Batch,
    ConfigError,
    ReadRequest,
    SyncMode,
)
from threadline.engine import run_job
from threadline.job import job_from_dict
from threadline.state import StateStore
from threadline.testing.harness import end_rate_limit_pause, installed_destination, registry_of
from threadline_hubspot import HubspotConfig, HubspotSource
from threadline_hubspot.sandbox import HubspotSandbox
from threadline_hubspot.source import CURRENT_API_VERSION

OBJECTS = f"/crm/objects/{CURRENT_API_VERSION}"  # where the connector reads, by default
SEARCH = f"{OBJECTS}/contacts/search"


@pytest.fixture
def hubspot() -> Iterator[HubspotSandbox]:
    with HubspotSandbox(contacts=300, companies=30, deals=60, rate_limit=10_000) as box:
        yield box  # type: ignore[misc]


def settings(box: HubspotSandbox, **overrides: Any) -> dict[str, Any]:
    return {"base_url": box.base_url, "access_token": box.TOKEN, "page_size": 50, "search_page_size": 50,
            "requests_per_10_seconds": None, "search_requests_per_second": None, "backoff_base": 0.01, "max_retry_time": 5, **overrides}


def config(box: HubspotSandbox, **overrides: Any) -> HubspotConfig:
    return HubspotConfig.model_validate(settings(box, **overrides))


def read(cfg: HubspotConfig, stream: str, mode: SyncMode = SyncMode.FULL_REFRESH, **request: Any) -> list[dict]:
    source = HubspotSource()
    declared = source.discover(cfg).get(stream)
    return [row for m in source.read(cfg, ReadRequest(stream=declared, sync_mode=mode, **request))
            if isinstance(m, Batch) for row in m.records.to_pylist()]


def sync(box: HubspotSandbox, workdir: Path, streams: list[str], mode: str = "incremental", **overrides: Any):
    job = job_from_dict({
        "name": "hs", "state": str(workdir / ".threadline"), "concurrency": 1, "max_rejected_share": 0.2,
        "sources": {"hs": {"connector": "hubspot", "config": settings(box, **overrides),
                           "streams": {s: {"sync_mode": mode, "write": "upsert"} for s in streams}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(workdir / "hs.duckdb")}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([HubspotSource], [installed_destination("duckdb")]))


def landed(workdir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workdir / "hs.duckdb"))
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------- the search cap


def test_the_sandbox_refuses_to_page_a_search_past_10000_results(hubspot: HubspotSandbox) -> None:
    answer = requests.post(f"{hubspot.base_url}{SEARCH}", json={"after": "10000", "limit": 10}, timeout=5,
                           headers={"Authorization": f"Bearer {hubspot.TOKEN}"})
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"


def test_an_incremental_read_of_more_than_10000_changes_splits_the_window_and_loses_none() -> None:
    with HubspotSandbox(contacts=10_400, companies=3, deals=0, archived_share=0, rate_limit=10_000) as box:
        rows = read(config(box, search_page_size=200, all_properties=False), "contacts", SyncMode.INCREMENTAL)
        searches = box.requests_to(SEARCH, "POST")
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 10_400, "every contact exactly once"
    assert all(r.status == 200 for r in searches), "no query was refused for paging past the cap"
    assert all('"after"' not in r.body for r in searches), "each page is its own query, not an offset into one"
    lower_bounds = {r.body.split('"GTE", "value": "')[1].split('"')[0] for r in searches}
    assert len(lower_bounds) == len(searches) > 10_000 // 200, "the window moved forward at every page"


def test_more_changes_at_one_instant_than_a_page_holds_are_read_in_id_order(hubspot: HubspotSandbox) -> None:
    ids = [r["id"] for r in hubspot.records("contacts", archived=False)][:120]
    hubspot.set_modified("contacts", ids, "2024-01-01T00:00:10.000Z")
    rows = read(config(hubspot, search_page_size=50), "contacts", SyncMode.INCREMENTAL)
    got = [r["id"] for r in rows]
    assert len(got) == len(set(got)) == len(hubspot.records("contacts", archived=False)) + len(
        hubspot.records("contacts", archived=True))
    assert any('"hs_object_id"' in r.body and '"EQ"' in r.body for r in hubspot.requests_to(SEARCH, "POST"))


def test_incremental_reads_filter_on_lastmodifieddate_inclusively_and_ascending(hubspot: HubspotSandbox) -> None:
    from datetime import datetime

    modified = sorted(r["updatedAt"] for r in hubspot.records("deals", archived=False))
    start = datetime.fromisoformat(modified[len(modified) // 2].replace("Z", "+00:00"))
    rows = [r for r in read(config(hubspot), "deals", SyncMode.INCREMENTAL, cursor_start=start) if not r["archived"]]
    stamps = [r["updated_at"] for r in rows]
    assert stamps == sorted(stamps) and min(stamps) == start
    first = hubspot.requests_to(f"{OBJECTS}/deals/search", "POST")[0].body
    epoch_ms = int(start.timestamp() * 1000)
    assert f'"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "{epoch_ms}"' in first


# ---------------------------------------------------------------------- archived records, associations


def test_a_full_refresh_includes_archived_records_flagged_as_such(hubspot: HubspotSandbox) -> None:
    rows = read(config(hubspot), "companies")
    archived = {r["id"] for r in rows if r["archived"]}
    assert archived == {r["id"] for r in hubspot.records("companies", archived=True)} != set()
    assert all(r["archived_at"] is not None for r in rows if r["archived"])


def test_a_record_archived_between_two_syncs_is_marked_archived_by_the_incremental_sync(
    hubspot: HubspotSandbox, tmp_path: Path,
) -> None:
    assert sync(hubspot, tmp_path, ["contacts"]).ok
    victim = hubspot.records("contacts", archived=False)[7]["id"]
    hubspot.archive("contacts", [victim])
    hubspot.clear_requests()
    report = sync(hubspot, tmp_path, ["contacts"])
    assert report.ok, report.error
    assert landed(tmp_path, f"select archived from hs__contacts where id = '{victim}'") == [(True,)]
    assert report.stream("hs", "contacts").rows_written < 10, "only the boundary and the archived record, not everything"


def test_a_record_archived_between_two_pages_is_still_delivered_once(hubspot: HubspotSandbox) -> None:
    cfg = config(hubspot, page_size=50)
    source = HubspotSource()
    request = ReadRequest(stream=source.discover(cfg).get("contacts"), sync_mode=SyncMode.FULL_REFRESH)
    victim = hubspot.records("contacts", archived=False)[120]["id"]  # on the third page
    rows: list[dict] = []
    for message in source.read(cfg, request):
        if isinstance(message, Batch):
            if not rows:
                hubspot.archive("contacts", [victim])
            rows += message.records.to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(hubspot.records("contacts"))
    assert next(r for r in rows if r["id"] == victim)["archived"] is True


def test_associations_link_contacts_to_companies_and_deals_and_deals_to_companies(hubspot: HubspotSandbox) -> None:
    rows = read(config(hubspot), "associations")
    kinds = {(r["from_type"], r["to_type"], r["association_type"]) for r in rows}
    assert kinds == {("contacts", "companies", "contact_to_company"), ("contacts", "deals", "contact_to_deal"),
                     ("deals", "companies", "deal_to_company")}
    deals = {r["to_id"] for r in rows if r["to_type"] == "deals"}
    assert deals <= {d["id"] for d in hubspot.records("deals")}
    assert len(rows) == len(hubspot.associations())


def test_custom_properties_are_kept_in_the_properties_column(hubspot: HubspotSandbox) -> None:
    rows = read(config(hubspot), "contacts")
    import json

    tiers = {json.loads(r["properties"]).get("loyalty_tier") for r in rows}
    assert {"gold", "silver"} <= tiers


# ---------------------------------------------------------------------- credentials


def test_a_token_without_the_companies_scope_is_a_config_error_naming_access_token_and_the_scope(
    hubspot: HubspotSandbox,
) -> None:
    with pytest.raises(ConfigError) as caught:
        read(config(hubspot, access_token=hubspot.CONTACTS_ONLY_TOKEN), "companies")
    assert caught.value.field == "access_token" and "crm.objects.companies.read" in caught.value.message
    assert hubspot.CONTACTS_ONLY_TOKEN not in caught.value.render()
    assert read(config(hubspot, access_token=hubspot.CONTACTS_ONLY_TOKEN), "contacts"), "contacts still readable"


def test_an_expired_token_is_a_config_error_naming_access_token(hubspot: HubspotSandbox) -> None:
    hubspot.expire_token()
    with pytest.raises(ConfigError) as caught:
        HubspotSource().check(config(hubspot))
    assert caught.value.field == "access_token" and "expired" in caught.value.render()


# ---------------------------------------------------------------------- rate limits


def test_a_ten_second_limit_without_retry_after_is_waited_out_for_several_windows() -> None:
    with HubspotSandbox(contacts=300, companies=5, deals=5, rate_limit=3, rate_interval=0.2) as box:
        rows = read(config(box, page_size=20, all_properties=False), "contacts")
        statuses = [r.status for r in box.requests_to(f"{OBJECTS}/contacts")]
    assert len({r["id"] for r in rows}) == 300
    assert statuses.count(429) >= 3, "the limit was hit again and again, beyond one back-off"


def test_a_429_has_hubspots_body_and_headers(hubspot: HubspotSandbox) -> None:
    hubspot.rate_limit = 1
    headers = {"Authorization": f"Bearer {hubspot.TOKEN}"}
    requests.get(f"{hubspot.base_url}/crm/v3/objects/deals", headers=headers, timeout=5)
    answer = requests.get(f"{hubspot.base_url}/crm/v3/objects/deals", headers=headers, timeout=5)
    assert answer.status_code == 429 and answer.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "0" and "Retry-After" not in answer.headers


def test_a_limit_longer_than_the_run_waits_stops_the_stream_and_the_next_run_resumes(tmp_path: Path) -> None:
    with HubspotSandbox(contacts=300, companies=5, deals=5, archived_share=0, rate_limit=10_000) as box:
        box.inject("rate_limit", retry_after=None, after=3, times=0, path=SEARCH,
                   headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
        failed = sync(box, tmp_path, ["contacts"], max_retry_time=0.5)
        stream = failed.stream("hs", "contacts")
        # issue 13 item 5: a rate limit longer than the run allows pauses the stream (exit 75), it does not fail it
        assert stream.outcome == "paused" and "429" in stream.error
        assert 0 < stream.rows_written < 300, "the pages read before the limit are committed"
        assert StateStore(tmp_path / ".threadline").get("hs", "hs", "contacts")["cursor"]
        box.clear_faults()
        end_rate_limit_pause(tmp_path / ".threadline", "hs", "hs", "contacts")  # as if the window had reset
        assert sync(box, tmp_path, ["contacts"]).ok
        assert landed(tmp_path, "select count(*) from hs__contacts") == [(300,)]


def test_an_interrupted_full_refresh_resumes_at_the_page_after_its_last_checkpoint(tmp_path: Path) -> None:
    with HubspotSandbox(contacts=300, companies=5, deals=5, archived_share=0.05, rate_limit=10_000) as box:
        box.inject("status", status=503, after=3, times=0, path=f"{OBJECTS}/contacts")
        failed = sync(box, tmp_path, ["contacts"], mode="full_refresh", max_retry_time=0.3)
        assert failed.stream("hs", "contacts").outcome == "failed"
        box.clear_faults()
        box.clear_requests()
        assert sync(box, tmp_path, ["contacts"], mode="full_refresh").ok
        first = box.requests_to(f"{OBJECTS}/contacts")[0]
        assert first.param("after") and first.param("archived") == "false", "resumed where it stopped, not at page one"
        assert landed(tmp_path, "select count(*) from hs__contacts") == [(300,)]


# ---------------------------------------------------------------------- bad values


def test_a_value_of_an_unexpected_type_is_quarantined_not_a_crash(hubspot: HubspotSandbox, tmp_path: Path) -> None:
    victim = hubspot.records("deals", archived=False)[3]["id"]
    hubspot.set_property("deals", victim, "amount", "1.000,50 €")
    report = sync(hubspot, tmp_path, ["deals"])
    assert report.ok, report.error
    stream = report.stream("hs", "deals")
    assert stream.rows_rejected == 1 and stream.rows_written == len(hubspot.records("deals")) - 1
    assert landed(tmp_path, f"select count(*) from hs__deals where id = '{victim}'") == [(0,)]


def test_the_connector_reads_hubspots_current_date_based_version_and_still_the_legacy_v3(hubspot):
    dated = read(config(hubspot), "contacts")
    assert hubspot.requests_to(f"{OBJECTS}/contacts") and hubspot.requests_to(f"/crm/properties/{CURRENT_API_VERSION}/contacts")
    legacy = read(config(hubspot, api_version="v3"), "contacts")
    assert hubspot.requests_to("/crm/v3/objects/contacts")
    assert [r["id"] for r in legacy] == [r["id"] for r in dated]


def test_a_date_version_hubspot_has_not_released_is_not_found(hubspot):
    answer = requests.get(f"{hubspot.base_url}/crm/objects/2025-01/contacts",
                          headers={"Authorization": f"Bearer {hubspot.TOKEN}"}, timeout=5)
    assert answer.status_code == 404
