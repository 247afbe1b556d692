"""`threadline sandbox NAME=PORT --run COMMAND`: sandboxes serve while a command runs."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def threadline(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "threadline", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **(env or {})})


def test_the_rest_example_syncs_against_its_sandbox_started_by_run(tmp_path):
    shutil.copy(ROOT / "examples" / "rest_api" / "job.yaml", tmp_path / "job.yaml")
    port = free_port()
    out = threadline("sandbox", f"rest={port}", "--run", "threadline sync job.yaml", cwd=tmp_path,
                     env={"CRM_BASE_URL": f"http://127.0.0.1:{port}"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"sandbox 'rest' listening on http://127.0.0.1:{port}" in out.stderr
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from crm__customers").fetchall()[0][0] > 0
    con.close()


def test_the_commands_failure_is_the_exit_status(tmp_path):
    out = threadline("sandbox", f"rest={free_port()}", "--run", "threadline sync missing.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "job file 'missing.yaml' does not exist" in out.stderr


def test_an_unknown_sandbox_lists_the_installed_ones(tmp_path):
    out = threadline("sandbox", "hubspott", cwd=tmp_path)
    assert out.returncode == 2 and "no sandbox named 'hubspott'" in out.stderr and "rest" in out.stderr
