"""tap-threadline as a Singer runner sees it: messages on stdout, resumable from its STATE."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
