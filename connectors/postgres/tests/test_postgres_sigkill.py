"""SIGKILL `threadline sync` at random points — at least 20 during the initial snapshot and 20
while it reads changes — while the source table keeps changing (inserts, updates, deletes).
After a final sync the destination equals the source exactly: no row lost, none doubled,
every delete applied."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

from threadline_postgres.testing import TEST_DSN, execute

from pg_jobs import landed, source_rows
from sync_zygote import Zygote

ROWS = 600_000
KILLS = 20
SEED = int(os.environ.get("THREADLINE_KILL_SEED", "17"))


class Writer(threading.Thread):
    """Random small transactions against the source until stopped."""

    def __init__(self, schema: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.schema, self.rng = schema, random.Random(seed)
        self.stop = threading.Event()
        self.next_id = ROWS + 1
        self.changes = 0

    def run(self) -> None:
        table = f'"{self.schema}".customers'
        with psycopg.connect(TEST_DSN, autocommit=True) as con:
            while not self.stop.is_set():
                ids = [self.rng.randint(1, self.next_id) for _ in range(20)]
                with con.transaction():
                    con.execute(f"insert into {table} select g, md5(g::text), 0 from generate_series(%s::int, %s::int) g",
                                (self.next_id, self.next_id + 9))
                    con.execute(f"update {table} set visits = visits + 1, email = md5(random()::text) where id = any(%s)",
                                (ids[:10],))
                    con.execute(f"delete from {table} where id = any(%s)", (ids[10:15],))
                    con.execute(f"update {table} set id = id + 10000000 where id = %s", (ids[15],))  # a key changes
                self.next_id += 10
                self.changes += 27
                time.sleep(0.005)


def _phase(workdir: Path) -> str | None:
    path = workdir / ".threadline" / "state.sqlite"
    if not path.exists():
        return None
    with sqlite3.connect(path) as db:
        try:
            row = db.execute("select state from stream_state where stream = 'customers'").fetchone()
        except sqlite3.OperationalError:  # the run has created the file but not yet its tables
            return None
    return json.loads(row[0]).get("phase") if row else None


def _sync_and_maybe_kill(zygote: Zygote, job: Path, delay: float) -> bool:
    """Start a sync and SIGKILL it after `delay` seconds; False when it ended by itself first."""
    pid = zygote.run(job)
    started = time.monotonic()
    while time.monotonic() - started < delay:
        if zygote.status(pid) != "running":
            return False
        time.sleep(0.005)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended (and was reaped) just now
        return False
    while zygote.status(pid) == "running":
        time.sleep(0.01)
    return zygote.status(pid) == "-9"


def _start_over(schema: str, workdir: Path) -> None:
    """A finished snapshot leaves no snapshot to kill: drop the slot, the state and the table."""
    execute("select pg_drop_replication_slot(%s)", (f"{schema}_customers",))
    (workdir / ".threadline" / "state.sqlite").unlink()
    for suffix in ("", ".wal"):
        Path(f"{workdir / 'wh.duckdb'}{suffix}").unlink(missing_ok=True)


@pytest.mark.timeout(900)
def test_sigkill_during_the_snapshot_and_during_cdc_loses_and_doubles_nothing(cdc_schema, tmp_path):
    schema = cdc_schema
    execute(f'create table "{schema}".customers (id int primary key, email text, visits int)')
    execute(f'insert into "{schema}".customers select g, md5(g::text), 0 from generate_series(1, {ROWS}) g')
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({
        "name": "killed",
        "sources": {"db": {"connector": "postgres", "config": {
            "dsn": TEST_DSN, "schemas": [schema], "checkpoint_rows": 10000,
            "replication": {"slot": schema, "publication": schema}}}},
        "destinations": {"wh": {"connector": "duckdb", "config": {"path": "wh.duckdb"}}},
        "concurrency": 1,
    }))
    rng = random.Random(SEED)
    writer = Writer(schema, SEED)
    zygote = Zygote()
    try:
        writer.start()
        snapshot_kills, rounds, deadline = 0, 1, time.monotonic() + 300
        while snapshot_kills < KILLS and time.monotonic() < deadline:
            killed = _sync_and_maybe_kill(zygote, job, rng.uniform(0.15, 1.0))
            if killed and _phase(tmp_path) in (None, "creating", "snapshot"):
                snapshot_kills += 1
            elif _phase(tmp_path) == "streaming" and snapshot_kills < KILLS:
                _start_over(schema, tmp_path)
                rounds += 1
        cdc_kills, deadline = 0, time.monotonic() + 300
        while cdc_kills < KILLS and time.monotonic() < deadline:
            if _phase(tmp_path) != "streaming":  # finish the snapshot first
                _sync_and_maybe_kill(zygote, job, 120)
                continue
            time.sleep(rng.uniform(0, 0.3))  # let changes pile up
            if _sync_and_maybe_kill(zygote, job, rng.uniform(0.05, 0.6)):
                cdc_kills += 1
        writer.stop.set()
        writer.join()
        finals = [zygote.status(pid) for pid in [zygote.run(job)] if _wait(zygote, pid)]
    finally:
        writer.stop.set()
        zygote.close()
    log = (tmp_path / "syncs.log").read_text(errors="replace") if (tmp_path / "syncs.log").exists() else ""
    assert snapshot_kills >= KILLS and cdc_kills >= KILLS, (snapshot_kills, cdc_kills)
    assert finals == ["0"], log[-3000:]
    assert writer.changes > 1000, "the source hardly changed while the syncs ran"
    want = source_rows(schema, "customers", "id, email, visits")
    print(f"{snapshot_kills} kills in {rounds} snapshot(s), {cdc_kills} while reading changes; "
          f"{writer.changes:,} changes made meanwhile; {len(want):,} rows at the end")
    got = landed(tmp_path, "db__customers", "id, email, visits")
    assert landed(tmp_path, "db__customers", "count(*) - count(distinct id)", "1") == [(0,)], "rows doubled"
    missing, extra = set(want) - set(got), set(got) - set(want)
    assert not missing and not extra, (f"{len(missing)} rows missing or stale, e.g. {sorted(missing)[:3]}; "
                                       f"{len(extra)} rows extra or stale, e.g. {sorted(extra)[:3]}")


def _wait(zygote: Zygote, pid: int, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while zygote.status(pid) == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
