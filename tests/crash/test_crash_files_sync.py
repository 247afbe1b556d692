"""The crash suite for a files sync (issue 13): a sync SIGKILLed at 24 random points — before
its first commit, between files, inside a file, while DuckDB commits — and rerun, lands
exactly what a sync that was never killed lands: every row once, the last version of each.

Kill points are drawn with a fixed seed as (files committed so far, a delay after that), so
they spread over the whole sync however fast the machine is; the suite is bounded by the
number of kills, not by time."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

KILLS = 24
FILES = 6
ROWS_PER_FILE = 4_000
JOB = """\
name: crash
sources:
  shop:
    connector: files
    config:
      streams:
        - name: orders
          path: in/*.csv
          primary_key: [order_id]
          batch_bytes: 65536
destinations:
  db:
    connector: duckdb
    config: {path: out.duckdb}
max_rejected_share: 0.01
"""


def make_project(folder: Path) -> Path:
    """Files whose later parts update earlier orders (upserts) and hold one ragged line."""
    (folder / "in").mkdir(parents=True)
    rng = random.Random(7)
    for part in range(FILES):
        lines = ["order_id,customer,amount,status"]
        for i in range(ROWS_PER_FILE):
            order = part * ROWS_PER_FILE + i if i % 5 else rng.randrange(0, (part + 1) * ROWS_PER_FILE)  # 1 in 5 an update
            lines.append(f"{order},c{rng.randrange(1000)},{rng.randrange(1, 10**6) / 100},{'paid' if i % 3 else 'open'}")
        if part == 3:
            lines.insert(100, "999999,broken,line")  # a ragged row: quarantined, every time
        (folder / "in" / f"part{part:02d}.csv").write_text("\n".join(lines) + "\n")
    (folder / "job.yaml").write_text(JOB)
    return folder


def sync(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "threadline", "sync", "job.yaml"], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def landed(folder: Path) -> list[tuple]:
    con = duckdb.connect(str(folder / "out.duckdb"), read_only=True)
    try:
        return con.execute("select order_id, customer, amount, status from shop__orders order by order_id").fetchall()
    finally:
        con.close()


def files_committed(folder: Path) -> int:
    try:
        with sqlite3.connect(f"file:{folder / '.threadline' / 'state.sqlite'}?mode=ro", uri=True) as db:
            row = db.execute("select state from stream_state").fetchone()
    except sqlite3.OperationalError:
        return 0
    return len(json.loads(row[0]).get("files", {})) if row else 0


def kill_at(folder: Path, after_files: int, delay: float) -> None:
    """Start a sync; SIGKILL it `delay` seconds after `after_files` files are committed."""
    proc = subprocess.Popen([sys.executable, "-m", "threadline", "sync", "job.yaml"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while files_committed(folder) < after_files and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = make_project(tmp_path_factory.mktemp("clean"))
    out = sync(folder)
    assert out.returncode == 0, out.stderr
    rows = landed(folder)
    assert len(rows) == len({r[0] for r in rows}) > FILES * ROWS_PER_FILE // 2
    return rows


KILL_POINTS = [(random.Random(13 + k).randrange(0, FILES), random.Random(99 + k).uniform(0, 0.6)) for k in range(KILLS)]


@pytest.mark.parametrize("after_files, delay", KILL_POINTS, ids=[f"kill{k:02d}-after{f}files+{d:.2f}s" for k, (f, d) in enumerate(KILL_POINTS)])
def test_a_sync_killed_at_a_random_point_then_rerun_lands_exactly_the_clean_result(tmp_path, clean, after_files, delay):
    folder = make_project(tmp_path)
    kill_at(folder, after_files, delay)
    rerun = sync(folder)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert landed(folder) == clean
    assert files_committed(folder) == FILES  # and the state says every file is read: the next sync reads none
