"""The `singer` destination under the engine: state is saved only for what a target confirmed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from threadline.engine import run_job
from threadline.job import job_from_dict
from threadline.state import StateStore

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.timeout(900)  # the first run installs target-jsonl into a cached venv


def customers_job(tmp_path: Path, destination: dict):
    (tmp_path / "customers.csv").write_text(
        "id,email\n" + "".join(f"{i},c{i}@example.com\n" for i in range(1, 6))
    )
    return job_from_dict(
        {
            "name": "singer-out",
            "sources": {"crm": {"connector": "files", "config": {"streams": [
                {"name": "customers", "path": "customers.csv", "primary_key": ["id"], "columns": {"id": {"type": "int64"}}}
            ]}}},
            "destinations": {"lake": {"connector": "singer", "config": destination}},
        },
        tmp_path,
    )


def saved_state(job) -> dict:
    store = StateStore(job.state_dir)
    try:
        return store.get(job.name, "crm", "customers")
    finally:
        store.close()


def test_a_sync_lands_in_a_singer_target_and_saves_the_sources_state(tmp_path, target_jsonl):
    out = tmp_path / "out"  # given relative: the target runs in the job's folder
    job = customers_job(tmp_path, {"executable": target_jsonl,
                                   "target_config": {"destination_path": "out", "do_timestamp_file": False}})
    report = run_job(job)
    assert report.ok, report.error
    rows = [json.loads(line) for line in (out / "crm__customers.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert saved_state(job)  # the files source's checkpoint, saved after the target confirmed


def test_a_target_rejecting_a_record_fails_the_sync_and_saves_no_state(tmp_path):
    job = customers_job(tmp_path, {"executable": [sys.executable, str(FIXTURES / "broken_target.py")],
                                   "target_config": {"mode": "reject"}})
    report = run_job(job)
    assert not report.ok
    assert "record rejected: id 3" in report.error
    assert saved_state(job) == {}
