"""Meltano itself (from PyPI, in a venv of its own) running threadline as custom plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from threadline_hubspot.sandbox import HubspotSandbox
from threadline_singer.testing import MELTANO, TARGET_JSONL, tool

FIXTURES = Path(__file__).parent / "fixtures"
BIN = Path(sys.executable).parent

# the first run installs Singer tools from PyPI into cached venvs, which can take minutes
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def meltano() -> Path:
    return tool(MELTANO)


def tap_threadline_plugin() -> dict:
    return {
        "name": "tap-threadline",
        "namespace": "tap_threadline",
        "executable": str(BIN / "tap-threadline"),
        "capabilities": ["catalog", "discover", "state", "about"],
        "settings": [{"name": "connector"}, {"name": "config", "kind": "object"}],
        "config": {
            "connector": "files",
            "config": {"streams": [{"name": "customers", "path": str(FIXTURES / "customers.csv"), "primary_key": ["id"]}]},
        },
    }


def project(folder: Path, extractors: list[dict], loaders: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meltano.yml").write_text(yaml.safe_dump({
        "version": 1,
        "default_environment": "dev",
        "project_id": "threadline-meltano-check",
        "send_anonymous_usage_stats": False,
        "environments": [{"name": "dev"}],
        "plugins": {"extractors": extractors, "loaders": loaders},
    }))
    return folder


def meltano_run(meltano: Path, folder: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "MELTANO_DISABLE_TRACKING": "true", **env_vars}
    return subprocess.run([str(meltano), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def jsonl_loader(out: Path) -> dict:
    return {
        "name": "target-jsonl",
        "namespace": "target_jsonl",
        "executable": str(tool(TARGET_JSONL)),
        "settings": [{"name": "destination_path"}, {"name": "do_timestamp_file", "kind": "boolean"}],
        "config": {"destination_path": str(out), "do_timestamp_file": False},
    }


def hubspot_config(hubspot: HubspotSandbox) -> dict:
    """tap-threadline's config for the sandbox, with budgets far above what the tests spend (the
    sandbox's limit is raised too). Not null: Meltano 4.4.1 fails on a null inside an inherited object."""
    return {"connector": "hubspot", "config": {
        "access_token": hubspot.TOKEN, "base_url": hubspot.base_url,
        "requests_per_10_seconds": 100_000, "search_requests_per_second": 10_000,
    }}


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_meltano_runs_a_threadline_source_into_a_singer_target(meltano, tmp_path):
    out = tmp_path / "out"
    loader = jsonl_loader(out)
    folder = project(tmp_path / "proj", [tap_threadline_plugin()], [loader])
    done = meltano_run(meltano, folder, "run", "tap-threadline", "target-jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "customers.jsonl").read_text().splitlines()]
    assert [r["email"] for r in rows] == ["ana@example.com", "bo@example.com", "cy@example.com"]

    state = meltano_run(meltano, folder, "state", "get", "dev:tap-threadline-to-target-jsonl")
    assert state.returncode == 0, state.stderr[-2000:]
    assert "threadline" in json.loads(state.stdout)["singer_state"]["bookmarks"]["customers"]


def test_meltano_runs_a_threadline_source_into_a_threadline_destination(meltano, tmp_path):
    store = tmp_path / "store.duckdb"
    loader = {
        "name": "target-threadline",
        "namespace": "target_threadline",
        "executable": str(BIN / "target-threadline"),
        "settings": [{"name": "connector"}, {"name": "config", "kind": "object"}],
        "config": {"connector": "duckdb", "config": {"path": str(store)}},
    }
    folder = project(tmp_path / "proj", [tap_threadline_plugin()], [loader])
    done = meltano_run(meltano, folder, "run", "tap-threadline", "target-threadline")
    assert done.returncode == 0, done.stderr[-3000:]
    with duckdb.connect(str(store)) as con:
        assert con.execute("select count(*) from customers").fetchone() == (3,)


def test_a_second_meltano_run_reads_only_the_rows_changed_since_the_first(meltano, tmp_path):
    with HubspotSandbox(rate_limit=100_000) as hubspot:
        extractor = {**tap_threadline_plugin(), "config": hubspot_config(hubspot), "select": ["contacts.*"]}
        folder = project(tmp_path / "proj", [extractor], [jsonl_loader(tmp_path / "unused")])
        first, second = tmp_path / "first", tmp_path / "second"

        done = meltano_run(meltano, folder, "run", "tap-threadline", "target-jsonl",
                           TARGET_JSONL_DESTINATION_PATH=str(first))
        assert done.returncode == 0, done.stderr[-3000:]
        read_first = jsonl_rows(first / "contacts.jsonl")
        assert len(read_first) == 3000  # every contact, archived ones included

        changed = {r["id"] for r in hubspot.update("contacts", [r["id"] for r in hubspot.records("contacts", archived=False)[100:105]])}
        done = meltano_run(meltano, folder, "run", "tap-threadline", "target-jsonl",
                           TARGET_JSONL_DESTINATION_PATH=str(second))
        assert done.returncode == 0, done.stderr[-3000:]

    # the cursor is inclusive, as in `threadline sync`: the last instant of the first run is read again
    last = max(r["updated_at"] for r in read_first)
    boundary = {r["id"] for r in read_first if r["updated_at"] == last}
    assert {r["id"] for r in jsonl_rows(second / "contacts.jsonl")} == changed | boundary
    assert len(boundary) <= 3
    state = json.loads(meltano_run(meltano, folder, "state", "get", "dev:tap-threadline-to-target-jsonl").stdout)
    bookmark = state["singer_state"]["bookmarks"]["contacts"]
    assert bookmark["replication_key"] == "updated_at" and bookmark["replication_key_value"] > last


def test_a_plugin_inheriting_from_tap_threadline_runs_with_its_parents_config_merged_in(meltano, tmp_path):
    # the parent reads files; Meltano merges its `config.streams` into the child's HubSpot config
    out = tmp_path / "out"
    with HubspotSandbox(contacts=20, companies=3, deals=3, rate_limit=100_000) as hubspot:
        child = {"name": "tap-hubspot-threadline", "inherit_from": "tap-threadline",
                 "config": hubspot_config(hubspot), "select": ["contacts.*"]}
        folder = project(tmp_path / "proj", [tap_threadline_plugin(), child], [jsonl_loader(out)])
        done = meltano_run(meltano, folder, "run", "tap-hubspot-threadline", "target-jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = jsonl_rows(out / "contacts.jsonl")
    assert len(rows) == 20
    assert isinstance(rows[0]["properties"], dict) and "email" in rows[0]["properties"]  # JSON as an object
    assert "does not use config key(s) 'streams'" in done.stderr
