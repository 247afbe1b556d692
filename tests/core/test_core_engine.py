"""The engine's promises: bulk coercion with quarantine, commit-then-state, incremental
cursors that neither skip nor lose records, bounded concurrency."""

import json
import threading
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from threadline.engine import coerce, run_job
from threadline.state import StateStore


# ---------------------------------------------------------------- coercion


def test_coercion_casts_whole_columns_and_isolates_only_the_bad_values():
    batch = pa.record_batch({"id": [str(i) for i in range(10_000)], "n": ["1"] * 9_997 + ["x", "2", "y"]})
    schema = pa.schema([("id", pa.int64()), ("n", pa.int32())])
    result = coerce(batch, schema)
    assert result.good.num_rows == 9_998
    assert result.good.schema.field("n").type == pa.int32()
    assert result.rejected.column("id").to_pylist() == ["9997", "9999"]
    assert result.reasons == ["n: not a valid integer"] * 2


def test_text_dates_are_parsed_with_the_format_the_column_declares():
    schema = pa.schema([pa.field("d", pa.date32(), metadata={"format": "%d.%m.%Y"})])
    result = coerce(pa.record_batch({"d": ["31.12.2024", "12/31/2024", None]}), schema)
    assert [str(v) for v in result.good.column("d").to_pylist()] == ["2024-12-31", "None"]
    assert result.reasons == ["d: not a date in the format %d.%m.%Y"]


def test_rows_with_an_empty_primary_key_are_rejected_not_landed():
    schema = pa.schema([("id", pa.string()), ("x", pa.int64())])
    result = coerce(pa.record_batch({"id": ["a", None], "x": [1, 2]}), schema, ("id",))
    assert result.good.column("id").to_pylist() == ["a"]
    assert result.reasons == ["id: primary key is empty"]


def test_columns_the_schema_does_not_declare_are_kept():
    schema = pa.schema([("id", pa.int64())])
    result = coerce(pa.record_batch({"id": ["1"], "custom_field": ["kept"]}), schema)
    assert result.good.to_pylist() == [{"id": 1, "custom_field": "kept"}]


def test_empty_text_in_a_typed_column_is_null_not_an_error():
    result = coerce(pa.record_batch({"n": ["", " ", "3"]}), pa.schema([("n", pa.int64())]))
    assert result.rejected is None
    assert result.good.column("n").to_pylist() == [None, None, 3]


# ---------------------------------------------------------------- quarantine


def test_rows_that_do_not_fit_are_quarantined_with_reason_source_stream_and_run(memory, tmp_path):
    class BadRows(memory.source):
        def read(self, config, request):
            from threadline.contracts import Batch, Checkpoint
            good = pa.record_batch({"id": ["1", "2", "oops"], "email": ["a@x.io", "b@x.io", "c@x.io"],
                                    "updated_at": ["2026-01-01T00:00:00Z"] * 3})
            yield Batch("people", good)
            yield Checkpoint("people", {})

    memory.registry.sources["memory"] = BadRows
    report = run_job(memory.job(max_rejected_share=0.5), registry=memory.registry)
    assert report.ok
    stream = report.stream("app", "people")
    assert (stream.rows_read, stream.rows_written, stream.rows_rejected) == (3, 2, 1)
    lines = [json.loads(x) for x in open(f"{report.quarantine}/app__people.jsonl")]
    assert lines == [{"run_id": report.run_id, "source": "app", "stream": "people",
                      "reason": "id: not a valid integer",
                      "record": {"id": "oops", "email": "c@x.io", "updated_at": "2026-01-01T00:00:00Z"}}]


def test_the_job_fails_when_the_rejected_share_passes_its_limit(memory):
    class MostlyBad(memory.source):
        def read(self, config, request):
            from threadline.contracts import Batch
            yield Batch("people", pa.record_batch({"id": ["1", "x", "y"]}))

    memory.registry.sources["memory"] = MostlyBad
    report = run_job(memory.job(max_rejected_share=0.5), registry=memory.registry)
    assert not report.ok
    assert "2 of 3 rows (66.7%) could not be used" in report.error
    assert "max_rejected_share" in report.error
    assert memory.destination.tables.get("app__people", []) == []  # the stream was not finished


# ---------------------------------------------------------------- commit, then state


def test_state_saved_before_any_row_landed_survives_a_missing_table(memory):
    # a source records something before its first row (a CDC source: "slot made") and the
    # first write fails: no table exists, yet the next run must get that state back, or the
    # source would find its own slot and refuse it as someone else's
    memory.source.records = [{"id": 1, "email": "1@x.io", "updated_at": memory.ts(1)}]
    first = run_job(memory.job(source_config={"first_checkpoint": {"slot": "made"}},
                               destination_config={"fail_on_write": 1}), registry=memory.registry)
    assert not first.ok and "app__people" not in memory.destination.tables
    second = run_job(memory.job(source_config={"first_checkpoint": {"slot": "made"}}), registry=memory.registry)
    assert second.ok, second.error
    assert memory.source.states_seen[-1].get("slot") == "made"
    assert second.stream("app", "people").note is None  # nothing was ignored

    # once rows have landed, a table that is gone means the destination was reset: read again in full
    memory.destination.tables.clear()
    third = run_job(memory.job(source_config={"first_checkpoint": {"slot": "made"}}), registry=memory.registry)
    assert third.ok and memory.source.states_seen[-1] == {}
    assert "saved state ignored" in third.stream("app", "people").note


def test_state_is_saved_only_after_the_destination_committed(memory, tmp_path):
    memory.source.records = [{"id": i, "email": f"{i}@x.io", "updated_at": memory.ts(1, i)} for i in range(6)]
    # pages of 2: the 2nd page's write fails, so only page 1 was committed
    job = memory.job(destination_config={"fail_on_write": 2})
    report = run_job(job, registry=memory.registry)
    assert not report.ok and "disk full (injected)" in report.error
    saved = StateStore(job.state_dir).get("memjob", "app", "people")
    assert saved == {"page": 0, "cursor": memory.ts(1, 1).isoformat(), "rows_landed": True}
    assert [r["id"] for r in memory.destination.tables["app__people"]] == [0, 1]


def test_a_rerun_after_a_failed_write_lands_every_row_exactly_once(memory):
    memory.source.records = [{"id": i, "email": f"{i}@x.io", "updated_at": memory.ts(1, i)} for i in range(6)]
    assert not run_job(memory.job(destination_config={"fail_on_write": 2}), registry=memory.registry).ok
    memory.destination.writes = 0
    assert run_job(memory.job(), registry=memory.registry).ok
    assert sorted(r["id"] for r in memory.destination.tables["app__people"]) == [0, 1, 2, 3, 4, 5]


# ---------------------------------------------------------------- incremental cursor


def test_records_sharing_the_last_cursor_value_are_not_lost(memory):
    memory.source.records = [{"id": 1, "email": "a", "updated_at": memory.ts(1)},
                             {"id": 2, "email": "b", "updated_at": memory.ts(2)}]
    run_job(memory.job(), registry=memory.registry)
    # a record written later with exactly the boundary timestamp
    memory.source.records.append({"id": 3, "email": "c", "updated_at": memory.ts(2)})
    report = run_job(memory.job(), registry=memory.registry)
    assert report.stream("app", "people").rows_read == 2  # the boundary is read again, nothing earlier
    assert sorted(r["id"] for r in memory.destination.tables["app__people"]) == [1, 2, 3]


def test_the_saved_cursor_never_passes_the_moment_the_sync_started(memory):
    future = datetime.now(timezone.utc) + timedelta(days=3)
    memory.source.records = [{"id": 1, "email": "a", "updated_at": memory.ts(1)},
                             {"id": 2, "email": "b", "updated_at": future}]
    job = memory.job()
    before = datetime.now(timezone.utc)
    run_job(job, registry=memory.registry)
    saved = datetime.fromisoformat(StateStore(job.state_dir).get("memjob", "app", "people")["cursor"])
    assert before - timedelta(seconds=5) <= saved < future
    # the next run starts from the cap, so the record stamped in the future is read again
    assert run_job(job, registry=memory.registry).stream("app", "people").rows_read == 1


def test_a_full_refresh_ignores_the_saved_cursor(memory):
    memory.source.records = [{"id": i, "email": "a", "updated_at": memory.ts(1, i)} for i in range(3)]
    run_job(memory.job(), registry=memory.registry)
    job = memory.job(sources={"app": {"connector": "memory", "streams": {"people": {"sync_mode": "full_refresh"}}}})
    assert run_job(job, registry=memory.registry).stream("app", "people").rows_read == 3


# ---------------------------------------------------------------- concurrency


def test_streams_of_one_source_run_concurrently_up_to_the_limit(memory):
    memory.source.records = [{"id": 1, "email": "a", "updated_at": memory.ts(1)}]
    memory.source.gate = threading.Barrier(2)  # two streams must be inside read() at once to pass
    job = memory.job(concurrency=2, source_config={"streams": ["a", "b", "c", "d"]})
    report = run_job(job, registry=memory.registry)
    assert report.ok, report.error
    assert memory.source.max_active == 2


def test_one_failing_stream_does_not_stop_the_others(memory):
    class HalfBroken(memory.source):
        def read(self, config, request):
            if request.stream.name == "b":
                raise RuntimeError("boom")
            yield from super().read(config, request)

    memory.source.records = [{"id": 1, "email": "a", "updated_at": memory.ts(1)}]
    memory.registry.sources["memory"] = HalfBroken
    report = run_job(memory.job(source_config={"streams": ["a", "b"]}), registry=memory.registry)
    assert report.outcome == "failed"
    assert report.stream("app", "a").outcome == "succeeded"
    assert report.stream("app", "b").outcome == "failed"
    assert "RuntimeError" in report.stream("app", "b").error and "memory" in report.stream("app", "b").error


def test_an_interrupted_full_refresh_resumes_from_its_last_checkpoint(memory):
    seen_states = []

    class Paged(memory.source):
        def read(self, config, request):
            from threadline.contracts import Batch, Checkpoint
            seen_states.append(request.state)
            start = request.state.get("next_page", 0)
            for page in range(start, 3):
                rows = [{"id": page * 10 + i, "email": "x", "updated_at": memory.ts(1)} for i in range(2)]
                yield Batch("people", pa.RecordBatch.from_pylist(rows, schema=memory.schema))
                yield Checkpoint("people", {"next_page": page + 1})

    memory.registry.sources["memory"] = Paged
    streams = {"people": {"sync_mode": "full_refresh"}}
    job = memory.job(sources={"app": {"connector": "memory", "streams": streams}},
                     destination_config={"fail_on_write": 2})
    assert not run_job(job, registry=memory.registry).ok  # page 0 committed, page 1 failed
    memory.destination.writes = 0
    assert run_job(memory.job(sources={"app": {"connector": "memory", "streams": streams}}),
                   registry=memory.registry).ok
    assert seen_states == [{}, {"next_page": 1}]  # the second run picked up where the first stopped
    assert sorted(r["id"] for r in memory.destination.tables["app__people"]) == [0, 1, 10, 11, 20, 21]
    # once finished, the next full refresh starts from the beginning again
    run_job(memory.job(sources={"app": {"connector": "memory", "streams": streams}}), registry=memory.registry)
    assert seen_states[-1] == {}


def test_a_replacing_full_refresh_never_resumes(memory):
    seen_states = []

    class Paged(memory.source):
        def read(self, config, request):
            from threadline.contracts import Batch, Checkpoint
            seen_states.append(request.state)
            for page in range(2):
                rows = [{"id": page, "email": "x", "updated_at": memory.ts(1)}]
                yield Batch("people", pa.RecordBatch.from_pylist(rows, schema=memory.schema))
                yield Checkpoint("people", {"next_page": page + 1})

    memory.registry.sources["memory"] = Paged
    streams = {"people": {"sync_mode": "full_refresh", "write": "replace"}}
    assert not run_job(memory.job(sources={"app": {"connector": "memory", "streams": streams}},
                                  destination_config={"fail_on_write": 2}), registry=memory.registry).ok
    run_job(memory.job(sources={"app": {"connector": "memory", "streams": streams}}), registry=memory.registry)
    assert seen_states == [{}, {}]


def test_an_unsorted_stream_keeps_its_starting_cursor_at_mid_stream_checkpoints(memory):
    from threadline.contracts import Stream

    class Unsorted(memory.source):
        def discover(self, config):
            from threadline.contracts import Catalog
            return Catalog((Stream("people", memory.schema, ("id",), cursor_field="updated_at", cursor_sorted=False),))

    memory.registry.sources["memory"] = Unsorted
    memory.source.records = [{"id": i, "email": "a", "updated_at": memory.ts(1, i)} for i in range(4)]
    job = memory.job()
    run_job(job, registry=memory.registry)
    first = StateStore(job.state_dir).get("memjob", "app", "people")["cursor"]
    assert first == memory.ts(1, 3).isoformat()
    memory.source.records += [{"id": 9, "email": "b", "updated_at": memory.ts(2)}, {"id": 8, "email": "c", "updated_at": memory.ts(3)}]
    # the second run fails after its first page: the checkpoint must not lose the cursor it started from
    memory.destination.writes = 0
    assert not run_job(memory.job(destination_config={"fail_on_write": 2}), registry=memory.registry).ok
    assert StateStore(job.state_dir).get("memjob", "app", "people")["cursor"] == first


def test_a_rate_limit_stop_pauses_the_stream_and_the_run_with_its_state_saved(memory):
    from datetime import datetime, timezone

    from threadline.contracts import Batch, Checkpoint, RateLimitStop

    class Limited(memory.source):
        def read(self, config, request):
            rows = [{"id": 1, "email": "a", "updated_at": memory.ts(1)}]
            yield Batch("people", pa.RecordBatch.from_pylist(rows, schema=memory.schema))
            yield Checkpoint("people", {"page": 1})
            raise RateLimitStop("Stopped cleanly: run the sync again after 12:15:00 UTC",
                                resume_after=datetime(2026, 1, 1, 12, 15, tzinfo=timezone.utc))

    memory.registry.sources["memory"] = Limited
    job = memory.job()
    report = run_job(job, registry=memory.registry)
    assert report.outcome == "paused" and report.stream("app", "people").outcome == "paused"
    assert "run the sync again after 12:15:00 UTC" in report.error
    assert StateStore(job.state_dir).get("memjob", "app", "people")["page"] == 1
    assert [r["id"] for r in memory.destination.tables["app__people"]] == [1]


def test_a_paused_stream_is_not_read_again_until_its_window_resets(memory):
    from datetime import datetime, timedelta, timezone

    from threadline.contracts import Batch, Checkpoint, RateLimitStop
    from threadline.testing.harness import end_rate_limit_pause

    reads = []

    class Limited(memory.source):
        resume = datetime.now(timezone.utc) + timedelta(hours=1)

        def read(self, config, request):
            reads.append(dict(request.state))
            rows = [{"id": 1, "email": "a", "updated_at": memory.ts(1)}]
            yield Batch("people", pa.RecordBatch.from_pylist(rows, schema=memory.schema))
            yield Checkpoint("people", {"page": 1})
            raise RateLimitStop("Stopped cleanly", resume_after=type(self).resume)

    memory.registry.sources["memory"] = Limited
    job = memory.job()
    assert run_job(job, registry=memory.registry).outcome == "paused"
    second = run_job(job, registry=memory.registry)
    assert second.outcome == "paused" and len(reads) == 1  # the vendor was not asked again
    assert "still paused by the vendor's rate limit until" in second.error
    Limited.resume = datetime.now(timezone.utc) - timedelta(seconds=1)
    end_rate_limit_pause(job.state_dir, "memjob", "app", "people")  # the window has reset
    run_job(job, registry=memory.registry)
    assert len(reads) == 2 and "paused_until" not in reads[1]  # read again, the engine's key not passed on


def test_a_caller_that_handles_ctrl_c_itself_keeps_its_handler_during_the_run(memory):
    # follow mode lets a micro-batch finish on the first Ctrl-C: run_job must not swap the
    # handler under it, while a plain sync installs its own stop-at-the-next-batch handler
    import signal

    def followers_handler(signum, frame):
        pass

    memory.source.records = [{"id": 1, "email": "1@x.io", "updated_at": memory.ts(1)}]
    previous = signal.signal(signal.SIGINT, followers_handler)
    try:
        assert run_job(memory.job(), registry=memory.registry, handle_ctrl_c=False).ok
        assert run_job(memory.job(), registry=memory.registry).ok
        assert signal.getsignal(signal.SIGINT) is followers_handler  # given back after the run
    finally:
        signal.signal(signal.SIGINT, previous)
    kept, swapped = memory.source.sigint_handlers_seen
    assert kept is followers_handler and swapped is not followers_handler
