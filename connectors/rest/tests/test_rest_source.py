"""The `rest` source: a JSON API declared in a job file, synced against its sandbox."""

from __future__ import annotations

import socket
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from pydantic import ValidationError

from threadline.contracts import Batch, ConfigError, ReadRequest, SyncMode
from threadline.engine import run_job
from threadline.job import job_from_dict, load_job
from threadline.plugins import registry
from threadline.sandbox import CustomersSandbox as S
from threadline_rest import RestApiSource, RestConfig

SCHEMA = {
    "id": "int64", "email": "string", "lifetime_value": "decimal(18,2)",
    "address": "struct<city: string, postcode: string>", "tags": "list<string>", "updated_at": "timestamp",
}


def config(base_url: str, **overrides) -> dict:
    stream = {
        "name": "customers", "path": "/customers", "records_path": "data", "primary_key": ["id"],
        "cursor": {"field": "updated_at", "param": "updated_since", "sorted": True}, "schema": SCHEMA,
    }
    stream.update(overrides.pop("stream", {}))
    return {
        "base_url": base_url, "auth": {"type": "bearer", "token": S.TOKEN},
        "paginator": {"type": "offset", "limit": 20, "total_path": "total"},
        "retry": {"max_attempts": 3, "backoff_base": 0.01, "max_retry_time": 5},
        "streams": [stream], **overrides,
    }


@pytest.fixture
def crm():
    with S(count=50) as sandbox:
        yield sandbox


def read_all(source_config: dict, sync_mode=SyncMode.FULL_REFRESH, cursor_start=None) -> pa.Table:
    source = RestApiSource()
    cfg = RestConfig.model_validate(source_config)
    stream = source.discover(cfg).get("customers")
    messages = source.read(cfg, ReadRequest(stream, sync_mode, cursor_start=cursor_start))
    return pa.Table.from_batches([m.records for m in messages if isinstance(m, Batch)], schema=stream.schema)


def job(tmp_path: Path, source_config: dict) -> dict:
    return {
        "name": "demo",
        "sources": {"crm": {"connector": "rest", "config": source_config,
                            "streams": {"customers": {"sync_mode": "incremental"}}}},
        "destinations": {"store": {"connector": "duckdb", "config": {"path": str(tmp_path / "store.duckdb")}}},
        "state": str(tmp_path / "state"),
    }


def landed(tmp_path: Path) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "store.duckdb")) as db:
        return db.execute("select id, email from crm__customers order by id").fetchall()


def expected(crm) -> list[tuple]:
    return sorted((c["id"], c["email"]) for c in crm.customers)


# ------------------------------------------------------------------ plugin and config


def test_the_plugin_registers_the_rest_source_and_its_sandbox():
    assert registry().sources["rest"] is RestApiSource
    assert registry().sandboxes["rest"] is S


def test_config_fields_are_documented():
    schema = RestConfig.model_json_schema()
    assert "description" in schema["properties"]["base_url"]


@pytest.mark.parametrize("change,message", [
    ({"base_url": "ftp://x"}, "http:// or https://"),
    ({"stream": {"schema": {"id": "int64", "address": "struct"}}}, "struct needs its fields"),
    ({"stream": {"schema": {"id": "bigint"}}}, "unknown type"),
    ({"stream": {"primary_key": ["nope"]}}, "primary_key"),
    ({"stream": {"cursor": {"field": "seen", "param": "since"}}}, "cursor field"),
    ({"paginator": {"type": "offest"}}, "offest"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_config_is_rejected_with_a_clear_message(change, message):
    data = config("http://127.0.0.1:1")
    stream = change.pop("stream", None)
    if stream:
        data["streams"][0].update(stream)
    data.update(change)
    with pytest.raises(ValidationError) as raised:
        RestConfig.model_validate(data)
    assert message in str(raised.value)


def test_discovery_declares_schema_key_and_cursor(crm):
    source = RestApiSource()
    stream = source.discover(RestConfig.model_validate(config(crm.base_url))).get("customers")
    assert stream.primary_key == ("id",)
    assert stream.cursor_field == "updated_at" and stream.cursor_sorted
    assert stream.schema.field("lifetime_value").type == pa.decimal128(18, 2)
    assert SyncMode.INCREMENTAL in stream.sync_modes


# ------------------------------------------------------------------ check


def test_check_passes_on_good_config(crm):
    RestApiSource().check(RestConfig.model_validate(config(crm.base_url)))


def test_check_names_the_token_field_when_the_token_is_refused(crm):
    bad = config(crm.base_url, auth={"type": "bearer", "token": "revoked-token-1234"})
    with pytest.raises(ConfigError) as raised:
        RestApiSource().check(RestConfig.model_validate(bad))
    assert raised.value.field == "auth.token"
    assert "revoked-token-1234" not in str(raised.value)


def test_check_names_base_url_when_nothing_listens_there():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError) as raised:
            RestApiSource().check(RestConfig.model_validate(config(f"http://127.0.0.1:{port}")))
    assert raised.value.field == "base_url"
    assert "connection refused" in str(raised.value)


# ------------------------------------------------------------------ reads


def test_full_read_returns_exactly_the_sandbox_records(crm):
    table = read_all(config(crm.base_url))
    assert sorted(zip(table.column("id").to_pylist(), table.column("email").to_pylist())) == expected(crm)


@pytest.mark.parametrize("auth", [
    {"type": "api_key", "key": S.API_KEY},
    {"type": "api_key", "key": S.API_KEY, "name": "api_key", "location": "query"},
    {"type": "basic", "username": S.USERNAME, "password": S.PASSWORD},
    {"type": "oauth2", "token_url": "/oauth/token", "client_id": S.CLIENT_ID, "client_secret": S.CLIENT_SECRET},
], ids=["api_key_header", "api_key_query", "basic", "oauth2"])
def test_every_auth_scheme_reads(crm, auth):
    assert read_all(config(crm.base_url, auth=auth)).num_rows == 50


@pytest.mark.parametrize("paginator,params", [
    ({"type": "page_number", "page_size": 20}, {}),
    ({"type": "cursor", "cursor_path": "next_cursor"}, {"limit": 20}),
    ({"type": "header_cursor"}, {"limit": 20}),
    ({"type": "next_url"}, {"limit": 20}),
    ({"type": "link_header"}, {"limit": 20}),
])
def test_every_paginator_type_reads_everything(crm, paginator, params):
    table = read_all(config(crm.base_url, paginator=paginator, stream={"params": params}))
    assert table.num_rows == 50


def test_incremental_read_sends_the_cursor_as_the_query_param(crm):
    boundary = crm.customers[30]["updated_at"]
    cursor_start = pa.scalar(boundary).cast(pa.timestamp("us", tz="UTC")).as_py()
    table = read_all(config(crm.base_url), SyncMode.INCREMENTAL, cursor_start)
    assert {r.param("updated_since") for r in crm.requests} == {boundary}
    assert table.num_rows == sum(1 for c in crm.customers if c["updated_at"] >= boundary)


# ------------------------------------------------------------------ through the engine


def test_a_job_file_alone_syncs_the_api(crm, tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_TOKEN", S.TOKEN)
    (tmp_path / "job.yaml").write_text(f"""
name: demo
sources:
  crm:
    connector: rest
    config:
      base_url: {crm.base_url}
      auth: {{type: bearer, token: "${{CRM_TOKEN}}"}}
      paginator: {{type: next_url}}
      streams:
        - name: customers
          path: /customers
          params: {{limit: 20}}
          primary_key: id
          cursor: {{field: updated_at, param: updated_since}}
          schema: {{id: int64, email: string, address: json, updated_at: timestamp}}
destinations:
  store:
    connector: duckdb
    config: {{path: store.duckdb}}
""")
    report = run_job(load_job(tmp_path / "job.yaml"))
    assert report.ok, report.error
    assert landed(tmp_path) == expected(crm)


def test_a_second_incremental_sync_reads_the_changes_and_the_boundary_only(crm, tmp_path):
    first = run_job(job_from_dict(job(tmp_path, config(crm.base_url)), tmp_path))
    assert first.ok, first.error
    last_stamp = crm.customers[-1]["updated_at"]
    ties = sum(1 for c in crm.customers if c["updated_at"] == last_stamp)
    crm.add_customers(2)
    crm.update_customers([1, 7])
    crm.delete_customers([3])

    second = run_job(job_from_dict(job(tmp_path, config(crm.base_url)), tmp_path))
    assert second.ok, second.error
    assert second.stream("crm", "customers").rows_read == 2 + 2 + ties  # boundary ties read again
    rows = dict(landed(tmp_path))
    assert rows[1].startswith("updated.") and rows[7].startswith("updated.")
    assert max(rows) == 52 and len(rows) == 52  # the delete is invisible to incremental, as documented


def test_a_sync_interrupted_mid_stream_resumes_without_loss_or_duplicates(crm, tmp_path):
    crm.inject("status", status=503, after=2, times=0)  # the third page fails, for good
    failed = run_job(job_from_dict(job(tmp_path, config(crm.base_url)), tmp_path))
    assert not failed.ok
    assert "503" in failed.error and "rest / customers" in failed.error
    assert 0 < failed.stream("crm", "customers").rows_written < 50

    crm.clear_faults()
    crm.clear_requests()
    resumed = run_job(job_from_dict(job(tmp_path, config(crm.base_url)), tmp_path))
    assert resumed.ok, resumed.error
    assert crm.requests[0].param("updated_since") is not None  # resumed from the saved cursor
    assert landed(tmp_path) == expected(crm)


def test_secrets_stay_out_of_reports_and_state(crm, tmp_path):
    crm.inject("status", status=500, times=0)
    bad = config(crm.base_url, auth={"type": "api_key", "key": "the-api-key-5678", "name": "api_key", "location": "query"})
    report = run_job(job_from_dict(job(tmp_path, bad), tmp_path))
    assert not report.ok
    assert "the-api-key-5678" not in report.error
    assert all("the-api-key-5678" not in p.read_text(errors="ignore")
               for p in (tmp_path / "state").rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".txt"))
