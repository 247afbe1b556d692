"""The crash suite for a profile build (issue 13): a full build of ~10k synthetic customer
records (three sources, shared and stale emails, nicknames, the agreement rule on) SIGKILLed at
20 seeded points spread over the clean build's own duration, then built again, gives exactly
the profiles and golden records of a build that was never killed.

Each kill runs on a copy of one landed store (with its secret, which keys the tombstones);
each build is a real process, so a kill lands wherever DuckDB happens to be."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from threadline_profiles import ProfileStore
from threadline_profiles.testing import Lander, copy_store, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from synthetic_customers import customers  # noqa: E402

# random kill points per run: 12 keep the suite within its time budget; a longer soak is
# THREADLINE_CRASH_KILLS=100 pytest tests/crash (the points are seeded, so a failure reruns the same)
KILLS = int(os.environ.get("THREADLINE_CRASH_KILLS", "12"))
BUILD = ("import sys\nfrom threadline_profiles import ProfileStore, api\n"
         "with ProfileStore.open({'path': sys.argv[1]}) as store:\n"
         "    api.build(store, report=False, full=True)\n")


def build(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BUILD, str(path)], capture_output=True, text=True, timeout=600)


def profiles_of(path: Path) -> dict:
    with ProfileStore.open({"path": str(path)}) as store:
        found = snapshot(store, with_ids=False)
    return {"profiles": found["profiles"], "golden": found["golden"]}


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("landed")
    data = customers(4000, seed=3)
    lander = Lander({"path": str(folder / "p.duckdb"), "resolve_on_finish": False, "mappings": data.mappings})
    for key, table in data.tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table)
    return folder / "p.duckdb"


@pytest.fixture(scope="module")
def clean(tmp_path_factory, landed):
    path = copy_store(landed, tmp_path_factory.mktemp("clean") / "p.duckdb")
    started = time.monotonic()
    out = build(path)
    seconds = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    found = profiles_of(path)
    assert len(found["profiles"]) > 1000
    return found, seconds


KILL_AT = [random.Random(71 + k).uniform(0.1, 0.95) for k in range(KILLS)]  # share of the clean build's wall time


@pytest.mark.parametrize("share", KILL_AT, ids=[f"kill{k:02d}-at{s:.0%}" for k, s in enumerate(KILL_AT)])
def test_a_build_killed_at_a_random_point_then_built_again_equals_a_clean_build(tmp_path, landed, clean, share):
    found, seconds = clean
    path = copy_store(landed, tmp_path / "p.duckdb")
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(share * seconds)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = build(path)
    assert again.returncode == 0, again.stderr
    assert profiles_of(path) == found
