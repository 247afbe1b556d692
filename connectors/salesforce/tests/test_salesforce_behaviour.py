"""What is particular to Salesforce: describe-driven schemas with custom fields, the OAuth2
refresh-token flow, queryAll deletions, nextRecordsUrl paging, API limits and bad records."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from threadline.contracts import (
    Batch,
    ConfigError,
    FatalError,
    ReadRequest,
    SyncMode,
    TransientError,
)
from threadline.engine.runner import run_job
from threadline.job import job_from_dict
from threadline.sandbox.faults import Fault
from threadline.testing import records as rec
from threadline.testing.harness import duckdb_path, installed_destination, registry_of
from threadline_salesforce import SalesforceConfig, SalesforceSource
from threadline_salesforce.sandbox import API_VERSION, SalesforceSandbox
from threadline_salesforce.source import RequestLimitExceeded

QUERY = f"/services/data/{API_VERSION}/queryAll"
TOKEN = "/services/oauth2/token"


@pytest.fixture
def sandbox():
    with SalesforceSandbox(contacts=25) as box:
        yield box


def config(sandbox: SalesforceSandbox, **overrides: Any) -> SalesforceConfig:
    return SalesforceConfig.model_validate({
        "login_url": sandbox.base_url, "client_id": sandbox.CLIENT_ID, "client_secret": sandbox.CLIENT_SECRET,
        "refresh_token": sandbox.REFRESH_TOKEN, "batch_size": 6, "backoff_base": 0.01, "objects": ["Contact"],
        **overrides})


def stream_of(source: SalesforceSource, cfg: SalesforceConfig, name: str = "Contact"):
    return source.discover(cfg).get(name)


def read_rows(cfg: SalesforceConfig, name: str = "Contact", **request: Any) -> list[dict[str, Any]]:
    source = SalesforceSource()
    stream = stream_of(source, cfg, name)
    messages = source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH, **request))
    return rec.from_batches([m.records for m in messages if isinstance(m, Batch)], stream)


def sync_tolerant(cfg: dict[str, Any], workdir: Path, stream_names: list[str]) -> Any:
    """A sync through the real engine into DuckDB that tolerates quarantined rows (the suite's
    harness allows none)."""
    job = job_from_dict({
        "name": "t", "state": str(workdir / ".threadline"), "concurrency": 1, "max_rejected_share": 0.5,
        "sources": {"src": {"connector": "salesforce", "config": cfg,
                            "streams": {n: {"sync_mode": "incremental", "write": "upsert"} for n in stream_names}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(duckdb_path(workdir))}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([SalesforceSource], [installed_destination("duckdb")]))


# ---------------------------------------------------------------------- describe → schema


def test_salesforce_schema_comes_from_describe_with_types_mapped_to_arrow(sandbox):
    schema = stream_of(SalesforceSource(), config(sandbox)).schema
    assert schema.field("SystemModstamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("Birthdate").type == pa.date32()
    assert schema.field("Lifetime_Value__c").type == pa.decimal128(18, 2)  # currency: money as decimal
    assert schema.field("Loyalty_Points__c").type == pa.float64()
    assert schema.field("HasOptedOutOfEmail").type == pa.bool_()
    for name in ("Id", "AccountId", "Email", "Phone", "Loyalty_Tier__c", "Secondary_Email__c"):
        assert schema.field(name).type == pa.string(), name
    assert "MailingAddress" not in schema.names  # compound: its parts are fields of their own
    assert "MailingCity" in schema.names


def test_salesforce_custom_field_added_by_an_admin_is_discovered_and_read(sandbox):
    sandbox.add_custom_field("Contact", "Favourite_Roast__c", "picklist", "Dark")
    sandbox.add_custom_field("Contact", "Visits__c", "int", 7)
    cfg = config(sandbox)
    schema = stream_of(SalesforceSource(), cfg).schema
    assert schema.field("Favourite_Roast__c").type == pa.string()
    assert schema.field("Visits__c").type == pa.int64()
    rows = read_rows(cfg)
    assert rows and {r["Favourite_Roast__c"] for r in rows} == {"Dark"} and {r["Visits__c"] for r in rows} == {7}
    soql = sandbox.requests_to(QUERY)[0].query["q"][0]
    assert "Favourite_Roast__c" in soql and "Visits__c" in soql


def test_salesforce_field_deleted_since_discovery_stops_the_read_saying_to_discover_again(sandbox):
    cfg = config(sandbox)
    source = SalesforceSource()
    stream = stream_of(source, cfg)
    sandbox.remove_field("Contact", "Loyalty_Tier__c")
    with pytest.raises(FatalError) as caught:
        list(source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH)))
    assert "Loyalty_Tier__c" in caught.value.message and "discover" in caught.value.hint
    assert "Loyalty_Tier__c" not in stream_of(source, cfg).schema.names


def test_salesforce_unknown_object_is_a_config_error_naming_objects(sandbox):
    with pytest.raises(ConfigError) as caught:
        SalesforceSource().check(config(sandbox, objects=["Contact", "Invoice__c"]))
    assert caught.value.field == "objects" and "Invoice__c" in caught.value.message


# ---------------------------------------------------------------------- OAuth2


def test_salesforce_expired_session_is_refreshed_once_and_the_read_goes_on(sandbox):
    cfg = config(sandbox)
    source = SalesforceSource()
    stream = stream_of(source, cfg)
    sandbox.clear_requests()
    messages = source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH))
    batches = [next(m for m in messages if isinstance(m, Batch)).records]
    sandbox.expire_sessions()  # the session times out between two pages
    batches += [m.records for m in messages if isinstance(m, Batch)]
    assert len(sandbox.requests_to(TOKEN, "POST")) == 1  # the session of discovery went on; exactly one refresh
    assert [r.status for r in sandbox.requests if r.path.startswith(f"/services/data/{API_VERSION}/query")].count(401) == 1
    rows = rec.from_batches(batches, stream)
    rec.assert_same_records(rows, rec.typed(sandbox.records("Contact"), stream, "contacts"), stream, "a read across a refresh")


def test_salesforce_401_again_after_refresh_is_a_config_error_naming_refresh_token(sandbox):
    cfg = config(sandbox)
    source = SalesforceSource()
    stream = stream_of(source, cfg)
    sandbox.clear_requests()
    sandbox.inject(Fault(kind="expired_token", times=0, path=QUERY))
    with pytest.raises(ConfigError) as caught:
        list(source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH)))
    assert caught.value.field == "refresh_token"
    assert len(sandbox.requests_to(TOKEN, "POST")) == 1  # one refresh, no loop
    assert len(sandbox.requests_to(QUERY)) == 2


def test_salesforce_expired_refresh_token_is_a_config_error_naming_refresh_token(sandbox):
    with pytest.raises(ConfigError) as caught:
        SalesforceSource().check(config(sandbox, refresh_token="5Aep861expired"))
    assert caught.value.field == "refresh_token" and "invalid_grant" in caught.value.message


def test_salesforce_wrong_client_secret_is_a_config_error_naming_client_secret(sandbox):
    with pytest.raises(ConfigError) as caught:
        SalesforceSource().check(config(sandbox, client_secret="not-it"))
    assert caught.value.field == "client_secret"


def test_salesforce_streams_of_one_run_share_one_session(sandbox):
    cfg = config(sandbox, objects=["Contact", "Lead", "Case"])
    source = SalesforceSource()
    for stream in source.discover(cfg):
        list(source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH)))
    assert len(sandbox.requests_to(TOKEN, "POST")) == 1


def test_salesforce_api_host_comes_from_the_token_response_when_instance_url_is_unset(sandbox):
    cfg = config(sandbox)
    assert cfg.instance_url is None
    assert read_rows(cfg)  # the token response's instance_url is the sandbox


def test_salesforce_token_without_the_api_scope_is_a_config_error_naming_refresh_token(sandbox):
    sandbox.drop_api_scope()
    with pytest.raises(ConfigError) as caught:
        SalesforceSource().check(config(sandbox))
    assert caught.value.field == "refresh_token" and "`api` OAuth scope" in caught.value.hint
    assert len(sandbox.requests_to(TOKEN, "POST")) == 2  # the first token and one refresh, then it stops


def test_salesforce_user_without_api_access_is_a_config_error_naming_refresh_token(sandbox):
    sandbox.disable_api()
    with pytest.raises(ConfigError) as caught:
        SalesforceSource().check(config(sandbox))
    assert caught.value.field == "refresh_token" and "API_DISABLED_FOR_ORG" in caught.value.message


def test_salesforce_object_the_user_may_not_read_is_a_config_error_naming_objects(sandbox):
    sandbox.restrict("Case")
    with pytest.raises(ConfigError) as caught:
        SalesforceSource().check(config(sandbox, objects=["Contact", "Case"]))
    assert caught.value.field == "objects" and "Case" in caught.value.message


# ---------------------------------------------------------------------- queries and pages


def test_salesforce_full_read_follows_next_records_url_until_done(sandbox):
    cfg = config(sandbox)
    rows = read_rows(cfg)
    assert len(rows) == len(sandbox.records("Contact"))
    pages = [r for r in sandbox.requests if r.path.startswith(f"/services/data/{API_VERSION}/query/")]
    assert len(pages) == -(-len(rows) // 6) - 1  # every page after the first, by its locator
    first = sandbox.requests_to(QUERY)[0]
    assert first.headers.get("sforce-query-options") == "batchSize=6"
    assert first.query["q"][0].endswith("FROM Contact ORDER BY SystemModstamp ASC, Id ASC")


def test_salesforce_incremental_read_filters_on_system_modstamp_inclusively(sandbox):
    cfg = config(sandbox)
    contacts = sandbox.records("Contact")
    start = datetime.fromisoformat(contacts[10]["SystemModstamp"].replace("+0000", "+00:00"))
    source = SalesforceSource()
    stream = stream_of(source, cfg)
    messages = source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.INCREMENTAL, cursor_start=start))
    rows = rec.from_batches([m.records for m in messages if isinstance(m, Batch)], stream)
    assert f"WHERE SystemModstamp >= {start:%Y-%m-%dT%H:%M:%S}" in sandbox.requests_to(QUERY)[-1].query["q"][0]
    assert {r["Id"] for r in rows} == {c["Id"] for c in contacts
                                       if datetime.fromisoformat(c["SystemModstamp"].replace("+0000", "+00:00")) >= start}
    assert all(r["SystemModstamp"] >= start for r in rows)


def test_salesforce_deleted_records_come_from_query_all_with_is_deleted(sandbox):
    contact = sandbox.records("Contact", include_deleted=False)[0]
    sandbox.delete("Contact", [contact["Id"]])
    rows = {r["Id"]: r for r in read_rows(config(sandbox))}
    assert rows[contact["Id"]]["IsDeleted"] is True
    live = {r["Id"] for r in read_rows(config(sandbox, include_deleted=False))}
    assert contact["Id"] not in live
    assert sandbox.requests_to(f"/services/data/{API_VERSION}/query")  # include_deleted=False reads /query


def test_salesforce_record_deleted_between_two_pages_loses_nothing(sandbox, tmp_path):
    cfg = config(sandbox)
    source = SalesforceSource()
    stream = stream_of(source, cfg)
    before = sandbox.records("Contact")
    messages = source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH))
    batches = [next(m for m in messages if isinstance(m, Batch)).records]
    victim = before[-1]["Id"]  # on the last page, not read yet
    sandbox.delete("Contact", [victim])
    batches += [m.records for m in messages if isinstance(m, Batch)]
    got = {r["Id"] for r in rec.from_batches(batches, stream)}
    assert got == {r["Id"] for r in before}  # the query's snapshot: every record, the victim included
    # The deletion moved SystemModstamp: the next incremental read brings it, marked deleted.
    latest = max(r["SystemModstamp"] for r in rec.from_batches(batches, stream))
    again = list(source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.INCREMENTAL, cursor_start=latest)))
    rows = {r["Id"]: r for r in rec.from_batches([m.records for m in again if isinstance(m, Batch)], stream)}
    assert rows[victim]["IsDeleted"] is True


# ---------------------------------------------------------------------- limits and bad records


def test_salesforce_request_limit_exceeded_stops_cleanly_and_a_later_run_resumes(sandbox, tmp_path):
    raw = config(sandbox).model_dump()
    sandbox.limit_requests(4)  # the org's 24-hour allowance runs out mid-stream
    first = sync_tolerant(raw, tmp_path, ["Contact"])
    assert not first.ok and "REQUEST_LIMIT_EXCEEDED" in (first.error or "")
    statuses = [r.status for r in sandbox.requests]
    assert statuses.count(403) == 1  # not retried: it would not pass within a back-off
    sandbox.limit_requests(None)  # the next day
    second = sync_tolerant(raw, tmp_path, ["Contact"])
    assert second.ok, second.error
    stream = stream_of(SalesforceSource(), config(sandbox))
    rows = rec.landed(duckdb_path(tmp_path), "src__Contact", stream)
    rec.assert_same_records(rows, rec.typed(sandbox.records("Contact"), stream, "contacts"), stream, "after the limit")


def test_salesforce_request_limit_exceeded_is_a_transient_error_saying_what_to_do(sandbox):
    cfg = config(sandbox)
    source = SalesforceSource()
    stream = stream_of(source, cfg)
    sandbox.limit_requests(1)
    with pytest.raises(RequestLimitExceeded) as caught:
        list(source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH)))
    assert isinstance(caught.value, TransientError)
    assert "REQUEST_LIMIT_EXCEEDED" in caught.value.message and "resumes" in caught.value.hint


def test_salesforce_record_with_a_field_of_unexpected_type_is_quarantined_not_a_crash(sandbox, tmp_path):
    contacts = sandbox.records("Contact", include_deleted=False)
    sandbox.set_raw("Contact", contacts[2]["Id"], "Loyalty_Points__c", "lots")
    sandbox.set_raw("Contact", contacts[5]["Id"], "Birthdate", "31/02/1980")
    report = sync_tolerant(config(sandbox).model_dump(), tmp_path, ["Contact"])
    assert report.ok, report.error
    assert report.stream("src", "Contact").rows_rejected == 2
    stream = stream_of(SalesforceSource(), config(sandbox))
    landed = {r["Id"] for r in rec.landed(duckdb_path(tmp_path), "src__Contact", stream)}
    assert landed == {r["Id"] for r in sandbox.records("Contact")} - {contacts[2]["Id"], contacts[5]["Id"]}


def test_salesforce_money_lands_as_decimal(sandbox):
    rows = read_rows(config(sandbox))
    values = [r["Lifetime_Value__c"] for r in rows if r["Lifetime_Value__c"] is not None]
    assert values and all(isinstance(v, Decimal) for v in values)
    assert all(isinstance(r["SystemModstamp"], datetime) and r["SystemModstamp"].tzinfo for r in rows)
    assert min(r["SystemModstamp"] for r in rows) == min(
        datetime.fromisoformat(c["SystemModstamp"].replace("+0000", "+00:00")) for c in sandbox.records("Contact"))


def test_a_retired_api_version_is_refused_in_the_config_naming_the_current_one():
    from pydantic import ValidationError

    from threadline_salesforce.source import CURRENT_API_VERSION, SalesforceConfig

    with pytest.raises(ValidationError, match=f"retired .* use {CURRENT_API_VERSION}"):
        SalesforceConfig(client_id="x", client_secret="y", refresh_token="z", api_version="v30.0")
