"""Run a sync job: sources → coercion and quarantine → destinations → state.

The order of things for every stream (DESIGN.md, "The record flow"):

    read a Batch      → coerce to the stream's schema, quarantine what does not fit, write
    read a Checkpoint → destination commits, THEN the state store saves the state
                        (only while the stream's rejected share is within its limit)
    stream ends       → destination finishes (REPLACE swaps), THEN the final state is saved

So a crash anywhere re-reads at most the batches since the last saved checkpoint, and an
upserting destination makes that re-read harmless. A stream that fails saves nothing past
its last good checkpoint, so the rerun reads those rows again. State is keyed by the place
the stream lands (`Destination.locate`): a job pointed at a new file reads everything, and
a stream whose table has gone from its destination is read in full, with a note saying why.
Ctrl-C stops every stream at its next batch: what was committed stays, with its state. For incremental streams the engine keeps
the cursor itself: the largest cursor value written, capped at the moment the run started
(records changed during the run are read again next time rather than skipped), handed back
next run as the inclusive lower bound `ReadRequest.cursor_start`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any, Protocol

import pyarrow as pa
from pydantic import BaseModel

from threadline.contracts import (
    Batch,
    Checkpoint,
    ConfigError,
    Destination,
    FatalError,
    NativeFile,
    RateLimitStop,
    ReadRequest,
    Rejected,
    Source,
    Stream,
    StreamTarget,
    StepResult,
    SyncMode,
    ThreadlineError,
    WriteDisposition,
)
from threadline.engine.coerce import coerce
from threadline.job import Job, StreamChoice
from threadline.names import safe_name, unknown_name
from threadline.plugins import Registry, registry as default_registry
from threadline.secrets import redact
from threadline.state import Quarantine, RunRecord, StateStore, StreamRun, job_lock, new_run_id, utcnow

log = logging.getLogger("threadline.engine")

CURSOR_KEY = "cursor"  # the engine's own key in a stream's saved state
RESUME_KEY = "full_refresh_in_progress"  # where an unfinished full refresh keeps its checkpoint
PAUSED_KEY = "paused_until"  # set when a vendor's rate limit paused the stream (RateLimitStop)
# Whether rows were committed under this state: only then does a missing table mean the
# destination was reset (and the state is ignored). A state saved before any row landed (a
# CDC stream's replication slot made, say) is kept when the table is not there yet.
LANDED_KEY = "rows_landed"
# A stream stops before its end once this many rows were read and the rejected share is over
# halfway from the job's limit to 100%: a stream rejecting everything fails after one batch
# instead of reading millions of rows it cannot use.
EARLY_STOP_ROWS = 10_000
# Columns per stream: every one becomes a table column; a JSON file with 20,000 distinct keys
# would run the destination out of memory. Wider data keeps nested objects as JSON text.
MAX_COLUMNS = 5_000
MAX_COLUMN_NAME = 1_000  # characters


class Interrupted(ThreadlineError):
    """The user pressed Ctrl-C: the stream stopped at its next batch."""


class Progress(Protocol):
    """What the engine reports while it runs (the CLI draws bars or prints log lines)."""

    def stream_started(self, s: StreamRun) -> None: ...
    def stream_progress(self, s: StreamRun) -> None: ...
    def stream_finished(self, s: StreamRun) -> None: ...


class QuietProgress:
    def stream_started(self, s: StreamRun) -> None: ...
    def stream_progress(self, s: StreamRun) -> None: ...
    def stream_finished(self, s: StreamRun) -> None: ...


@dataclass
class RunReport:
    """The outcome of one run: per-stream counts, and the error if it failed."""

    run_id: str
    job: str
    outcome: str  # succeeded | failed | paused (rate limited; resume later) | interrupted (Ctrl-C)
    streams: list[StreamRun] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    quarantine: str | None = None  # folder of quarantined rows, when there were any
    steps: list[StepResult] = field(default_factory=list)  # destinations' post-run work (build, push)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    def stream(self, source: str, stream: str) -> StreamRun:
        return next(s for s in self.streams if s.source == source and s.stream == stream)


@dataclass
class StreamPlan:
    """One stream of one source, resolved against its connector and destination."""

    source_name: str
    source: Source
    source_config: BaseModel
    destination_name: str
    destination: Destination
    destination_config: BaseModel
    stream: Stream
    sync_mode: SyncMode
    disposition: WriteDisposition
    table: str

    def target(self, run_id: str) -> StreamTarget:
        return StreamTarget(self.source_name, self.stream, self.disposition, self.table, run_id)


# --------------------------------------------------------------------------- planning


def plan_job(job: Job, registry: Registry | None = None, only: list[str] | None = None) -> list[StreamPlan]:
    """Resolve connectors, validate their configs and choose streams, modes and tables.
    Every problem is a ConfigError pointing into the job file; nothing is read yet."""
    registry = registry or default_registry()
    _check_selected_sources(job, only)
    destinations: dict[str, tuple[Destination, BaseModel]] = {}
    for name, dest in job.destinations.items():
        connector = _connector(job, registry, "destination", ("destinations", name, "connector"), dest.connector)
        config = job.validate_config(("destinations", name, "config"), connector.spec, dest.config)
        destinations[name] = (connector, config)

    plans: list[StreamPlan] = []
    for name, src in job.sources.items():
        if only and name not in only and not any(o.startswith(f"{name}.") for o in only):
            continue
        source = _connector(job, registry, "source", ("sources", name, "connector"), src.connector)
        config = job.validate_config(("sources", name, "config"), source.spec, src.config)
        catalog = _discover(source, config, job, name)
        for stream in catalog:  # a connector's stream names become table and file names
            safe_name(stream.name, f"stream name from connector {src.connector!r}", where=job.where(("sources", name)),
                      hint="where the connector lets you name a stream (a database table's `name:`), choose one that does")
            if len(stream.schema) > MAX_COLUMNS:
                raise job.error(("sources", name), _too_wide(stream.name, len(stream.schema)),
                                hint="keep nested objects as one JSON column, or split the data into streams")
        chosen = src.streams if src.streams is not None else {s.name: None for s in catalog}
        _check_selected_streams(job, only, name, list(chosen))
        dest_name = job.destination_for(name)
        destination, dest_config = destinations[dest_name]
        for stream_name, choice in chosen.items():
            if only and name not in only and f"{name}.{stream_name}" not in only:
                continue
            if stream_name not in catalog.names():
                raise job.error(
                    ("sources", name, "streams", stream_name),
                    f"source {name!r} ({src.connector}) has no stream {stream_name!r}",
                    hint=f"streams it offers: {', '.join(catalog.names()) or '(none)'}",
                )
            stream = catalog.get(stream_name)
            choice = choice or StreamChoice()
            mode = _sync_mode(job, name, stream, choice)
            plans.append(
                StreamPlan(
                    source_name=name, source=source, source_config=config,
                    destination_name=dest_name, destination=destination, destination_config=dest_config,
                    stream=stream, sync_mode=mode,
                    disposition=_disposition(job, name, stream, choice, mode, destination),
                    table=_table(job, name, stream.name, choice),
                )
            )
    return plans


def _check_selected_sources(job: Job, only: list[str] | None) -> None:
    """`--only` names a source, or a source.stream, of this job: a typo is an error, not a
    run that reads nothing and reports success."""
    for selector in only or []:
        name = selector.split(".", 1)[0]
        if name not in job.sources:
            raise unknown_name("source", name, list(job.sources), where=f"--only {selector}")


def _check_selected_streams(job: Job, only: list[str] | None, source: str, streams: list[str]) -> None:
    for selector in only or []:
        name, _, stream = selector.partition(".")
        if name == source and stream and stream not in streams:
            raise unknown_name(f"stream of source {source!r}", stream, streams, where=f"--only {selector}")


def _table(job: Job, source: str, stream: str, choice: StreamChoice) -> str:
    if choice.table is not None:
        return safe_name(choice.table, "table", where=job.where(("sources", source, "streams", stream, "table")))
    return safe_name(f"{source}__{stream}", "table", where=job.where(("sources", source)))


def _connector(job: Job, registry: Registry, kind: str, path: tuple[str, ...], name: str) -> Any:
    try:
        connector = registry.source(name) if kind == "source" else registry.destination(name)
    except ConfigError as exc:
        raise job.error(path, exc.message, hint=exc.hint) from None
    if kind == "destination" and registry.is_audience_destination(name):  # fed by audiences, not by sources
        raise job.error(path, f"{name!r} is an audience destination: sources cannot write to it",
                        hint="push an audience to it from the profile store's `activations:` block "
                             "(see destinations/profiles/README.md)")
    return connector


def _discover(source: Source, config: BaseModel, job: Job, name: str):
    try:
        return source.discover(config)
    except ConfigError as exc:
        raise job.rewhere(exc, ("sources", name, "config")) from None


def _sync_mode(job: Job, source: str, stream: Stream, choice: StreamChoice) -> SyncMode:
    if choice.sync_mode is None:
        return SyncMode.INCREMENTAL if SyncMode.INCREMENTAL in stream.sync_modes else SyncMode.FULL_REFRESH
    if choice.sync_mode not in stream.sync_modes:
        raise job.error(
            ("sources", source, "streams", stream.name, "sync_mode"),
            f"stream {stream.name!r} does not support {choice.sync_mode.value} sync",
            hint=f"it supports: {', '.join(m.value for m in stream.sync_modes)}",
        )
    return choice.sync_mode


def _disposition(
    job: Job, source: str, stream: Stream, choice: StreamChoice, mode: SyncMode, destination: Destination
) -> WriteDisposition:
    """Upsert where there is a primary key and the destination can; else replace a full
    refresh and append an incremental sync."""
    path = ("sources", source, "streams", stream.name, "write")
    if choice.write is None:
        deletes_ok = destination.applies_deletes or not stream.carries_deletes
        if stream.primary_key and WriteDisposition.UPSERT in destination.dispositions and deletes_ok:
            return WriteDisposition.UPSERT
        return WriteDisposition.REPLACE if mode is SyncMode.FULL_REFRESH else WriteDisposition.APPEND
    if choice.write is WriteDisposition.UPSERT and not stream.primary_key:
        raise job.error(path, f"stream {stream.name!r} has no primary key, so it cannot be upserted",
                        hint="use `write: append` or `write: replace`")
    if choice.write not in destination.dispositions:
        raise job.error(path, f"destination {destination.name!r} cannot {choice.write.value}",
                        hint=f"it can: {', '.join(d.value for d in destination.dispositions)}")
    if choice.write is WriteDisposition.UPSERT and stream.carries_deletes and not destination.applies_deletes:
        raise job.error(path, f"stream {stream.name!r} carries deletes, which destination {destination.name!r} "
                        "cannot apply: deleted records would stay as if they were live",
                        hint="use `write: append` to keep every change as a row, or a destination that applies deletes")
    return choice.write


# --------------------------------------------------------------------------- running


def run_job(
    job: Job,
    *,
    only: list[str] | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
    wait: bool = False,
    handle_ctrl_c: bool = True,
) -> RunReport:
    """Sync every stream of the job (or the `only` sources / `source.stream`s).

    Raises ConfigError before anything is read when the job is wrong, JobLockedError when
    another sync of the job is running. Failures while syncing do not raise: they are in
    the report (`outcome == "failed"`, with the error and each stream's outcome). Ctrl-C
    (SIGINT, when called from the main thread) stops every stream at its next batch and
    the report's outcome is "interrupted" — unless `handle_ctrl_c` is False: the caller
    (follow mode, which lets a micro-batch finish) keeps its own handler.
    """
    registry = registry or default_registry()
    plans = plan_job(job, registry, only)
    progress = progress or QuietProgress()
    store = StateStore(job.state_dir)
    started = time.monotonic()
    run = RunRecord(run_id=new_run_id(), job=job.name, started_at=utcnow())
    stop = threading.Event()
    try:
        with job_lock(job.state_dir, job.name, wait=wait), (_stop_on_ctrl_c(stop) if handle_ctrl_c else nullcontext()):
            store.start_run(run)
            registry.manager.hook.run_started(run=run)
            streams = [StreamRun(p.source_name, p.stream.name, p.sync_mode.value) for p in plans]
            run.streams = streams
            ctx = _RunContext(job, run, store, registry, progress, datetime.now(timezone.utc), stop)
            try:
                with ThreadPoolExecutor(max_workers=job.concurrency, thread_name_prefix="stream") as pool:
                    list(pool.map(ctx.sync_stream, plans, streams))
                # after Ctrl-C nothing more runs (no build, no push): the next sync does it
                run.steps = [] if stop.is_set() else _finish_destinations(plans, run.run_id)
            finally:
                _release(plans)  # before the job lock goes: a waiting run opens the same files next
            run.outcome, errors = _outcome(streams)
            failed_steps = [s for s in run.steps if not s.ok]
            if failed_steps:  # a build or push that failed fails the run, whatever the streams did
                run.outcome = "failed" if run.outcome != "interrupted" else run.outcome
                errors += [f"{s.destination} {s.step}: {s.error}" for s in failed_steps]
            run.error = "; ".join(errors) or None
            run.finished_at = utcnow()
            store.finish_run(run)
            report = RunReport(
                run.run_id, job.name, run.outcome, streams, run.error, time.monotonic() - started,
                str(store.quarantine_dir(run.run_id)) if any(s.rows_rejected for s in streams) else None,
                run.steps,
            )
            registry.manager.hook.run_finished(run=run, report=report)
            return report
    finally:
        store.close()


def _finish_destinations(plans: list[StreamPlan], run_id: str) -> list[StepResult]:
    """Each destination of the run does its post-run work (`Destination.finish_run`), in job
    order; an exception becomes a failed step naming the destination, so it is recorded."""
    steps: list[StepResult] = []
    seen: set[str] = set()
    for plan in plans:
        if plan.destination_name in seen:
            continue
        seen.add(plan.destination_name)
        try:
            # named as the job file names the destination, which is what the user recognizes
            steps += [replace(s, destination=plan.destination_name)
                      for s in plan.destination.finish_run(plan.destination_config, run_id)]
        except Exception as exc:  # recorded as the run's failure, never lost behind a success
            error = redact(exc.render()) if isinstance(exc, ThreadlineError) else redact(f"unexpected {type(exc).__name__}: {exc}")
            log.error("destination %s: post-run step failed: %s", plan.destination_name, error)
            steps.append(StepResult(plan.destination_name, "finish", "failed", error=error))
    return steps


def _outcome(streams: list[StreamRun]) -> tuple[str, list[str]]:
    failed = [s for s in streams if s.outcome != "succeeded"]
    if not failed:
        return "succeeded", []
    errors = [f"{s.source}.{s.stream}: {s.error}" for s in failed]
    if any(s.outcome == "interrupted" for s in failed):
        return "interrupted", errors
    # paused: every stream that did not finish stopped cleanly for a rate limit
    return ("paused" if all(s.outcome == "paused" for s in failed) else "failed"), errors


def _release(plans: list[StreamPlan]) -> None:
    released: set[int] = set()
    for plan in plans:
        if id(plan.destination_config) in released:
            continue
        released.add(id(plan.destination_config))
        try:
            plan.destination.release(plan.destination_config)
        except Exception:
            log.exception("destination %s failed to release what it held", plan.destination_name)


@contextmanager
def _stop_on_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks every stream to stop at its next batch; a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("Ctrl-C: stopping every stream at its next batch (press Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class _RunContext:
    job: Job
    run: RunRecord
    store: StateStore
    registry: Registry
    progress: Progress
    started_at: datetime
    stop: threading.Event = field(default_factory=threading.Event)

    def sync_stream(self, plan: StreamPlan, s: StreamRun) -> None:
        """Sync one stream; failures are recorded on `s`, never raised (other streams go on)."""
        t0 = time.monotonic()
        self.progress.stream_started(s)
        target = plan.target(self.run.run_id)
        location = _locate(plan, target)
        writer = None
        try:
            if self.stop.is_set():
                raise Interrupted("not started: the run was interrupted (Ctrl-C)",
                                  hint="run the sync again to read it")
            saved = self._saved_state(plan, target, location, s)
            writer = plan.destination.open_stream(plan.destination_config, target)
            self._pump(plan, s, writer, target, t0, saved, location)
            s.outcome = "succeeded"
        except Exception as exc:  # recorded, with the stream named; other streams go on
            s.outcome = ("paused" if isinstance(exc, RateLimitStop)
                         else "interrupted" if isinstance(exc, Interrupted) else "failed")
            s.error = _describe(exc, plan)
            if isinstance(exc, RateLimitStop):  # so the next run does not knock before the window resets
                state = self.store.get(self.job.name, plan.source_name, plan.stream.name, location)
                state[PAUSED_KEY] = exc.resume_after.isoformat()
                self.store.set(self.job.name, plan.source_name, plan.stream.name, state, location)
            if not isinstance(exc, ThreadlineError):
                log.exception("bug while syncing %s.%s", plan.source_name, plan.stream.name)
            if writer is not None:
                try:
                    writer.abort()
                except Exception:
                    log.exception("destination %s failed to abort", plan.destination_name)
        finally:
            s.seconds = time.monotonic() - t0
            self.store.save_stream_run(self.run.run_id, s)
            self.progress.stream_finished(s)

    def _saved_state(self, plan: StreamPlan, target: StreamTarget, location: str, s: StreamRun) -> dict[str, Any]:
        """The stream's saved state, or {} (read everything) when its table has gone."""
        saved = self.store.get(self.job.name, plan.source_name, plan.stream.name, location)
        resumes = {k: v for k, v in saved.items() if k not in (PAUSED_KEY, LANDED_KEY)}
        landed = saved.get(LANDED_KEY, True)  # state saved before the key existed: assume rows landed
        if resumes and landed and plan.destination.table_exists(plan.destination_config, target) is False:
            s.note = (f"saved state ignored: table {plan.table!r} is not in {location}, "
                      "so the stream is read again in full")
            log.warning("%s.%s: %s", plan.source_name, plan.stream.name, s.note)
            return {PAUSED_KEY: saved[PAUSED_KEY]} if PAUSED_KEY in saved else {}
        return saved

    def _pump(self, plan: StreamPlan, s: StreamRun, writer: Any, target: StreamTarget, t0: float,
              saved: dict[str, Any], location: str) -> None:
        job, stream = self.job, plan.stream
        saved = dict(saved)
        paused_until = saved.pop(PAUSED_KEY, None)
        landed = bool(saved.pop(LANDED_KEY, bool(saved)))
        if paused_until and datetime.fromisoformat(paused_until) > datetime.now(timezone.utc):
            until = datetime.fromisoformat(paused_until)
            raise RateLimitStop(
                f"still paused by the vendor's rate limit until {until:%Y-%m-%d %H:%M:%S} UTC; not read this run",
                resume_after=until,
                hint="it is read again on the first sync after that time, from its saved state",
            )
        incremental = plan.sync_mode is SyncMode.INCREMENTAL
        # A full refresh that was interrupted resumes from its last checkpoint, unless it
        # replaces the table (the replacement's staging rows did not survive the failure).
        resumable = not incremental and plan.disposition is not WriteDisposition.REPLACE
        cursor = StreamCursor(stream, saved.get(CURSOR_KEY) if incremental else None, self.started_at)
        request = ReadRequest(
            stream=stream, sync_mode=plan.sync_mode,
            state=saved if incremental else (saved.get(RESUME_KEY, {}) if resumable else {}),
            cursor_start=cursor.start,
            # a file the destination loads itself is never seen here, so the cursor could not follow it
            native_formats=frozenset(getattr(writer, "native_formats", ())) if stream.cursor_field is None else frozenset(),
        )
        quarantine = Quarantine(self.store.quarantine_dir(self.run.run_id), self.run.run_id, plan.source_name, stream.name)
        last_state: dict[str, Any] = dict(saved) if incremental else {}
        hook = self.registry.manager.hook
        limit = _RejectLimit(job.max_rejected_share, s, quarantine)
        columns = _ColumnCheck(stream.name)

        def write_batch(records: pa.RecordBatch) -> None:
            """Coerce, quarantine what does not fit, write the rest."""
            columns.check(records.schema)
            result = coerce(records, stream.schema, stream.primary_key)
            s.rows_read += records.num_rows
            if result.rejected is not None:
                quarantine.add(result.rejected, result.reasons or [])
                s.rows_rejected += result.rejected_count
            if result.good.num_rows:
                writer.write(result.good)
                s.rows_written += result.good.num_rows
                cursor.observe(result.good)
                hook.batch_written(run=self.run, target=target, rows=result.good.num_rows)

        messages = plan.source.read(plan.source_config, request)
        try:
            for message in messages:
                if isinstance(message, Batch):
                    _expect_stream(message.stream, plan)
                    write_batch(message.records)
                    s.seconds = time.monotonic() - t0
                    self.progress.stream_progress(s)
                    limit.stop_if_clearly_exceeded()
                elif isinstance(message, Checkpoint):
                    _expect_stream(message.stream, plan)
                    writer.commit()  # durable first ...
                    s.metrics.update(message.metrics)
                    # ... then state, unless the stream is over its limit and may yet fail:
                    # a failed stream saves no state past its last good checkpoint
                    if not limit.exceeded():
                        last_state = {**message.state}
                        if incremental:
                            # unsorted streams keep the cursor they started from until they finish
                            cursor.save_into(last_state) if stream.cursor_sorted else cursor.keep_start_in(last_state)
                        landed = landed or s.rows_written > 0
                        progress = {**last_state} if incremental else {RESUME_KEY: last_state}
                        progress[LANDED_KEY] = landed
                        self.store.set(job.name, plan.source_name, stream.name, progress, location)
                elif isinstance(message, NativeFile):
                    _expect_stream(message.stream, plan)
                    columns.check(message.schema)
                    loaded = writer.load_file(message)
                    s.rows_read += loaded.rows
                    s.rows_written += loaded.rows
                    hook.batch_written(run=self.run, target=target, rows=loaded.rows)
                    held_back = loaded.held_back.to_batches(EARLY_STOP_ROWS) if loaded.held_back is not None else []
                    for held in held_back:
                        write_batch(held)  # rows held back meet the engine's rules like any batch
                        limit.stop_if_clearly_exceeded()  # a file of bad rows stops early, as batches do
                    if loaded.malformed:
                        quarantine.add(loaded.malformed, loaded.malformed_reason)
                        s.rows_read += len(loaded.malformed)
                        s.rows_rejected += len(loaded.malformed)
                    limit.stop_if_clearly_exceeded()
                    s.seconds = time.monotonic() - t0
                    self.progress.stream_progress(s)
                elif isinstance(message, Rejected):
                    _expect_stream(message.stream, plan)
                    quarantine.add(message.records, message.reason)
                    s.rows_read += len(message.records)
                    s.rows_rejected += len(message.records)
                    limit.stop_if_clearly_exceeded()
                else:
                    raise FatalError(f"source yielded {type(message).__name__}, not a Batch, Checkpoint, Rejected or NativeFile")
                if self.stop.is_set():
                    raise Interrupted(
                        f"stopped by Ctrl-C after {s.rows_read:,} rows; what was committed up to the last "
                        "checkpoint is kept, with its state",
                        hint="run the sync again to carry on from there")
        finally:
            close = getattr(messages, "close", None)
            if close is not None:
                close()  # runs the source's own clean-up (open files, HTTP sessions) now

        limit.fail_if_exceeded()
        report = writer.finish()
        s.rows_written -= report.rows_rejected
        s.rows_rejected += report.rows_rejected
        if incremental:
            cursor.save_into(last_state)
            last_state[LANDED_KEY] = landed or s.rows_written > 0
        self.store.set(job.name, plan.source_name, stream.name, last_state, location)


class _RejectLimit:
    """The job's max_rejected_share for one stream: whether a checkpoint is good, when to
    stop early, and the error that fails the stream."""

    def __init__(self, max_share: float, s: StreamRun, quarantine: Quarantine) -> None:
        self.max_share, self.s, self.quarantine = max_share, s, quarantine

    def share(self) -> float:
        return self.s.rows_rejected / self.s.rows_read if self.s.rows_read else 0.0

    def exceeded(self) -> bool:
        return self.share() > self.max_share

    def stop_if_clearly_exceeded(self) -> None:
        if self.s.rows_read >= EARLY_STOP_ROWS and self.share() > (self.max_share + 1) / 2:
            raise self._error(early=True)

    def fail_if_exceeded(self) -> None:
        if self.exceeded():
            raise self._error(early=False)

    def _error(self, early: bool) -> FatalError:
        s = self.s
        what = (f"{s.rows_rejected} of the first {s.rows_read} rows ({self.share():.1%}) could not be used, so the "
                "stream was stopped early: far more than" if early else
                f"{s.rows_rejected} of {s.rows_read} rows ({self.share():.1%}) could not be used, more than")
        return FatalError(
            f"{what} the job's max_rejected_share of {self.max_share:.1%}",
            hint=f"the rows and the reason for each are in {self.quarantine.path}; fix the source or its "
            "schema, or raise max_rejected_share in the job file; no state was saved past the last checkpoint "
            "within the limit, so the next sync reads those rows again",
        )


class _ColumnCheck:
    """Column names become table columns in every destination: a batch whose names are
    missing, unreadable, repeated or absurd fails the stream naming the column, before a
    destination trips over it. Checked once per distinct schema."""

    def __init__(self, stream: str) -> None:
        self.stream, self.seen = stream, None

    def check(self, schema: pa.Schema) -> None:
        if schema is self.seen or (self.seen is not None and schema.equals(self.seen)):
            return
        hint = "rename the column in the source (or its export); a files stream can name CSV columns with `column_names`"
        if len(schema) > MAX_COLUMNS:
            raise FatalError(_too_wide(self.stream, len(schema)),
                             hint="keep nested objects as one JSON column, or split the data into streams")
        positions: dict[str, int] = {}  # case-folded name -> its 1-based position
        names: dict[str, str] = {}  # case-folded name -> the name as written
        for position in range(len(schema)):
            try:
                name = schema.field(position).name
            except UnicodeDecodeError:
                raise FatalError(f"column {position + 1} of stream {self.stream!r} has a name that is not UTF-8 text",
                                 hint=hint) from None
            problem = ("has no name" if not name.strip() else
                       "has a control character in its name" if any(ord(c) < 32 or ord(c) == 127 for c in name) else
                       f"has a name {len(name):,} characters long" if len(name) > MAX_COLUMN_NAME else
                       f"has the same name as column {positions[name.casefold()]}" if name.casefold() in positions else "")
            if problem:
                # names that differ only in case are one column to DuckDB and most SQL (`id`, `Id`)
                raise FatalError(f"column {position + 1} ({name[:40]!r}) of stream {self.stream!r} {problem}"
                                 + (f" ({names[name.casefold()]!r}) but for case" if name.casefold() in names
                                    and names[name.casefold()] != name else ""), hint=hint)
            positions[name.casefold()] = position + 1
            names[name.casefold()] = name
        self.seen = schema


def _too_wide(stream: str, columns: int) -> str:
    return f"stream {stream!r} has {columns:,} columns; threadline lands at most {MAX_COLUMNS:,} per stream"


def _locate(plan: StreamPlan, target: StreamTarget) -> str:
    try:
        return plan.destination.locate(plan.destination_config, target)
    except Exception:
        log.exception("destination %s could not say where %s lands", plan.destination_name, plan.table)
        return f"{plan.destination.name}:{plan.table}"


class StreamCursor:
    """The largest cursor value written so far, capped at the run's start. Public: the Singer
    export (tap-threadline) keeps its bookmarks by the same rule."""

    def __init__(self, stream: Stream, saved: Any, run_started: datetime) -> None:
        self.field = stream.cursor_field
        self.type = stream.schema.field(self.field).type if self.field else None
        self.start = _decode(saved, self.type) if saved is not None and self.type is not None else None
        self.max: Any = self.start
        self.cap = _cap_for(self.type, run_started)
        self._lock = threading.Lock()

    def observe(self, batch: pa.RecordBatch) -> None:
        if self.field is None:
            return
        import pyarrow.compute as pc  # here: a sync whose files the destination loads itself never needs it

        seen = pc.max(batch.column(batch.schema.get_field_index(self.field))).as_py()
        if seen is not None:
            with self._lock:
                self.max = seen if self.max is None else max(self.max, seen)

    def keep_start_in(self, state: dict[str, Any]) -> None:
        if self.start is not None:
            state[CURSOR_KEY] = _encode(self.start, self.type)

    def save_into(self, state: dict[str, Any]) -> None:
        if self.max is None:
            return
        value = self.max if self.cap is None else min(self.max, self.cap)
        state[CURSOR_KEY] = _encode(value, self.type)


def _cap_for(t: pa.DataType | None, started: datetime) -> Any:
    """Timestamp and date cursors never move past the moment the run started."""
    if t is None:
        return None
    if pa.types.is_timestamp(t):
        return started if t.tz else started.replace(tzinfo=None)
    if pa.types.is_date(t):
        return started.date()
    return None


def _encode(value: Any, t: pa.DataType) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return pa.scalar(value, t).as_py() if not isinstance(value, (int, float, str)) else value


def _decode(value: Any, t: pa.DataType) -> Any:
    if isinstance(value, str) and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        import pyarrow.compute as pc  # as in StreamCursor.observe

        return pc.cast(pa.array([value]), t)[0].as_py()
    return pa.scalar(value).cast(t).as_py()


def _expect_stream(name: str, plan: StreamPlan) -> None:
    if name != plan.stream.name:
        raise FatalError(f"source yielded a message for stream {name!r} while reading {plan.stream.name!r}")


def _describe(exc: BaseException, plan: StreamPlan) -> str:
    if isinstance(exc, ThreadlineError):
        return redact(exc.render())
    return redact(f"unexpected {type(exc).__name__} in {plan.source.name} → {plan.destination.name}: {exc}")
