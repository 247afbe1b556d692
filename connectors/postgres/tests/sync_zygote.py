"""Start `threadline sync` many times, cheaply, so a test can SIGKILL it at random points.

A zygote process imports threadline and the plugins once, then forks one child per sync: a
child starts reading in milliseconds instead of the second an import takes, so kills land in
the read, not in start-up. Run as a script; it reads commands on stdin and answers on stdout:

    run <job.yaml>   → <pid>             fork a child running `threadline sync <job.yaml>`
    status <pid>     → running | <code>  the child's exit code once it ended (-9: killed)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

_ended: dict[int, int] = {}


def _reap(signum, frame) -> None:  # noqa: ANN001 - a signal handler
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _ended[pid] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve() -> None:
    import adbc_driver_postgresql.dbapi  # noqa: F401 - preloaded for the children
    import duckdb  # noqa: F401
    import psycopg  # noqa: F401

    import threadline_duckdb.destination  # noqa: F401
    import threadline_postgres.source  # noqa: F401
    from threadline.cli import main
    from threadline.plugins import registry

    registry()
    signal.signal(signal.SIGCHLD, _reap)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "run":
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                log = os.open(Path(argument).parent / "syncs.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                os.dup2(log, 1)
                os.dup2(log, 2)
                sys.argv = ["threadline", "sync", argument]
                try:
                    main()
                except SystemExit as exc:
                    os._exit(exc.code if isinstance(exc.code, int) else 1)
                os._exit(0)
            print(pid, flush=True)
        elif command == "status":
            pid = int(argument)
            print(_ended.get(pid, "running"), flush=True)


class Zygote:
    """The test's side: start syncs, kill them, ask how they ended."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, cwd=Path(__file__).parent)

    def _ask(self, line: str) -> str:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def run(self, job: Path) -> int:
        return int(self._ask(f"run {job}"))

    def status(self, pid: int) -> str:
        return self._ask(f"status {pid}")

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    serve()
