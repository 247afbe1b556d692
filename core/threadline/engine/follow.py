"""`threadline sync --follow`: one warm process running the job as micro-batches.

Each micro-batch is an ordinary run (`run_job`): the streams land, then each destination's
post-run steps (the profile store builds incrementally, computes traits and audiences, and
pushes the membership changes). So everything a run promises holds for each micro-batch:
commit-then-state, quarantine, the run's record in `threadline runs`.

A micro-batch starts when `every` seconds have passed since the last one started or when
`max_events` records wait, whichever comes first: micro-batches come every `every` seconds, and
one that took longer is followed at once by the next (what arrived meanwhile waits no longer).
Sources that can count what waits (`Source.pending`, the events source does) are polled; when
every source of the job can tell and nothing waits, no micro-batch runs. Ctrl-C or SIGTERM
lets the running micro-batch finish, then stops (a second Ctrl-C stops at once; what was
committed stays, with its state).

Latency: for streams that declare an `arrival_field` (when each record arrived, e.g. the
collector's acceptance time), each micro-batch's records are measured from arrival to the
end of their micro-batch, when their profiles, traits and audiences are updated and the
changes pushed. The p50/p95/p99 go with the run's record (`threadline runs`); the profile store
keeps its own per stage (built, pushed) for its report.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from threadline.contracts import Batch, Catalog, Message, ReadRequest, Source, Stream
from threadline.engine.runner import Progress, RunReport, plan_job, run_job
from threadline.job import Job
from threadline.plugins import Registry, registry as default_registry
from threadline.state import JobLockedError, RunLatency, StateStore, file_lock

log = logging.getLogger("threadline.follow")

POLL_SECONDS = 0.1  # how often waiting sources are counted between micro-batches
MAX_SAMPLES = 1_000_000  # arrival times kept per micro-batch; a larger backlog is sampled evenly


@dataclass
class MicroBatch:
    """One micro-batch: its run's report and, for streams with arrival times, its latency."""

    report: RunReport
    latency: RunLatency | None


def follow(
    job: Job,
    *,
    every: float,
    max_events: int,
    stop: threading.Event,
    on_batch: Callable[[MicroBatch], None] | None = None,
    only: list[str] | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> MicroBatch | None:
    """Run micro-batches until `stop` is set; return the last one (None if none ran).
    Raises what `run_job` raises for a wrong job (ConfigError), before anything is read."""
    registry = registry or default_registry()
    observed = _ArrivalObserver(registry)
    plans = plan_job(job, registry, only)  # a wrong job fails here, before the loop
    last: MicroBatch | None = None
    with _follow_lock(job):
        store = StateStore(job.state_dir)
        try:
            last = _loop(job, plans, store, observed, stop, every, max_events, on_batch, only, progress)
        finally:
            store.close()
    return last


def _loop(job: Job, plans: list[Any], store: StateStore, observed: _ArrivalObserver, stop: threading.Event,
          every: float, max_events: int, on_batch: Callable[[MicroBatch], None] | None, only: list[str] | None,
          progress: Progress | None) -> MicroBatch | None:
    last: MicroBatch | None = None
    while not stop.is_set():
        observed.reset()
        started = time.monotonic()
        # the first Ctrl-C lets this micro-batch finish (stop_on_signals): run_job must not take it
        report = run_job(job, only=only, progress=progress, registry=observed, wait=True,  # type: ignore[arg-type]
                         handle_ctrl_c=False)
        latency = observed.latency(datetime.now(timezone.utc))
        if latency is not None:
            store.save_latency(report.run_id, latency)
        last = MicroBatch(report, latency)
        if on_batch is not None:
            on_batch(last)
        if report.outcome == "interrupted":
            break
        _wait_for_work(job, plans, store, stop, started + every, max_events)
    return last


def _wait_for_work(job: Job, plans: list[Any], store: StateStore, stop: threading.Event, deadline: float,
                   max_events: int) -> None:
    """Until the `deadline` (monotonic) has passed with something to read, or `max_events` records wait."""
    while not stop.is_set():
        waiting = _waiting(job, plans, store, max_events)
        if waiting is not None and waiting >= max_events:
            return
        if time.monotonic() >= deadline and waiting != 0:  # nothing to read: no empty micro-batch
            return
        stop.wait(POLL_SECONDS)


def _waiting(job: Job, plans: list[Any], store: StateStore, up_to: int) -> int | None:
    """Records waiting across the job's streams; None when some source cannot tell."""
    total = 0
    for plan in plans:
        state = store.get(job.name, plan.source_name, plan.stream.name)
        count = plan.source.pending(plan.source_config, plan.stream, state, max(up_to - total, 1))
        if count is None:
            return None
        total += count
    return total


def _follow_lock(job: Job) -> Any:
    """One follower per job: a second `sync --follow` stops with a message naming the first
    (each micro-batch still takes the job's own lock, queueing behind a manual sync)."""
    return file_lock(job.state_dir / f"{job.name}.follow.lock", lambda holder: JobLockedError(
        f"job {job.name!r} is already followed ({holder})",
        hint="one `threadline sync --follow` per job; stop the other one first"))


@contextmanager
def stop_on_signals(stop: threading.Event, say: Callable[[str], None]) -> Iterator[None]:
    """SIGTERM and the first Ctrl-C set `stop` (the running micro-batch finishes); a second
    Ctrl-C interrupts at once. Only from the main thread; the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        say("finishing the current micro-batch, then stopping (Ctrl-C again to stop now)")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


# --------------------------------------------------------------------------- latency


class _ArrivalObserver:
    """A registry whose sources report the arrival times of the batches they yield (only for
    streams with an `arrival_field`); everything else is the wrapped registry's."""

    def __init__(self, inner: Registry) -> None:
        self.inner = inner
        self.manager = inner.manager
        self._lock = threading.Lock()
        self.reset()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def reset(self) -> None:
        self._arrivals: list[np.ndarray] = []
        self._seen = 0

    def source(self, name: str) -> Source:
        return _ObservedSource(self.inner.source(name), self)

    def destination(self, name: str) -> Any:
        return self.inner.destination(name)

    def add(self, times: pa.Array) -> None:
        micros = times.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        with self._lock:
            self._seen += len(micros)
            stride = 1 + self._seen // MAX_SAMPLES  # past MAX_SAMPLES keep an even sample
            self._arrivals.append(micros[::stride])

    def latency(self, finished: datetime) -> RunLatency | None:
        with self._lock:
            if not self._seen:
                return None
            micros = np.concatenate(self._arrivals)
            seen = self._seen
        micros = micros[micros > 0]  # null arrival times come through as 0 after the cast
        if not len(micros):
            return None
        seconds = (int(finished.timestamp() * 1_000_000) - micros) / 1e6
        p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
        return RunLatency(seen, round(float(p50), 3), round(float(p95), 3), round(float(p99), 3),
                          round(float(seconds.max()), 3))


class _ObservedSource(Source):
    """A source whose batches' arrival times are handed to the observer on their way past."""

    def __init__(self, inner: Source, observer: _ArrivalObserver) -> None:
        self._inner, self._observer = inner, observer
        self.name, self.spec = inner.name, inner.spec  # type: ignore[misc]

    def __getattr__(self, name: str) -> Any:  # a connector's own extras
        return getattr(self._inner, name)

    def check(self, config: Any) -> None:
        self._inner.check(config)

    def discover(self, config: Any) -> Catalog:
        return self._inner.discover(config)

    def pending(self, config: Any, stream: Stream, state: dict[str, Any], up_to: int) -> int | None:
        return self._inner.pending(config, stream, state, up_to)

    def read(self, config: Any, request: ReadRequest) -> Iterator[Message]:
        field = request.stream.arrival_field
        for message in self._inner.read(config, request):
            if field and isinstance(message, Batch) and field in message.records.schema.names:
                self._observer.add(message.records.column(field))
            yield message
