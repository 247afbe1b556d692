"""The follow mode's side of `threadline sync`: signals, and one log line per micro-batch."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

log = logging.getLogger("threadline.follow")


def follow_job(job: Any, *, only: list[str] | None, every: float, max_events: int, say: Any) -> int:
    """Run `job` as micro-batches until Ctrl-C or SIGTERM; the exit status (1 when the last
    micro-batch failed)."""
    from threadline.engine.follow import follow, stop_on_signals

    stop = threading.Event()
    say(f"following {job.name}: a micro-batch every {every:g}s or as soon as {max_events:,} records wait "
        "(Ctrl-C or SIGTERM finishes the current one, then stops)")
    with stop_on_signals(stop, say):
        last = follow(job, every=every, max_events=max_events, stop=stop, on_batch=describe, only=only)
    return 0 if last is None or last.report.ok or last.report.outcome == "interrupted" else 1


def describe(batch: Any) -> None:
    """One line for a micro-batch: counts, steps, latency; never a record's content."""
    report = batch.report
    read = sum(s.rows_read for s in report.streams)
    written = sum(s.rows_written for s in report.streams)
    rejected = sum(s.rows_rejected for s in report.streams)
    steps = ", ".join(f"{s.destination} {s.step} {s.outcome}" for s in getattr(report, "steps", [])) or "no steps"
    latency = ""
    if batch.latency is not None:
        lat = batch.latency
        latency = f"; event→audience p50 {lat.p50:.2f}s p99 {lat.p99:.2f}s over {lat.records:,} records"
    level = logging.INFO if report.ok else logging.WARNING
    log.log(level, "micro-batch %s %s in %.1fs: %s read, %s written, %s rejected; %s%s%s", report.run_id, report.outcome,
            report.seconds, f"{read:,}", f"{written:,}", f"{rejected:,}", steps, latency,
            f"; {report.error}" if report.error else "")
    sys.stderr.flush()
