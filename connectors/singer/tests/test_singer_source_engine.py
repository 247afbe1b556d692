"""End to end through the engine: Singer taps synced into DuckDB, state saved after commits."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

from threadline.engine import run_job
from threadline.job import job_from_dict
from threadline.state import StateStore

FIXTURES = Path(__file__).parent / "fixtures"


def job(tmp_path: Path, source_config: dict, name: str = "shop"):
    return job_from_dict(
        {
            "name": "singer-e2e",
            "sources": {name: {"connector": "singer", "config": source_config}},
            "destinations": {"store": {"connector": "duckdb", "config": {"path": "store.duckdb"}}},
        },
        tmp_path,
    )


def rows(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        return con.execute(sql).fetchall()


def saved_state(the_job, source: str, stream: str) -> dict:
    store = StateStore(the_job.state_dir)
    try:
        return store.get(the_job.name, source, stream)
    finally:
        store.close()


def broken(mode: str) -> dict:
    return {"executable": [sys.executable, str(FIXTURES / "broken_tap.py")], "tap_config": {"mode": mode}}


def test_a_singer_tap_from_pypi_syncs_into_duckdb(tmp_path, tap_jsonl, jsonl_tap_config):
    the_job = job(tmp_path, {"executable": tap_jsonl, "tap_config": jsonl_tap_config()})
    report = run_job(the_job)
    assert report.ok, report.error
    assert report.stream("shop", "people").rows_written == 1_200
    assert rows(tmp_path, "select count(*), count(distinct id), min(signed_up) is not null from shop__people") == [
        (1_200, 1_200, True)
    ]
    assert "singer_state" in saved_state(the_job, "shop", "people")


def test_an_in_process_tap_syncs_into_duckdb(tmp_path, tap_jsonl_class, jsonl_tap_config):
    the_job = job(tmp_path, {"tap_class": tap_jsonl_class, "tap_config": jsonl_tap_config()})
    report = run_job(the_job)
    assert report.ok, report.error
    assert rows(tmp_path, "select count(*) from shop__people") == [(1_200,)]


def test_a_crashed_tap_leaves_the_state_of_the_last_commit_and_the_next_sync_resumes(tmp_path):
    crashed = run_job(job(tmp_path, broken("crash")))
    assert not crashed.ok
    assert "exited with code 1" in crashed.error
    the_job = job(tmp_path, broken("ok"))
    assert saved_state(the_job, "shop", "items")["singer_state"]["bookmarks"]["items"]["position"] == 3
    assert rows(tmp_path, "select id from shop__items order by id") == [(0,), (1,), (2,)]

    resumed = run_job(the_job)
    assert resumed.ok, resumed.error
    assert rows(tmp_path, "select id from shop__items order by id") == [(i,) for i in range(8)]


def test_a_rejected_value_is_quarantined_and_the_rest_lands(tmp_path):
    the_job = job(tmp_path, broken("bad_value"))
    the_job.max_rejected_share = 0.5
    report = run_job(the_job)
    assert report.ok, report.error
    assert report.stream("shop", "items").rows_rejected == 1
    assert report.quarantine and any(Path(report.quarantine).rglob("*"))
    assert rows(tmp_path, "select count(*) from shop__items") == [(4,)]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("invalid_json", "is not valid JSON"),
        ("type_change", "changed the schema of stream 'items' mid-stream"),
        ("record_before_schema", "before any SCHEMA"),
    ],
)
def test_a_misbehaving_tap_fails_the_run_with_its_reason(tmp_path, mode, reason):
    report = run_job(job(tmp_path, broken(mode)))
    assert not report.ok
    assert reason in report.error


def test_relative_paths_in_the_tap_config_are_taken_from_the_job_folder(tmp_path, tap_jsonl, people_file, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "people.jsonl").write_bytes(people_file.read_bytes())
    monkeypatch.chdir(people_file.parent.parent)  # anywhere but the job's folder
    the_job = job(tmp_path, {"executable": tap_jsonl, "tap_config": {"path": "data/people.jsonl", "stream_name": "people"}})
    report = run_job(the_job)
    assert report.ok, report.error
    assert rows(tmp_path, "select count(*) from shop__people") == [(1_200,)]
