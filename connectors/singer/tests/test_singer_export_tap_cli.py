"""tap-threadline as a Singer runner sees it: messages on stdout, resumable from its STATE."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from threadline_hubspot.sandbox import HubspotSandbox

TAP = str(Path(sys.executable).parent / "tap-threadline")
CUSTOMERS = Path(__file__).parent / "fixtures" / "customers.csv"


def run_tap(tmp_path: Path, config: dict, state: dict | None = None) -> tuple[int, list[dict], str]:
    (tmp_path / "config.json").write_text(json.dumps(config))
    argv = [TAP, "--config", str(tmp_path / "config.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        argv += ["--state", str(tmp_path / "state.json")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.strip()], done.stderr


FILES = {"connector": "files", "config": {"streams": [{"name": "customers", "path": str(CUSTOMERS), "primary_key": ["id"]}]}}


def test_the_tap_emits_typed_records_and_a_state_holding_the_sources_checkpoint(tmp_path):
    code, messages, stderr = run_tap(tmp_path, FILES)
    assert code == 0, stderr[-2000:]
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert [r["id"] for r in records] == [1, 2, 3]
    state = [m for m in messages if m["type"] == "STATE"][-1]["value"]
    assert "threadline" in state["bookmarks"]["customers"]


def test_the_tap_resumes_from_the_state_it_printed(tmp_path):
    _, first, _ = run_tap(tmp_path, FILES)
    state = [m for m in first if m["type"] == "STATE"][-1]["value"]
    code, again, stderr = run_tap(tmp_path, FILES, state=state)
    assert code == 0, stderr[-2000:]
    assert not [m for m in again if m["type"] == "RECORD"]  # the file has not changed since


def test_an_unknown_connector_is_a_one_line_error_not_a_traceback(tmp_path):
    code, _, stderr = run_tap(tmp_path, {"connector": "no-such-source"})
    assert code == 1
    assert "error: no source connector named 'no-such-source' is installed" in stderr
    assert "Traceback" not in stderr


@pytest.fixture
def hubspot():
    with HubspotSandbox(contacts=40, companies=3, deals=3, rate_limit=100_000) as sandbox:
        yield sandbox


def hubspot_config(sandbox: HubspotSandbox) -> dict:
    return {"connector": "hubspot", "config": {"access_token": sandbox.TOKEN, "base_url": sandbox.base_url,
                                               "requests_per_10_seconds": None, "search_requests_per_second": None}}


def discover(tmp_path: Path, config: dict) -> dict:
    (tmp_path / "config.json").write_text(json.dumps(config))
    done = subprocess.run([TAP, "--config", str(tmp_path / "config.json"), "--discover"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def contacts_of(messages: list[dict]) -> list[dict]:
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "contacts"]


def test_discovery_declares_cursor_streams_incremental_with_their_replication_key(tmp_path, hubspot):
    streams = {s["tap_stream_id"]: s for s in discover(tmp_path, hubspot_config(hubspot))["streams"]}
    top = {s: next(m["metadata"] for m in e["metadata"] if m["breadcrumb"] == []) for s, e in streams.items()}
    assert streams["contacts"]["replication_method"] == "INCREMENTAL"
    assert streams["contacts"]["replication_key"] == "updated_at"
    assert top["contacts"]["valid-replication-keys"] == ["updated_at"]
    assert streams["associations"]["replication_method"] == "FULL_TABLE"  # no cursor, no incremental mode


def test_a_stream_resuming_from_its_own_state_is_declared_incremental_without_a_key(tmp_path):
    entry = discover(tmp_path, FILES)["streams"][0]
    top = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
    assert top["forced-replication-method"] == "INCREMENTAL"
    assert not entry.get("replication_key")


def test_the_state_carries_the_engines_cursor_and_the_next_run_reads_from_it(tmp_path, hubspot):
    code, first, stderr = run_tap(tmp_path, hubspot_config(hubspot))
    assert code == 0, stderr[-2000:]
    state = [m for m in first if m["type"] == "STATE"][-1]["value"]
    bookmark = state["bookmarks"]["contacts"]
    last = max(r["updated_at"] for r in contacts_of(first))
    assert bookmark["replication_key"] == "updated_at"
    assert datetime.fromisoformat(bookmark["replication_key_value"]) == datetime.fromisoformat(last)

    changed = hubspot.update("contacts", [r["id"] for r in hubspot.records("contacts", archived=False)[:2]])
    code, again, stderr = run_tap(tmp_path, hubspot_config(hubspot), state=state)
    assert code == 0, stderr[-2000:]
    read = {r["id"] for r in contacts_of(again)}
    boundary = {r["id"] for r in contacts_of(first) if r["updated_at"] == last}  # the cursor is inclusive
    assert read == {r["id"] for r in changed} | boundary


def test_a_state_set_by_hand_as_a_plain_singer_bookmark_is_honoured(tmp_path, hubspot):
    # what `meltano state set` or another runner writes: no threadline checkpoint, just the key's value
    newest = hubspot.records("contacts", archived=False)[-1]
    hubspot.set_modified("contacts", [newest["id"]], "2030-01-01T00:00:00.000Z")
    state = {"bookmarks": {"contacts": {"replication_key": "updated_at",
                                        "replication_key_value": "2029-12-31T00:00:00+00:00"}}}
    code, messages, stderr = run_tap(tmp_path, hubspot_config(hubspot), state=state)
    assert code == 0, stderr[-2000:]
    assert [r["id"] for r in contacts_of(messages)] == [newest["id"]]


def test_a_catalog_forcing_full_table_reads_everything_again(tmp_path, hubspot):
    catalog = discover(tmp_path, hubspot_config(hubspot))
    for entry in catalog["streams"]:
        entry["replication_method"] = "FULL_TABLE"
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    _, first, _ = run_tap(tmp_path, hubspot_config(hubspot))
    state = [m for m in first if m["type"] == "STATE"][-1]["value"]
    (tmp_path / "state.json").write_text(json.dumps(state))
    done = subprocess.run([TAP, "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json"),
                           "--state", str(tmp_path / "state.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(contacts_of([json.loads(line) for line in done.stdout.splitlines()])) == 40


def test_json_columns_go_out_as_json_values_not_text(tmp_path, hubspot):
    _, messages, _ = run_tap(tmp_path, hubspot_config(hubspot))
    record = contacts_of(messages)[0]
    assert isinstance(record["properties"], dict)
    assert record["properties"]["email"] == record["email"]


def test_config_keys_the_connector_does_not_use_are_named_and_ignored(tmp_path, hubspot):
    # as Meltano's inherit_from hands them down from a parent plugin's config
    config = hubspot_config(hubspot)
    config["config"]["streams"] = [{"name": "customers", "path": str(CUSTOMERS)}]
    code, messages, stderr = run_tap(tmp_path, config)
    assert code == 0, stderr[-2000:]
    assert len(contacts_of(messages)) == 40
    assert "does not use config key(s) 'streams': ignored" in stderr


def test_a_json_column_is_declared_as_any_json_value_that_targets_type_as_an_object(tmp_path, hubspot):
    import sqlalchemy
    from jsonschema import Draft7Validator
    from singer_sdk.sql.connector import JSONSchemaToSQL

    from threadline_singer.schema import is_json_field, json_schema_to_field

    contacts = next(s for s in discover(tmp_path, hubspot_config(hubspot))["streams"] if s["tap_stream_id"] == "contacts")
    declared = contacts["schema"]["properties"]["properties"]
    for value in ({"email": "a@example.com"}, ["a"], "text", 1.5, None):
        Draft7Validator(declared).validate(value)  # what a singer-sdk target checks each record against
    to_sql = JSONSchemaToSQL()
    to_sql.register_type_handler("object", sqlalchemy.types.JSON)  # as target-postgres maps objects (JSONB)
    assert isinstance(to_sql.to_sql_type(declared), sqlalchemy.types.JSON)
    assert is_json_field(json_schema_to_field("properties", declared))  # the `singer` source reads it back as JSON
