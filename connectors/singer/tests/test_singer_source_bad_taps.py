"""Taps that misbehave: each gets a clear error, and nothing before the last checkpoint is lost."""

from __future__ import annotations

import time

import pytest

from threadline.contracts import Batch, Checkpoint, FatalError, Rejected
from threadline.secrets import register_secret


def batches(messages: list) -> list:
    return [m for m in messages if isinstance(m, Batch)]


def ids(messages: list) -> list[int]:
    return [row["id"] for b in batches(messages) for row in b.records.to_pylist()]


def last_checkpoint(messages: list) -> Checkpoint:
    return [m for m in messages if isinstance(m, Checkpoint)][-1]


def test_a_well_behaved_tap_yields_records_then_checkpoints(broken_tap, read_stream):
    messages = read_stream(broken_tap("ok"), "items")
    assert ids(messages) == [0, 1, 2, 3, 4]
    assert last_checkpoint(messages).state == {"singer_state": {"bookmarks": {"items": {"position": 5}}}}


def test_records_before_a_state_message_come_before_its_checkpoint(broken_tap, read_stream):
    messages = read_stream(broken_tap("ok"), "items")
    first_checkpoint = next(i for i, m in enumerate(messages) if isinstance(m, Checkpoint))
    assert ids(messages[:first_checkpoint]) == [0, 1, 2]


def test_a_tap_crashing_midway_fails_after_its_last_checkpoint(broken_tap, read_stream):
    seen: list = []
    with pytest.raises(FatalError) as failure:
        read_stream(broken_tap("crash"), "items", into=seen)
    assert "exited with code 1" in str(failure.value)
    assert "the API went away" in str(failure.value)  # the tap's own last words
    assert last_checkpoint(seen).state["singer_state"]["bookmarks"]["items"]["position"] == 3
    assert ids(seen) == [0, 1, 2]  # records after the last STATE are not handed on


def test_a_crashing_tap_resumes_from_the_state_it_last_confirmed(broken_tap, read_stream):
    seen: list = []
    with pytest.raises(FatalError):
        read_stream(broken_tap("crash"), "items", into=seen)
    resumed = read_stream(broken_tap("ok"), "items", state=last_checkpoint(seen).state)
    assert ids(resumed) == [3, 4, 5, 6, 7]


def test_secrets_in_a_crashing_taps_stderr_are_masked(broken_tap, read_stream):
    register_secret("s3cr3t-token")
    with pytest.raises(FatalError) as failure:
        read_stream(broken_tap("crash"), "items")
    assert "s3cr3t-token" not in str(failure.value)
    assert "token=***" in str(failure.value)


def test_invalid_json_on_stdout_names_the_line_and_keeps_the_checkpoint(broken_tap, read_stream):
    seen: list = []
    with pytest.raises(FatalError) as failure:
        read_stream(broken_tap("invalid_json"), "items", into=seen)
    assert "line 7" in str(failure.value)  # SCHEMA, 3 RECORDs, STATE, RECORD, then the bad line
    assert "DEBUG fetching page 2" in str(failure.value)
    assert last_checkpoint(seen).state["singer_state"]["bookmarks"]["items"]["position"] == 3


def test_a_record_before_its_schema_is_an_error_naming_the_stream(broken_tap, read_stream):
    with pytest.raises(FatalError) as failure:
        read_stream(broken_tap("record_before_schema"), "items")
    assert "RECORD for stream 'items' before any SCHEMA" in str(failure.value)


def test_a_tap_that_never_exits_is_stopped_after_the_idle_timeout(broken_tap, read_stream):
    seen: list = []
    started = time.monotonic()
    with pytest.raises(FatalError) as failure:
        read_stream(broken_tap("hang", idle_timeout=1.5), "items", into=seen)
    assert time.monotonic() - started < 30
    assert "wrote nothing for 1.5 s and was stopped" in str(failure.value)
    assert "idle_timeout" in failure.value.hint
    assert last_checkpoint(seen).state["singer_state"]["bookmarks"]["items"]["position"] == 5


def test_a_field_changing_type_mid_stream_stops_the_read(broken_tap, read_stream):
    seen: list = []
    with pytest.raises(FatalError) as failure:
        read_stream(broken_tap("type_change"), "items", into=seen)
    assert "field 'id' changed from int64 to string" in str(failure.value)
    assert "discover" in failure.value.hint
    assert ids(seen) == [0, 1, 2]


def test_a_new_field_mid_stream_stops_the_read_rather_than_drop_it(broken_tap, read_stream):
    with pytest.raises(FatalError) as failure:
        read_stream(broken_tap("new_field"), "items")
    assert "new field 'email'" in str(failure.value)


def test_a_compatible_schema_change_mid_stream_is_accepted(broken_tap, read_stream):
    messages = read_stream(broken_tap("compatible_change"), "items")
    assert ids(messages) == [0, 1, 2, 3]
    assert batches(messages)[-1].records.schema.names == ["id"]


def test_a_value_of_the_wrong_type_is_rejected_with_a_reason_and_the_rest_kept(broken_tap, read_stream):
    messages = read_stream(broken_tap("bad_value"), "items")
    rejected = [m for m in messages if isinstance(m, Rejected)]
    assert ids(messages) == [0, 1, 2, 3]
    assert len(rejected) == 1
    assert "not a number" in rejected[0].records[0]["message"]
    assert rejected[0].reason


def test_records_of_unselected_streams_are_ignored(broken_tap, read_stream):
    messages = read_stream(broken_tap("other_streams"), "items")
    assert ids(messages) == [0, 1, 2, 3]
