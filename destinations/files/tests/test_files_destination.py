"""The files destination writes whole parts atomically and swaps replaced folders."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from threadline.contracts import Stream, StreamTarget, WriteDisposition
from threadline.engine import plan_job
from threadline.contracts import ConfigError
from threadline.job import job_from_dict
from threadline_files_destination.destination import FilesDestination, FilesDestinationConfig

SCHEMA = pa.schema([("id", pa.int64())])


def open_stream(tmp_path, disposition, run="r1", fmt="parquet"):
    config = FilesDestinationConfig(path=tmp_path / "out", format=fmt)
    target = StreamTarget("src", Stream("s", SCHEMA), disposition, "src__s", run)
    return FilesDestination().open_stream(config, target)


def test_each_commit_adds_one_whole_part(tmp_path):
    w = open_stream(tmp_path, WriteDisposition.APPEND)
    w.write(pa.record_batch({"id": [1, 2]}))
    assert list((tmp_path / "out" / "src__s").iterdir()) == []  # nothing visible before the commit
    w.commit()
    w.write(pa.record_batch({"id": [3]}))
    w.finish()
    parts = sorted((tmp_path / "out" / "src__s").iterdir())
    assert [p.name for p in parts] == ["part-r1-00001.parquet", "part-r1-00002.parquet"]
    assert pq.read_table(tmp_path / "out" / "src__s").column("id").to_pylist() == [1, 2, 3]


def test_an_aborted_stream_leaves_no_partial_file(tmp_path):
    w = open_stream(tmp_path, WriteDisposition.APPEND)
    w.write(pa.record_batch({"id": [1]}))
    w.abort()
    assert list((tmp_path / "out" / "src__s").iterdir()) == []


def test_replace_swaps_the_folder_when_the_stream_finishes(tmp_path):
    for run, ids in (("r1", [1, 2]), ("r2", [7])):
        w = open_stream(tmp_path, WriteDisposition.REPLACE, run, fmt="csv")
        w.write(pa.record_batch({"id": ids}))
        w.finish()
    assert [p.name for p in (tmp_path / "out" / "src__s").iterdir()] == ["part-r2-00001.csv"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["src__s"]  # no staging left behind


def test_asking_files_to_upsert_is_a_config_error_that_says_what_it_can_do(tmp_path):
    (tmp_path / "a.csv").write_text("id\n1\n")
    job = job_from_dict({"name": "j", "sources": {"src": {"connector": "files", "config": {
        "streams": [{"name": "s", "path": "a.csv", "primary_key": ["id"]}]}, "streams": {"s": {"write": "upsert"}}}},
        "destinations": {"out": {"connector": "files", "config": {"path": "out"}}}}, tmp_path)
    with pytest.raises(ConfigError) as exc:
        plan_job(job)
    assert "destination 'files' cannot upsert" in exc.value.render() and "append, replace" in exc.value.hint


def test_a_stream_with_a_key_defaults_to_append_on_a_destination_that_cannot_upsert(tmp_path):
    (tmp_path / "a.csv").write_text("id\n1\n")
    job = job_from_dict({"name": "j", "sources": {"src": {"connector": "files", "config": {
        "streams": [{"name": "s", "path": "a.csv", "primary_key": ["id"]}]}}},
        "destinations": {"out": {"connector": "files", "config": {"path": "out"}}}}, tmp_path)
    assert plan_job(job)[0].disposition is WriteDisposition.APPEND
