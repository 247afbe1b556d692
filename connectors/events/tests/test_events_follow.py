"""`threadline sync --follow` over the event log: micro-batches, latency, a clean stop."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
from threadline.contracts import Batch, Checkpoint, ReadRequest, Rejected, SyncMode
from threadline_events.config import EventsConfig
from threadline_events.source import EventsSource, first_per_message
from threadline_profiles.engines.duckdb_crypto import connect_file
from threadline_events.testing import (
    THREADLINE,
    WRITE_KEY,
    events_config,
    fill_log,
    free_port,
    profiles_destination,
    shopper_events,
    start_collector,
    write_job,
)


def runs(folder: Path) -> list[tuple]:
    """(run_id, outcome, records, p50, p99) of each run; none while the follower is starting."""
    path = folder / ".threadline" / "state.sqlite"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path) as db:
            return db.execute("select r.run_id, r.outcome, l.records, l.p50, l.p99 from runs r "
                              "left join run_latency l using (run_id) order by r.started_at").fetchall()
    except sqlite3.OperationalError:  # the follower is creating the tables
        return []


def wait_until(condition, seconds: float = 180) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_batch_keeps_the_first_row_of_each_message_id():
    table = pa.table({"message_id": ["a", "b", "a", "c", "b"], "n": [1, 2, 3, 4, 5]})
    assert first_per_message(table).to_pydict() == {"message_id": ["a", "b", "c"], "n": [1, 2, 4]}


def test_the_source_checkpoints_byte_offsets_and_quarantines_a_damaged_line(tmp_path):
    config = EventsConfig.model_validate({"log": str(tmp_path / "events"), "write_keys": {"web": WRITE_KEY},
                                          "batch_bytes": 65536})
    folder = tmp_path / "events" / "web"
    end = fill_log(folder, shopper_events(300))
    with (folder / "00000000000000000000.jsonl").open("ab") as log:
        log.write(b'{"message_id": "broken", "timestamp": "not a time"}\n')
    source = EventsSource()
    stream = source.discover(config).get("web")
    messages = list(source.read(config, ReadRequest(stream, SyncMode.INCREMENTAL, {"offset": 0})))
    offsets = [m.state["offset"] for m in messages if isinstance(m, Checkpoint)]
    assert offsets == sorted(offsets) and len(offsets) > 1 and offsets[-1] > end
    assert sum(m.records.num_rows for m in messages if isinstance(m, Batch)) == 1000
    [rejected] = [m for m in messages if isinstance(m, Rejected)]
    assert "broken" in rejected.records[0]["line"]
    assert source.pending(config, stream, {"offset": 0}, up_to=10_000) == 1001
    assert source.pending(config, stream, {"offset": offsets[-1]}, up_to=10_000) == 0
    again = list(source.read(config, ReadRequest(stream, SyncMode.INCREMENTAL, {"offset": offsets[-1]})))
    assert again == []  # nothing after the last checkpoint


def test_the_follower_runs_micro_batches_as_events_arrive_and_records_their_latency(tmp_path):
    from segment.analytics import Client

    port = free_port()
    job = write_job(tmp_path, events_config(port), profiles_destination())
    collector = start_collector(job, port)
    follower = subprocess.Popen([*THREADLINE, "--log-format", "plain", "sync", str(job), "--follow", "--every", "0.5"],
                                stdout=subprocess.DEVNULL, stderr=(tmp_path / "follower.log").open("wb"), cwd=tmp_path)
    try:
        client = Client(WRITE_KEY, host=collector.url)
        for wave in range(2):
            for n in range(20):
                uid = f"w{wave}-{n}"
                client.identify(uid, {"email": f"{uid}@example.com"})
                client.track(uid, "Checkout Started")
            client.flush()
            wait_until(lambda: sum((r[2] or 0) for r in runs(tmp_path)) >= 40 * (wave + 1))
        settled = len(runs(tmp_path))
        time.sleep(2)
        assert len(runs(tmp_path)) == settled  # idle: no empty micro-batches
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=120) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
        collector.stop()
    recorded = runs(tmp_path)
    assert all(outcome == "succeeded" for _, outcome, *_ in recorded)
    measured = [r for r in recorded if r[2]]
    assert sum(r[2] for r in measured) == 80 and all(0 < r[3] <= r[4] for r in measured)
    shown = subprocess.run([*THREADLINE, "runs", str(job), "--json"], capture_output=True, text=True, cwd=tmp_path)
    latencies = [r["latency"] for r in json.loads(shown.stdout) if r["latency"]]
    assert sum(lat["records"] for lat in latencies) == 80 and all(lat["p50"] > 0 for lat in latencies)

    # the profile store's report shows the same micro-batches, from each record's arrival to its build
    with connect_file(tmp_path / "profiles.duckdb", read_only=True) as db:  # encrypted, its key beside it
        built = db.execute("select records, p50, p99 from tl_latency where stage = 'built'").fetchall()
    assert sum(records for records, *_ in built) == 80 and all(0 < p50 <= p99 for _, p50, p99 in built)
    report = (tmp_path / "profiles_reports" / "latest.html").read_text()
    assert "Event → audience latency" in report and "built p99" in report


def test_sigterm_lets_the_running_micro_batch_finish_then_stops(tmp_path):
    job = write_job(tmp_path, {**events_config(free_port()), "batch_bytes": 65536}, profiles_destination())
    end = fill_log(tmp_path / "events" / "web", shopper_events(2000))
    follower = subprocess.Popen([*THREADLINE, "sync", str(job), "--follow", "--every", "60"],
                                stdout=subprocess.DEVNULL, stderr=(tmp_path / "follower.log").open("wb"), cwd=tmp_path)

    wait_until(lambda: any(outcome == "running" for _, outcome, *_ in runs(tmp_path)))
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=300) == 0
    [(_, outcome, records, *_)] = runs(tmp_path)
    assert outcome == "succeeded" and records == 2000 * 3 + 667  # the whole micro-batch, not a part
    with sqlite3.connect(tmp_path / ".threadline" / "state.sqlite") as db:
        [(state,)] = db.execute("select state from stream_state where stream='web'").fetchall()
    assert json.loads(state)["offset"] == end
    assert "finishing the current micro-batch" in (tmp_path / "follower.log").read_text()


def _waits(job_path: Path, deadline_in: float, moment: float) -> bool:
    """Whether the follower, between micro-batches, still waits after `moment` seconds (events
    are in the log, fewer than --max-events) when its period ends `deadline_in` seconds from now."""
    from threadline.engine.follow import _wait_for_work
    from threadline.engine.runner import plan_job
    from threadline.job import load_job
    from threadline.state import StateStore

    job = load_job(job_path)
    plans, stop = plan_job(job), threading.Event()

    def wait() -> None:
        store = StateStore(job.state_dir)  # its own connection: SQLite handles stay in their thread
        try:
            _wait_for_work(job, plans, store, stop, time.monotonic() + deadline_in, max_events=1_000_000)
        finally:
            store.close()

    waiter = threading.Thread(target=wait)
    waiter.start()
    waiter.join(timeout=moment)
    waiting = waiter.is_alive()
    stop.set()  # a waiting follower lets go when told to stop
    waiter.join()
    return waiting


def test_a_micro_batch_that_outlasted_its_period_is_followed_at_once_and_one_that_did_not_waits(tmp_path):
    job = write_job(tmp_path, events_config(free_port()), profiles_destination())
    fill_log(tmp_path / "events" / "web", shopper_events(5))
    # a generous moment where it must go (a loaded machine is slow to count), a short one where it must wait
    assert not _waits(job, deadline_in=-1, moment=120)  # the period (from the last start) is over: go at once
    assert _waits(job, deadline_in=3600, moment=1)  # within the period, under --max-events: wait
