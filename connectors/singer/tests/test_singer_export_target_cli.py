"""target-threadline as a Singer runner sees it: messages on stdin, confirmed state on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

TARGET = str(Path(sys.executable).parent / "target-threadline")
SCHEMA = {"type": "SCHEMA", "stream": "people", "key_properties": ["id"],
          "schema": {"properties": {"id": {"type": "integer"}, "score": {"type": ["number", "null"]},
                                    "seen": {"type": ["string", "null"], "format": "date-time"}}}}


def run_target(tmp_path: Path, messages: list[dict]) -> subprocess.CompletedProcess:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"connector": "duckdb", "config": {"path": str(tmp_path / "store.duckdb")}}))
    stdin = "".join(json.dumps(m) + "\n" for m in messages)
    return subprocess.run([TARGET, "--config", str(config)], input=stdin, capture_output=True, text=True, timeout=120)


def test_records_land_and_the_state_after_them_is_confirmed(tmp_path):
    done = run_target(tmp_path, [
        SCHEMA,
        {"type": "RECORD", "stream": "people", "record": {"id": 1, "score": 1.5, "seen": "2024-01-01T00:00:00Z"}},
        {"type": "RECORD", "stream": "people", "record": {"id": 2, "score": 2, "seen": None}},
        {"type": "STATE", "value": {"bookmarks": {"people": {"page": 1}}}},
    ])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"bookmarks": {"people": {"page": 1}}}
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        assert con.execute("select id, score from people order by id").fetchall() == [(1, 1.5), (2, 2.0)]


def test_a_record_that_does_not_fit_arrow_fails_the_target_without_confirming_state(tmp_path):
    done = run_target(tmp_path, [
        SCHEMA,
        {"type": "RECORD", "stream": "people", "record": {"id": 2**70, "score": 1.0}},  # valid JSON Schema, not int64
        {"type": "STATE", "value": {"bookmarks": {"people": {"page": 1}}}},
    ])
    assert done.returncode == 1
    assert "do not fit its schema" in done.stderr
    assert "page" not in done.stdout
