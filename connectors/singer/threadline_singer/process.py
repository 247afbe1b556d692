"""Running a Singer executable (tap or target) as a subprocess, safely.

Output is read in large chunks and split into lines in C; stderr is drained by a thread into
a short tail (so a chatty process never blocks on a full pipe, and errors can quote its last
words, redacted). A process that says nothing for `idle_timeout` seconds is stopped: its
whole process group is terminated, then killed.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from threadline.secrets import redact

log = logging.getLogger("threadline.singer")

_CHUNK = 1 << 20
_STDERR_TAIL = 30


def write_private_json(path: Path, data: Any) -> str:
    """Write JSON readable by this user only (Singer configs hold credentials); the path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    return str(path)


class ProcessTimeout(Exception):
    """The process said nothing for longer than its idle timeout and was stopped."""


class SingerProcess:
    """One run of a Singer executable. Use as a context manager: leaving stops the process."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stdin: bool = False,
        idle_timeout: float = 300.0,
        label: str = "singer",
    ) -> None:
        self.argv = list(argv)
        self.idle_timeout = idle_timeout
        self.label = label
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,  # its own process group, so stopping it stops its children
        )
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()

    def __enter__(self) -> SingerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ output

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = redact(raw.decode("utf-8", "replace").rstrip())
            if line:
                self._stderr_tail.append(line)
                log.debug("%s: %s", self.label, line)

    def stderr_tail(self, lines: int = 12) -> str:
        """The last lines the process wrote to stderr, redacted."""
        self._stderr_thread.join(timeout=2)
        return "\n".join(list(self._stderr_tail)[-lines:])

    def lines(self) -> Iterator[list[bytes]]:
        """Complete stdout lines, a chunk at a time, until stdout closes.

        Raises ProcessTimeout (after stopping the process) when nothing arrives for
        `idle_timeout` seconds. Time spent by the caller between chunks does not count.
        """
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                if not selector.select(timeout=self.idle_timeout):
                    self.stop()
                    raise ProcessTimeout(
                        f"{self.label} wrote nothing for {self.idle_timeout:g} s and was stopped"
                    )
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                data = pending + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    pending = data
                    continue
                pending = data[cut + 1 :]
                yield data[:cut].split(b"\n")
        if pending.strip():
            yield [pending]

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit; ProcessTimeout (after stopping it) if it does not."""
        try:
            return self.proc.wait(timeout=self.idle_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ProcessTimeout(
                f"{self.label} closed its output but did not exit within "
                f"{self.idle_timeout if timeout is None else timeout:g} s, and was stopped"
            ) from None

    # ------------------------------------------------------------------ stopping

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the process group if it is still running, then kill it after `grace` s."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.proc.poll() is None:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
