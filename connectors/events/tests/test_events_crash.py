"""Faults: the collector SIGKILLed while a client keeps sending, the follower SIGKILLed in the
middle of a micro-batch. Nothing acknowledged is lost, nothing refused gets in, nothing doubles."""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import requests
from threadline_events.testing import (
    THREADLINE,
    WRITE_KEY,
    events_config,
    fill_log,
    free_port,
    profiles_destination,
    shopper_events,
    start_collector,
    sync,
    write_job,
)


class RetryingSender(threading.Thread):
    """Sends numbered batches; retries one until it is answered (as the official clients do on
    connection errors and 5xx). Every 5th batch goes with a wrong write key first: refused, it
    is never sent again. Records what was acknowledged and what was refused."""

    def __init__(self, url: str, batches: int, size: int = 20) -> None:
        super().__init__(daemon=True)
        self.url, self.batches, self.size = url, batches, size
        self.acknowledged: list[str] = []
        self.refused: list[str] = []
        self.retries = 0

    def run(self) -> None:
        session = requests.Session()
        for b in range(self.batches):
            ids = [f"b{b}-e{e}" for e in range(self.size)]
            batch = {"batch": [{"type": "track", "userId": f"u{b}", "event": "Viewed", "messageId": i} for i in ids]}
            key = "not-the-write-key" if b % 5 == 4 else WRITE_KEY
            while True:
                try:
                    answer = session.post(f"{self.url}/v1/batch", json=batch, auth=(key, ""), timeout=5)
                except requests.RequestException:
                    self.retries += 1
                    time.sleep(0.02)
                    continue
                if answer.status_code >= 500 or answer.status_code == 429:
                    self.retries += 1
                    time.sleep(0.02)
                    continue
                (self.acknowledged if answer.status_code == 200 else self.refused).extend(ids)
                break


def test_a_collector_killed_mid_stream_loses_no_acknowledged_event_and_doubles_none(tmp_path):
    port = free_port()
    job = write_job(tmp_path, events_config(port))
    collector = start_collector(job, port)
    sender = RetryingSender(collector.url, batches=400)
    sender.start()
    rng = random.Random(7)
    kills = 0
    try:
        while sender.is_alive() and kills < 3:
            # kill after the sender got further by some batches, not after a time: a fast collector
            # would otherwise take all 400 batches before the third kill
            wanted = len(sender.acknowledged) + sender.size * rng.randint(20, 60)
            deadline = time.monotonic() + 60
            while sender.is_alive() and len(sender.acknowledged) < wanted and time.monotonic() < deadline:
                time.sleep(0.01)
            collector.stop(signal.SIGKILL)  # mid-stream: requests in flight, lines half written
            kills += 1
            collector = start_collector(job, port)
        sender.join(timeout=300)
    finally:
        collector.stop()
    assert not sender.is_alive()
    assert kills == 3 and sender.retries > 0  # the kills did interrupt the stream

    result = sync(job)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "store.duckdb"), read_only=True) as db:
        stored = [r[0] for r in db.sql("SELECT message_id FROM site__web").fetchall()]
    assert len(stored) == len(set(stored))  # exactly once
    assert set(sender.acknowledged) <= set(stored)  # every acknowledged event
    assert not set(sender.refused) & set(stored)  # none that was refused
    assert len(sender.refused) == 80 * 20


def _store_contents(folder: Path) -> dict[str, list]:
    from threadline_profiles.engines.duckdb_crypto import connect_file

    with connect_file(folder / "profiles.duckdb", read_only=True) as db:  # the profile store, encrypted or not
        return {
            "raw": db.sql("SELECT message_id, type, event, user_id, email, order_id, total, timestamp FROM raw_site__web "
                          "ORDER BY message_id").fetchall(),
            "members": db.sql("SELECT record_key, profile_id FROM tl_members ORDER BY record_key").fetchall(),
            "profiles": db.sql("SELECT profile_id, records FROM tl_profiles ORDER BY profile_id").fetchall(),
            "audiences": db.sql("SELECT audience, profile_id FROM tl_audience_members WHERE to_seq IS NULL "
                                "ORDER BY audience, profile_id").fetchall(),
        }


def _saved_offset(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(state) as db:
            row = db.execute("select state from stream_state where source='site' and stream='web'").fetchone()
    except sqlite3.OperationalError:  # the follower is still creating it
        return 0
    return json.loads(row[0]).get("offset", 0) if row else 0


def test_a_follower_killed_mid_micro_batch_reruns_to_the_store_an_uninterrupted_run_makes(tmp_path):
    config = {**events_config(free_port()), "batch_bytes": 65536}  # many checkpoints in one micro-batch
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for folder in (killed, clean):
        folder.mkdir()
        write_job(folder, config, profiles_destination())
    end = fill_log(killed / "events" / "web", shopper_events(3000))
    shutil.copytree(killed / "events", clean / "events")

    follower = subprocess.Popen([*THREADLINE, "sync", str(killed / "job.yaml"), "--follow", "--every", "0.5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=killed)
    deadline = time.monotonic() + 240
    while _saved_offset(killed / ".threadline" / "state.sqlite") == 0 and time.monotonic() < deadline:
        assert follower.poll() is None, "the follower ended before it was killed"
        time.sleep(0.02)
    follower.send_signal(signal.SIGKILL)  # mid-micro-batch: some checkpoints saved, the rest not
    follower.wait()
    assert 0 < _saved_offset(killed / ".threadline" / "state.sqlite") < end

    rerun = sync(killed / "job.yaml")
    assert rerun.returncode == 0, rerun.stderr
    uninterrupted = sync(clean / "job.yaml")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert _saved_offset(killed / ".threadline" / "state.sqlite") == _saved_offset(clean / ".threadline" / "state.sqlite") == end
    after_kill, without = _store_contents(killed), _store_contents(clean)
    assert len(without["raw"]) == 10000 and len(without["profiles"]) == 3000
    assert after_kill == without
