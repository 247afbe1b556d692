"""The fuzz test (issue 13): with a fixed seed and a time bound, at least 300 mutated job files
and at least 300 malformed data files go through `threadline check` and `threadline sync`, and
no case shows the user a stack trace or crashes the process: every one ends in success or in
a clear error (exit 0, 1 or 2).

The cases run in a worker process (tests/fuzz/fuzz_worker.py), many per process, so a
segfault is caught as the worker dying, naming the case it was on."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SEED = 13
CASES = 320  # per kind; at least 300 must finish inside the time bound
TIME_BOUND = 420.0  # seconds per kind, generous for a loaded 2-core machine


def load_cases():
    spec = importlib.util.spec_from_file_location("fuzz_cases", HERE / "fuzz_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_worker(folders: list[Path], commands: list[list[str]]) -> list[dict]:
    worker = subprocess.run(
        [sys.executable, str(HERE / "fuzz_worker.py"), json.dumps(commands), str(TIME_BOUND)],
        input="\n".join(map(str, folders)) + "\n", capture_output=True, text=True, timeout=TIME_BOUND + 300,
    )
    lines = [json.loads(line) for line in worker.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    finished = [line for line in lines if "results" in line]
    assert worker.returncode == 0, (
        f"the worker died (exit {worker.returncode}) on {started[-1] if started else '?'}: {worker.stderr[-3000:]}")
    return finished


def assert_no_traceback(finished: list[dict]) -> None:
    bad = [(case["case"], r) for case in finished for r in case["results"]
           if r["unhandled"] or r["traceback"] or r["exit"] not in (0, 1, 2)]
    assert not bad, "\n\n".join(f"{case}: {r['command']} exit {r['exit']}\n{r['detail']}" for case, r in bad[:5])


def test_mutated_job_files_never_show_a_traceback(tmp_path):
    cases = load_cases()
    rng = random.Random(SEED)
    folders = []
    for i in range(CASES):
        folder = tmp_path / "jobs" / "deep" / f"case{i:03d}"
        cases.write_job_case(folder, cases.mutated_job(rng))
        folders.append(folder)
    finished = run_worker(folders, [["check"], ["sync"]])
    assert len(finished) >= 300, f"only {len(finished)} job files ran inside {TIME_BOUND:.0f}s"
    assert_no_traceback(finished)


def test_malformed_data_files_never_show_a_traceback_nor_crash(tmp_path):
    cases = load_cases()
    rng = random.Random(SEED)
    folders = []
    for i in range(CASES):
        folder = tmp_path / "data" / "deep" / f"case{i:03d}"
        ext, data = cases.malformed_data(rng)
        cases.write_data_case(folder, ext, data, first=rng.random() < 0.4)
        folders.append(folder)
    finished = run_worker(folders, [["sync"]])
    assert len(finished) >= 300, f"only {len(finished)} data files ran inside {TIME_BOUND:.0f}s"
    assert_no_traceback(finished)
