"""Replay three months of the mission against the running sandboxes (see job.yaml).

Each sync is the same job seen a month later (`MISSION_AS_OF`): traits are computed as of
that day, so customers lapse, new orders arrive and carts are abandoned between runs, and
every push sends only who joined and who left. At the end it prints the audiences, the
pushes, one customer's unified profile and where the report is.

    threadline sandbox ... --run "python examples/mission/replay.py"     # what dev.py demo runs
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
JOB = HERE / "job.yaml"
MONTHS = ("2026-09-20", "2026-10-20", "2026-11-20")
THREADLINE = [sys.executable, "-m", "threadline"]


def run(*args: str, env: dict[str, str] | None = None) -> None:
    print(f"\n$ threadline {' '.join(args)}", flush=True)
    done = subprocess.run([*THREADLINE, *args], env={**os.environ, **(env or {})})
    if done.returncode not in (0, 75):  # 75: a stream paused for a rate limit, resumed next run
        sys.exit(done.returncode)


def main() -> None:
    for as_of in MONTHS:
        print(f"\n=== the store as of {as_of} ===", flush=True)
        run("sync", str(JOB), env={"MISSION_AS_OF": as_of})
    run("audiences", "list", "--job", str(JOB))
    run("push", "--job", str(JOB), "--history")
    run("profiles", "get", "--job", str(JOB), "--email", "kelly.neal@gmail.com")
    run("profiles", "report", "--job", str(JOB))


if __name__ == "__main__":
    main()
