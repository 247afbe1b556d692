"""The `singer` destination feeding real Singer targets, and surviving misbehaving ones."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest

from threadline.contracts import FatalError, WriteDisposition
from threadline_singer_target.destination import SingerDestination, SingerTargetConfig

# the first run installs Singer tools from PyPI into cached venvs, which can take minutes
pytestmark = pytest.mark.timeout(900)


def batch(schema: pa.Schema, ids: range, *, null_id_at: int | None = None) -> pa.RecordBatch:
    n = len(ids)
    id_values = [None if i == null_id_at else i for i in ids]
    return pa.RecordBatch.from_arrays(
        [
            pa.array(id_values, pa.int64()),
            pa.array([f"c{i}@example.com" for i in ids]),
            pa.array([dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)] * n, pa.timestamp("us", tz="UTC")),
            pa.array([dt.date(1990, 1, 2)] * n, pa.date32()),
            pa.array([i / 4 for i in ids]),
        ],
        schema=schema,
    )


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_reach_a_classic_singer_target_with_singer_formatted_values(target_jsonl, tmp_path, customers, stream_target):
    config = SingerTargetConfig(
        executable=target_jsonl, target_config={"destination_path": str(tmp_path), "do_timestamp_file": False}
    )
    writer = SingerDestination().open_stream(config, stream_target())
    writer.write(batch(customers.schema, range(0, 3)))
    writer.commit()
    writer.write(batch(customers.schema, range(3, 5)))
    report = writer.finish()
    rows = jsonl_rows(tmp_path / "customers.jsonl")
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["signed_up"] == "2024-05-01T12:30:00.000000Z"
    assert rows[0]["born"] == "1990-01-02"
    assert report.rows_written == 5


def test_rows_reach_a_singer_sdk_target(target_csv, tmp_path, customers, stream_target):
    config = SingerTargetConfig(executable=target_csv, target_config={"output_path": str(tmp_path)})
    writer = SingerDestination().open_stream(config, stream_target())
    writer.write(batch(customers.schema, range(0, 100)))
    writer.write(batch(customers.schema, range(100, 150)))
    assert writer.finish().rows_written == 150
    with (tmp_path / "customers.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["id"]) for r in rows] == list(range(150))
    assert rows[0]["email"] == "c0@example.com"


def test_a_commit_returns_only_after_the_target_confirmed_the_state(broken_target, tmp_path, customers, stream_target):
    writer = SingerDestination().open_stream(broken_target("echo"), stream_target())
    writer.write(batch(customers.schema, range(0, 4)))
    writer.commit()
    assert len(jsonl_rows(tmp_path / "out.jsonl")) == 4  # on disk before commit() returned
    writer.finish()


def test_echo_mode_keeps_one_target_process_for_the_stream(broken_target, tmp_path, customers, stream_target):
    writer = SingerDestination().open_stream(broken_target("echo", commit_mode="echo"), stream_target())
    writer.write(batch(customers.schema, range(0, 2)))
    writer.commit()
    first = writer._proc
    writer.write(batch(customers.schema, range(2, 4)))
    writer.commit()
    assert writer._proc is first
    assert writer.finish().rows_written == 4


def test_a_target_rejecting_a_record_fails_the_commit_with_its_reason(broken_target, customers, stream_target):
    writer = SingerDestination().open_stream(broken_target("reject"), stream_target())
    writer.write(batch(customers.schema, range(0, 5)))
    with pytest.raises(FatalError) as failure:
        writer.commit()
    assert "record rejected: id 3" in str(failure.value)
    assert "5 rows not yet committed" in str(failure.value)
    writer.abort()


def test_a_real_target_failing_schema_validation_fails_the_commit(target_jsonl, tmp_path, customers, stream_target):
    config = SingerTargetConfig(executable=target_jsonl, target_config={"destination_path": str(tmp_path)})
    writer = SingerDestination().open_stream(config, stream_target())
    writer.write(batch(customers.schema, range(0, 3), null_id_at=1))  # id is declared non-null
    with pytest.raises(FatalError) as failure:
        writer.commit()
    assert "None is not of type 'integer'" in str(failure.value)
    writer.abort()


def test_a_target_that_never_confirms_fails_the_commit(broken_target, customers, stream_target):
    writer = SingerDestination().open_stream(broken_target("silent"), stream_target())
    writer.write(batch(customers.schema, range(0, 2)))
    with pytest.raises(FatalError) as failure:
        writer.commit()
    assert "without printing back the state" in str(failure.value)
    writer.abort()


def test_a_target_that_hangs_on_commit_is_stopped_after_the_timeout(broken_target, customers, stream_target):
    writer = SingerDestination().open_stream(broken_target("hang", commit_mode="echo", commit_timeout=1.5), stream_target())
    writer.write(batch(customers.schema, range(0, 2)))
    with pytest.raises(FatalError) as failure:
        writer.commit()
    assert "did not confirm the commit within 1.5 s" in str(failure.value)
    writer.abort()


def test_upsert_sends_the_primary_key_and_append_sends_none(broken_target, tmp_path, customers, stream_target):
    seen = {}
    for disposition in (WriteDisposition.UPSERT, WriteDisposition.APPEND):
        writer = SingerDestination().open_stream(broken_target("echo"), stream_target(disposition))
        writer.write(batch(customers.schema, range(0, 1)))
        seen[disposition] = json.loads(writer._schema_line)["key_properties"]
        writer.finish()
    assert seen == {WriteDisposition.UPSERT: ["id"], WriteDisposition.APPEND: []}


def test_replace_sends_versioned_records_and_activates_the_version(target_jsonl, tmp_path, customers, stream_target):
    config = SingerTargetConfig(executable=target_jsonl, target_config={"destination_path": str(tmp_path)})
    writer = SingerDestination().open_stream(config, stream_target(WriteDisposition.REPLACE))
    line = writer._serializer.lines(batch(customers.schema, range(0, 1))) if writer._serializer else None
    assert line is None  # nothing is started before the first batch
    writer.write(batch(customers.schema, range(0, 2)))
    record = json.loads(writer._serializer.lines(batch(customers.schema, range(0, 1))))
    assert record["version"] == writer.version
    writer.finish()


def test_a_new_column_mid_stream_is_announced_with_a_new_schema(target_jsonl, tmp_path, customers, stream_target):
    config = SingerTargetConfig(
        executable=target_jsonl, target_config={"destination_path": str(tmp_path), "do_timestamp_file": False}
    )
    writer = SingerDestination().open_stream(config, stream_target())
    writer.write(batch(customers.schema, range(0, 2)))
    wider = batch(customers.schema, range(2, 4))
    wider = wider.append_column("tier", pa.array(["gold", "silver"]))
    writer.write(wider)  # target-jsonl validates each record against the latest SCHEMA
    writer.finish()
    rows = jsonl_rows(tmp_path / "customers.jsonl")
    assert [r.get("tier") for r in rows] == [None, None, "gold", "silver"]


def test_check_reports_a_missing_target_executable():
    from threadline.contracts import ConfigError

    with pytest.raises(ConfigError) as failure:
        SingerDestination().check(SingerTargetConfig(executable="target-that-is-not-installed"))
    assert failure.value.field == "executable"
