"""`threadline sync` and friends as a user runs them: typos in selectors are errors, a
queued sync waits for the DuckDB file too, Ctrl-C stops cleanly, and the job file is
accepted positionally or with --job."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import duckdb
import pytest

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


def files_read(project) -> int:
    try:
        with sqlite3.connect(f"file:{project / '.threadline' / 'state.sqlite'}?mode=ro", uri=True) as db:
            row = db.execute("select state from stream_state").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return len(json.loads(row[0])["files"]) if row else 0


def start_sync_blocked_on_a_fifo(project, *args):
    """A sync that has committed part0..part2 and is waiting to open in/part9.csv (a FIFO)."""
    os.mkfifo(project / "in" / "part9.csv")
    sync = subprocess.Popen([sys.executable, "-m", "threadline", "sync", "job.yaml", *args], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while files_read(project) < 3 and time.monotonic() < deadline and sync.poll() is None:
        time.sleep(0.05)
    assert files_read(project) == 3, "the sync should be waiting on the FIFO"
    return sync


def feed_fifo(project, text: str) -> None:
    with (project / "in" / "part9.csv").open("w") as fifo:  # opens once the sync opens it to read
        fifo.write(text)


# ---------------------------------------------------------------- item 4: selector typos


def test_sync_only_with_an_unknown_source_exits_2_with_did_you_mean_and_records_no_run(project):
    out = threadline("sync", "job.yaml", "--only", "shopx", cwd=project)
    assert out.returncode == 2 and "no source named 'shopx'" in out.stderr and "did you mean 'shop'" in out.stderr
    assert json.loads(threadline("runs", "job.yaml", "--json", cwd=project).stdout) == []


def test_discover_with_an_unknown_source_exits_2_with_did_you_mean(project):
    out = threadline("discover", "job.yaml", "--source", "shpo", cwd=project)
    assert out.returncode == 2 and "no source named 'shpo'" in out.stderr and "did you mean 'shop'" in out.stderr


def test_state_reset_with_an_unknown_source_or_stream_changes_nothing_and_exits_2(project):
    assert threadline("sync", "job.yaml", cwd=project).returncode == 0
    out = threadline("state", "reset", "job.yaml", "--source", "shopp", "--yes", cwd=project)
    assert out.returncode == 2 and "did you mean 'shop'" in out.stderr
    out = threadline("state", "reset", "job.yaml", "--source", "shop", "--stream", "order", "--yes", cwd=project)
    assert out.returncode == 2 and "did you mean 'orders'" in out.stderr
    assert files_read(project) == 3


# ---------------------------------------------------------------- one convention for the job file


@pytest.mark.parametrize("command", [["check"], ["sync"], ["state", "show"], ["runs"], ["discover"]])
def test_every_job_command_takes_the_job_file_positionally_or_with_dash_dash_job(project, command):
    positional = threadline(*command, "job.yaml", cwd=project)
    named = threadline(*command, "--job", "job.yaml", cwd=project)
    assert positional.returncode == named.returncode == 0, (positional.stderr, named.stderr)


def test_a_job_command_without_a_job_file_says_how_to_give_one(project):
    out = threadline("sync", cwd=project)
    assert out.returncode == 2 and "--job job.yaml" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------- item 17: sync --wait


def test_sync_wait_queues_behind_a_running_sync_and_its_duckdb_file(project):
    first = start_sync_blocked_on_a_fifo(project)
    waiting = subprocess.Popen([sys.executable, "-m", "threadline", "sync", "job.yaml", "--wait"], cwd=project,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    assert waiting.poll() is None, "the second sync must wait for the first"
    feed_fifo(project, "order_id,amount\n900,1.0\n")
    assert first.wait(timeout=120) == 0, first.stderr.read()
    # the queued sync sees the pipe written since it was last read, and reads it again
    threading.Thread(target=feed_fifo, args=(project, "order_id,amount\n900,1.0\n"), daemon=True).start()
    out, errors = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, errors
    con = duckdb.connect(str(project / "out.duckdb"))
    assert con.execute("select count(*) from shop__orders").fetchone() == (301,)
    con.close()


def test_a_finished_run_leaves_its_duckdb_file_free_before_the_next_sync_gets_the_job_lock(project):
    from threadline.engine import run_job
    from threadline.job import load_job

    assert run_job(load_job(project / "job.yaml")).ok  # in this process, which lives on
    other_process = subprocess.run([sys.executable, "-c", "import duckdb; duckdb.connect('out.duckdb').execute('select 1')"],
                                   cwd=project, capture_output=True, text=True)
    assert other_process.returncode == 0, other_process.stderr


# ---------------------------------------------------------------- item 18: Ctrl-C


def test_ctrl_c_stops_at_the_next_batch_keeps_what_was_committed_and_exits_130(project):
    sync = start_sync_blocked_on_a_fifo(project)
    sync.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the handler runs while the stream waits for the FIFO
    feed_fifo(project, "order_id,amount\n900,1.0\n901,2.0\n")
    out, errors = sync.communicate(timeout=120)
    assert sync.returncode == 130, errors
    assert "interrupted" in out and "Traceback" not in errors and "Aborted" not in errors
    assert "shop.orders interrupted: stopped by Ctrl-C" in errors
    assert files_read(project) == 3, "part9 was not committed, so its state is not saved"
    runs = json.loads(threadline("runs", "job.yaml", "--json", cwd=project).stdout)
    assert runs[0]["outcome"] == "interrupted"

    (project / "in" / "part9.csv").unlink()
    (project / "in" / "part9.csv").write_text("order_id,amount\n900,1.0\n901,2.0\n")
    again = threadline("sync", "job.yaml", cwd=project)
    assert again.returncode == 0, again.stderr
    con = duckdb.connect(str(project / "out.duckdb"))
    assert con.execute("select count(*), count(distinct order_id) from shop__orders").fetchone() == (302, 302)
    con.close()


def test_state_show_and_runs_need_no_secret_set(project):
    assert threadline("sync", "job.yaml", cwd=project).returncode == 0
    (project / "job.yaml").write_text(JOB.replace("{path: out.duckdb}", "{path: out.duckdb, memory_limit: '${UNSET_DB_SECRET}'}"))
    shown = threadline("state", "show", "job.yaml", cwd=project)
    assert shown.returncode == 0 and "shop.orders" in shown.stdout, shown.stderr
    assert threadline("runs", "job.yaml", cwd=project).returncode == 0
    assert threadline("sync", "job.yaml", cwd=project).returncode == 2  # a sync does need it


# ---------------------------------------------------------------- progress lines off a terminal


def test_off_a_terminal_a_stream_logs_started_without_counts_and_finished_with_them(project):
    out = threadline("sync", "job.yaml", cwd=project)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "threadline.sync" in line and "shop.orders" in line]
    started = [line for line in lines if "started shop.orders" in line]
    finished = [line for line in lines if "finished shop.orders" in line]
    assert len(started) == 1 and started[0].rstrip().endswith("started shop.orders"), lines
    assert len(finished) == 1 and "300 rows read, 0 rejected" in finished[0], lines
    as_json = threadline("--log-format", "json", "sync", "job.yaml", cwd=project)  # nothing new: read 0
    assert as_json.returncode == 0, as_json.stderr
    events = [json.loads(line) for line in as_json.stderr.splitlines() if line.startswith("{")]
    begun = [e for e in events if e.get("event") == "started" and e.get("stream") == "orders"]
    assert begun and begun[0]["rows_read"] == 0, events  # the JSON line keeps every field
