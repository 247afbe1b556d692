"""Progress for long syncs: bars on a terminal, plain or JSON log lines elsewhere."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module at start-up: no Arrow here
    from rich.console import Console

    from threadline.state import StreamRun

log = logging.getLogger("threadline.sync")


class BarProgress:
    """One live line per stream: rows read, rows/s, rejected, elapsed."""

    def __init__(self, console: Console) -> None:
        # here: only a terminal shows bars, a sync whose output is piped or logged does not import them
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=None),
            TextColumn("{task.fields[rows]:>12,} rows"), TextColumn("{task.fields[rate]:>10,.0f}/s"),
            TextColumn("{task.fields[rejected]}"), TimeElapsedColumn(), console=console, transient=False,
        )
        self.tasks: dict[tuple[str, str], int] = {}

    def stream_started(self, s: StreamRun) -> None:
        self.tasks[(s.source, s.stream)] = self.bars.add_task(
            f"{s.source}.{s.stream}", total=None, rows=0, rate=0.0, rejected="")

    def stream_progress(self, s: StreamRun) -> None:
        self.bars.update(self.tasks[(s.source, s.stream)], rows=s.rows_read, rate=s.rate,
                         rejected=f"[yellow]{s.rows_rejected:,} rejected[/]" if s.rows_rejected else "")

    def stream_finished(self, s: StreamRun) -> None:
        self.stream_progress(s)
        mark = "[green]done[/]" if s.outcome == "succeeded" else f"[red]{s.outcome}[/]"
        self.bars.update(self.tasks[(s.source, s.stream)], total=1, completed=1,
                         description=f"{s.source}.{s.stream} {mark}")


class LogProgress:
    """A log line when a stream starts and ends, and at most every few seconds in between."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.last: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def _emit(self, event: str, s: StreamRun) -> None:
        fields = {"event": event, "source": s.source, "stream": s.stream, "rows_read": s.rows_read,
                  "rows_written": s.rows_written, "rows_rejected": s.rows_rejected,
                  "rows_per_second": round(s.rate), "outcome": s.outcome}
        if event == "started":  # nothing is counted yet: the line says which stream, the fields are all zero
            log.info("started %s.%s", s.source, s.stream, extra={"fields": fields})
            return
        log.info("%s %s.%s: %s rows read, %s rejected, %.0f rows/s", event, s.source, s.stream,
                 f"{s.rows_read:,}", f"{s.rows_rejected:,}", s.rate, extra={"fields": fields})

    def stream_started(self, s: StreamRun) -> None:
        self.last[(s.source, s.stream)] = time.monotonic()
        self._emit("started", s)

    def stream_progress(self, s: StreamRun) -> None:
        key = (s.source, s.stream)
        with self.lock:
            if time.monotonic() - self.last.get(key, 0) < self.every:
                return
            self.last[key] = time.monotonic()
        self._emit("progress", s)

    def stream_finished(self, s: StreamRun) -> None:
        self._emit("finished", s)


@contextmanager
def make_progress(log_format: str, console: Console) -> Iterator[BarProgress | LogProgress]:
    if log_format == "auto" and console.is_terminal:
        bars = BarProgress(console)
        with bars.bars:
            yield bars
    else:
        yield LogProgress()
