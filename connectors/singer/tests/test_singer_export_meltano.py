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


def meltano_run(meltano: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "MELTANO_DISABLE_TRACKING": "true"}
    return subprocess.run([str(meltano), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_meltano_runs_a_threadline_source_into_a_singer_target(meltano, tmp_path):
    out = tmp_path / "out"
    loader = {
        "name": "target-jsonl",
        "namespace": "target_jsonl",
        "executable": str(tool(TARGET_JSONL)),
        "settings": [{"name": "destination_path"}, {"name": "do_timestamp_file", "kind": "boolean"}],
        "config": {"destination_path": str(out), "do_timestamp_file": False},
    }
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
