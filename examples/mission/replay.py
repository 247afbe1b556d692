"""Replay three months of the mission against the running sandboxes (see job.yaml).

Each sync is the same job seen a month later (`MISSION_AS_OF`): traits are computed as of
that day, so customers lapse, new orders arrive and carts are abandoned between runs, and
every push sends only who joined and who left. At the end it prints the audiences, the
pushes, one customer's unified profile and where the report is.

    python examples/mission/replay.py --serve     # what `python3 dev.py demo` runs: starts the
                                                  # sandboxes, then replays inside them

Every replay starts over (the store, state, reports and mail files of the last one are
deleted), because the sandboxes start empty too: a push ledger must match the platform.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
JOB = HERE / "job.yaml"
MONTHS = ("2026-09-20", "2026-10-20", "2026-11-20")
# vendor sandbox -> port, as the job file's default URLs expect them
SANDBOXES = {
    "hubspot": 18501, "salesforce": 18502, "zendesk": 18503, "shopify": 18504, "mailchimp_audiences": 18505,
    "klaviyo_lists": 18506, "x": 18507, "loyaltylion": 18508, "google_customer_match": 18511,
    "meta_audiences": 18512, "tiktok_audiences": 18513, "linkedin_audiences": 18514,
}
LEFTOVERS = ("mission.duckdb", "mission.duckdb.wal", "mission.duckdb.secret", ".threadline", "mission_reports", "mail")
THREADLINE = [sys.executable, "-m", "threadline"]


def run(*args: str, env: dict[str, str] | None = None) -> None:
    print(f"\n$ threadline {' '.join(args)}", flush=True)
    done = subprocess.run([*THREADLINE, *args], env={**os.environ, **(env or {})})
    if done.returncode not in (0, 75):  # 75: a stream paused for a rate limit, resumed next run
        sys.exit(done.returncode)


def serve() -> int:
    """Start every sandbox and replay while they serve."""
    names = [f"{name}={port}" for name, port in SANDBOXES.items()]
    replay = f"{sys.executable} {Path(__file__).resolve()}"
    return subprocess.run([*THREADLINE, "sandbox", *names, "--run", replay]).returncode


def start_over() -> None:
    for name in LEFTOVERS:
        path = HERE / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def main() -> None:
    if "--serve" in sys.argv[1:]:
        sys.exit(serve())
    start_over()
    for as_of in MONTHS:
        print(f"\n=== the store as of {as_of} ===", flush=True)
        run("sync", str(JOB), env={"MISSION_AS_OF": as_of})
    run("audiences", "list", "--job", str(JOB))
    run("push", "--job", str(JOB), "--history")
    run("profiles", "get", "--job", str(JOB), "--email", "kelly.neal@gmail.com")
    run("profiles", "report", "--job", str(JOB))


if __name__ == "__main__":
    main()
