"""The `threadline` command, run as a user runs it: in a subprocess, reading its output."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from threadline.state import job_lock

JOB = """\
name: clitest
sources:
  shop:
    connector: files
    config:
      streams:
        - name: orders
          path: in/*.csv
          primary_key: [order_id]
destinations:
  db:
    connector: duckdb
    config: {path: out.duckdb}
"""


def threadline(*args, cwd, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "threadline", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def project(tmp_path):
    (tmp_path / "in").mkdir()
    for part in range(3):
        rows = "\n".join(f"{part * 100 + i},{i * 1.5}" for i in range(100))
        (tmp_path / "in" / f"part{part}.csv").write_text(f"order_id,amount\n{rows}\n")
    (tmp_path / "job.yaml").write_text(JOB)
    return tmp_path


def test_plugins_lists_the_installed_plugins(project):
    out = threadline("plugins", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["files"]["sources"] == ["files"] and plugins["duckdb"]["destinations"] == ["duckdb"]


def test_check_prints_a_table_of_what_passed(project):
    out = threadline("check", "job.yaml", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "shop" in out.stdout and "db" in out.stdout and out.stdout.count("ok") >= 3


def test_check_fails_with_the_field_and_what_to_do(project):
    (project / "job.yaml").write_text(JOB.replace("in/*.csv", "inbox/*.csv"))
    out = threadline("check", "job.yaml", cwd=project)
    assert out.returncode == 2
    assert "failed" in out.stdout
    assert "no file matches 'inbox/*.csv'" in out.stderr and "job.yaml:8 at sources.shop.config.streams[0].path" in out.stderr


def test_an_unknown_connector_exits_2_with_no_stack_trace(project):
    (project / "job.yaml").write_text(JOB.replace("connector: files", "connector: no_such_crm"))
    out = threadline("sync", "job.yaml", cwd=project)
    assert out.returncode == 2
    assert "no source connector named 'no_such_crm' is installed" in out.stderr
    assert "Traceback" not in out.stderr


def test_sync_then_state_and_runs_show_what_happened(project):
    out = threadline("sync", "job.yaml", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "succeeded" in out.stdout and "300" in out.stdout
    state = threadline("state", "show", "job.yaml", cwd=project)
    assert "shop.orders" in state.stdout and "in/part2.csv" in state.stdout
    runs = threadline("runs", "job.yaml", "--json", cwd=project)
    (run,) = json.loads(runs.stdout)
    assert run["outcome"] == "succeeded" and run["streams"][0]["rows_written"] == 300
    reset = threadline("state", "reset", "job.yaml", "--yes", cwd=project)
    assert "forgot the state of 1 stream(s)" in reset.stdout
    assert "no saved state" in threadline("state", "show", "job.yaml", cwd=project).stdout


def test_log_lines_are_json_when_asked(project):
    out = threadline("--log-format", "json", "sync", "job.yaml", cwd=project)
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    finished = [e for e in events if e.get("event") == "finished"]
    assert finished and finished[0]["rows_read"] == 300 and finished[0]["stream"] == "orders"


def test_a_second_sync_of_a_running_job_stops_with_a_clear_message(project):
    with job_lock(project / ".threadline", "clitest"):
        out = threadline("sync", "job.yaml", cwd=project)
    assert out.returncode == 2
    assert "job 'clitest' is already being synced (pid" in out.stderr and "--wait" in out.stderr


def test_a_sync_killed_mid_run_resumes_and_lands_every_row_exactly_once(project):
    # The source blocks opening a FIFO after two files are committed: a deterministic place to kill.
    fifo = project / "in" / "part9.csv"
    os.mkfifo(fifo)
    sync = subprocess.Popen([sys.executable, "-m", "threadline", "sync", "job.yaml"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state_db = project / ".threadline" / "state.sqlite"
    deadline = time.monotonic() + 60
    files_done = 0
    while files_done < 3 and time.monotonic() < deadline and sync.poll() is None:
        time.sleep(0.05)
        try:
            with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True) as db:
                row = db.execute("select state from stream_state").fetchone()
        except sqlite3.OperationalError:  # not created yet
            continue
        files_done = len(json.loads(row[0])["files"]) if row else 0
    assert files_done == 3, "the sync should have committed part0..part2 and be waiting on the FIFO"
    sync.send_signal(signal.SIGKILL)
    sync.wait()
    fifo.unlink()
    (project / "in" / "part9.csv").write_text("order_id,amount\n150,9.99\n900,1.0\n")  # 150 re-sent, 900 new

    out = threadline("sync", "job.yaml", cwd=project)
    assert out.returncode == 0, out.stderr
    con = duckdb.connect(str(project / "out.duckdb"))
    total, distinct = con.execute("select count(*), count(distinct order_id) from shop__orders").fetchone()
    assert (total, distinct) == (301, 301)
    assert con.execute("select amount from shop__orders where order_id = 150").fetchone() == (9.99,)
    con.close()
    runs = json.loads(threadline("runs", "job.yaml", "--json", cwd=project).stdout)
    assert [r["outcome"] for r in runs] == ["succeeded", "killed"]
