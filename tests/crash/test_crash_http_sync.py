"""The crash suite for an HTTP sync (issue 13): `threadline sync` of the HubSpot sandbox,
incremental, SIGKILLed at 20 seeded points spread over its own measured duration, then rerun,
lands exactly what a sync that was never killed lands: every record once, its last version.

The sandbox runs in this process; each sync is a real `threadline` process talking to it over
loopback. Kill points are fractions of the clean sync's wall time, so they spread over the
whole sync however fast the machine is; the suite is bounded by the number of kills."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

pytest.importorskip("threadline_hubspot", reason="threadline-hubspot is not installed (python3 dev.py setup installs it)")
from threadline_hubspot.sandbox import HubspotSandbox  # noqa: E402

KILLS = 20
STREAMS = ("contacts", "companies", "deals")
JOB = """\
name: crash_http
concurrency: 1
sources:
  hs:
    connector: hubspot
    config:
      base_url: {base_url}
      access_token: {token}
      page_size: 100
      search_page_size: 100
      requests_per_10_seconds: null
      search_requests_per_second: null
    streams:
      contacts: {{sync_mode: incremental, write: upsert}}
      companies: {{sync_mode: incremental, write: upsert}}
      deals: {{sync_mode: incremental, write: upsert}}
destinations:
  db:
    connector: duckdb
    config: {{path: out.duckdb}}
"""


@pytest.fixture(scope="module")
def hubspot():
    with HubspotSandbox(seed=11, contacts=2000, companies=200, deals=600, rate_limit=1_000_000) as box:
        yield box


def make_project(folder: Path, box: HubspotSandbox) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.yaml").write_text(JOB.format(base_url=box.base_url, token=box.TOKEN))
    return folder


def sync(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "threadline", "sync", "job.yaml"], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def landed(folder: Path) -> dict[str, list[tuple]]:
    """Each stream's table without threadline's own lineage columns, sorted."""
    con = duckdb.connect(str(folder / "out.duckdb"), read_only=True)
    try:
        out = {}
        for stream in STREAMS:
            table = f"hs__{stream}"
            columns = [c for (c,) in con.execute(
                "select column_name from information_schema.columns where table_name = ? "
                "order by column_name <> 'id', column_name",
                [table]).fetchall() if not c.startswith("_threadline")]
            select = ", ".join(f'"{c}"::varchar' for c in columns)
            out[stream] = con.execute(f"select {select} from {table} order by 1").fetchall()
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def clean(tmp_path_factory, hubspot):
    folder = make_project(tmp_path_factory.mktemp("clean"), hubspot)
    started = time.monotonic()
    out = sync(folder)
    seconds = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    rows = landed(folder)
    for stream in STREAMS:
        ids = [r[0] for r in rows[stream]]
        assert ids and len(ids) == len(set(ids)), f"{stream}: the clean sync landed no rows or a row twice"
    return rows, seconds


KILL_AT = [random.Random(31 + k).uniform(0.15, 0.95) for k in range(KILLS)]  # share of the clean sync's wall time


@pytest.mark.parametrize("share", KILL_AT, ids=[f"kill{k:02d}-at{s:.0%}" for k, s in enumerate(KILL_AT)])
def test_an_http_sync_killed_at_a_random_point_then_rerun_lands_exactly_the_clean_result(tmp_path, hubspot, clean, share):
    rows, seconds = clean
    folder = make_project(tmp_path / "job", hubspot)
    proc = subprocess.Popen([sys.executable, "-m", "threadline", "sync", "job.yaml"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(share * seconds)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = sync(folder)
    assert rerun.returncode == 0, rerun.stderr
    assert landed(folder) == rows
