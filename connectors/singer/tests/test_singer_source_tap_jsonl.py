"""The `singer` source running a real tap from PyPI (tap-jsonl, built on singer-sdk)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from threadline.contracts import Batch, Checkpoint, ConfigError, FatalError, ReadRequest, SyncMode
from threadline_singer.source import SingerSource, SingerSourceConfig

PEOPLE = 1_200

# the first run installs Singer tools from PyPI into cached venvs, which can take minutes
pytestmark = pytest.mark.timeout(900)


def table(messages: list) -> pa.Table:
    return pa.Table.from_batches([m.records for m in messages if isinstance(m, Batch)]).sort_by("id")


@pytest.fixture
def subprocess_config(tap_jsonl, jsonl_tap_config) -> SingerSourceConfig:
    return SingerSourceConfig(executable=tap_jsonl, tap_config=jsonl_tap_config(), batch_rows=500)


@pytest.fixture
def in_process_config(tap_jsonl_class, jsonl_tap_config) -> SingerSourceConfig:
    return SingerSourceConfig(tap_class=tap_jsonl_class, tap_config=jsonl_tap_config(), batch_rows=500)


def test_discovery_turns_the_taps_json_schema_into_arrow(subprocess_config):
    stream = SingerSource().discover(subprocess_config).get("people")
    types = {f.name: f.type for f in stream.schema}
    assert types["id"] == pa.int64()
    assert types["score"] == pa.float64()
    assert types["vip"] == pa.bool_()
    assert types["signed_up"] == pa.timestamp("us", tz="UTC")
    assert types["born"] == pa.date32()
    assert types["address"] == pa.string()  # a free-form object: kept as JSON text
    assert stream.primary_key == ("id",)
    assert SyncMode.INCREMENTAL in stream.sync_modes


def test_every_record_arrives_typed_through_a_subprocess(subprocess_config, read_stream):
    rows = table(read_stream(subprocess_config, "people"))
    assert rows.num_rows == PEOPLE
    first = rows.slice(0, 1).to_pylist()[0]
    assert first["email"] == "person0@example.com"
    assert first["signed_up"] == dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.timezone.utc)
    assert first["born"] == dt.date(1950, 1, 10)
    assert first["address"] == '{"city":"Lyon","zip":"69000"}'


def test_records_come_in_batches_of_the_configured_size(subprocess_config, read_stream):
    sizes = [m.records.num_rows for m in read_stream(subprocess_config, "people") if isinstance(m, Batch)]
    assert max(sizes) == 500


def test_in_process_reads_the_same_rows_as_a_subprocess(subprocess_config, in_process_config, read_stream):
    assert table(read_stream(in_process_config, "people")).equals(table(read_stream(subprocess_config, "people")))


def test_in_process_discovery_matches_subprocess_discovery(subprocess_config, in_process_config):
    assert SingerSource().discover(in_process_config) == SingerSource().discover(subprocess_config)


def test_the_taps_state_becomes_the_checkpoint(subprocess_config, read_stream):
    checkpoints = [m for m in read_stream(subprocess_config, "people") if isinstance(m, Checkpoint)]
    bookmark = checkpoints[-1].state["singer_state"]["bookmarks"]["people"]
    assert bookmark["replication_key"] == "_sdc_last_modified"


def test_an_incremental_read_hands_the_saved_state_to_the_tap(subprocess_config, read_stream):
    saved = {"singer_state": {"bookmarks": {"archived": {"marker": "from-last-run"}}}}
    messages = read_stream(subprocess_config, "people", state=saved)
    final = [m for m in messages if isinstance(m, Checkpoint)][-1].state["singer_state"]
    assert final["bookmarks"]["archived"] == {"marker": "from-last-run"}  # the tap carried it on


def test_a_full_refresh_ignores_the_saved_state(subprocess_config, read_stream):
    first = read_stream(subprocess_config, "people")
    state = [m for m in first if isinstance(m, Checkpoint)][-1].state
    again = read_stream(subprocess_config, "people", state=state, mode=SyncMode.FULL_REFRESH)
    assert table(again).num_rows == PEOPLE


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("how", ["subprocess", "in-process"])
def test_batch_messages_pointing_at_files_are_read(request, jsonl_tap_config, tmp_path, read_stream, fmt, how):
    batch_config = {
        "encoding": {"format": fmt, "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}", "prefix": "people-"},
        "batch_size": 400,
    }
    run = (
        {"executable": request.getfixturevalue("tap_jsonl")}
        if how == "subprocess"
        else {"tap_class": request.getfixturevalue("tap_jsonl_class")}
    )
    config = SingerSourceConfig(**run, tap_config=jsonl_tap_config(batch_config=batch_config))
    rows = table(read_stream(config, "people"))
    assert list(tmp_path.glob("people-*"))  # the tap really wrote BATCH files
    assert rows.num_rows == PEOPLE
    assert rows.column("signed_up").type == pa.timestamp("us", tz="UTC")
    assert rows.slice(0, 1).to_pylist()[0]["address"] == '{"city":"Lyon","zip":"69000"}'


def test_a_stream_the_tap_does_not_offer_is_a_config_error(subprocess_config):
    source = SingerSource()
    stream = source.discover(subprocess_config).get("people")
    other = type(stream)(name="orders", schema=stream.schema)
    with pytest.raises(ConfigError) as failure:
        list(source.read(subprocess_config, ReadRequest(stream=other, sync_mode=SyncMode.FULL_REFRESH)))
    assert "no stream 'orders'" in str(failure.value)


def test_check_reports_a_missing_executable_as_a_config_error():
    with pytest.raises(ConfigError) as failure:
        SingerSource().check(SingerSourceConfig(executable="tap-that-is-not-installed"))
    assert failure.value.field == "executable"


def test_check_reports_a_tap_rejecting_its_config(tap_jsonl):
    with pytest.raises(ConfigError) as failure:
        SingerSource().check(SingerSourceConfig(executable=tap_jsonl, tap_config={"path": 5}))
    assert "exited with code" in str(failure.value)
    assert failure.value.field == "tap_config"


def test_config_needs_exactly_one_way_to_run_the_tap():
    with pytest.raises(ValueError):
        SingerSourceConfig(executable="tap-x", tap_class="tap_x:TapX")


def test_an_in_process_tap_that_fails_is_a_fatal_error_naming_it(tap_jsonl_class):
    config = SingerSourceConfig(tap_class=tap_jsonl_class, tap_config={"path": 5})
    with pytest.raises(FatalError) as failure:
        SingerSource().discover(config)
    assert "tap_jsonl.tap:TapJsonl (in-process)" in str(failure.value)


def test_a_tap_class_that_cannot_be_imported_is_a_config_error():
    with pytest.raises(ConfigError) as failure:
        SingerSource().check(SingerSourceConfig(tap_class="no_such_tap.tap:TapNothing"))
    assert failure.value.field == "tap_class"
