"""Run a sync job: sources → coercion and quarantine → destinations → state.

The order of things for every stream (DESIGN.md, "The record flow"):

    read a Batch      → coerce to the stream's schema, quarantine what does not fit, write
    read a Checkpoint → destination commits, THEN the state store saves the state
    stream ends       → destination finishes (REPLACE swaps), THEN the final state is saved

So a crash anywhere re-reads at most the batches since the last saved checkpoint, and an
upserting destination makes that re-read harmless. For incremental streams the engine keeps
the cursor itself: the largest cursor value written, capped at the moment the run started
(records changed during the run are read again next time rather than skipped), handed back
next run as the inclusive lower bound `ReadRequest.cursor_start`.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from threadline.contracts import (
    AudienceDestination,
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
from threadline.plugins import Registry, registry as default_registry
from threadline.secrets import redact
from threadline.state import Quarantine, RunRecord, StateStore, StreamRun, job_lock, new_run_id, utcnow

log = logging.getLogger("threadline.engine")

CURSOR_KEY = "cursor"  # the engine's own key in a stream's saved state
RESUME_KEY = "full_refresh_in_progress"  # where an unfinished full refresh keeps its checkpoint
PAUSED_KEY = "paused_until"  # set when a vendor's rate limit paused the stream (RateLimitStop)


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
    outcome: str  # succeeded | failed | paused (rate limited; resume later)
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
        chosen = src.streams if src.streams is not None else {s.name: None for s in catalog}
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
                    table=choice.table or f"{name}__{stream.name}",
                )
            )
    return plans


def _connector(job: Job, registry: Registry, kind: str, path: tuple[str, ...], name: str) -> Any:
    try:
        connector = registry.source(name) if kind == "source" else registry.destination(name)
    except ConfigError as exc:
        raise job.error(path, exc.message, hint=exc.hint) from None
    if isinstance(connector, AudienceDestination):  # fed by audiences, not by sources
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
) -> RunReport:
    """Sync every stream of the job (or the `only` sources / `source.stream`s).

    Raises ConfigError before anything is read when the job is wrong, JobLockedError when
    another sync of the job is running. Failures while syncing do not raise: they are in
    the report (`outcome == "failed"`, with the error and each stream's outcome).
    """
    registry = registry or default_registry()
    plans = plan_job(job, registry, only)
    progress = progress or QuietProgress()
    store = StateStore(job.state_dir)
    started = time.monotonic()
    run = RunRecord(run_id=new_run_id(), job=job.name, started_at=utcnow())
    try:
        with job_lock(job.state_dir, job.name, wait=wait):
            store.start_run(run)
            registry.manager.hook.run_started(run=run)
            streams = [StreamRun(p.source_name, p.stream.name, p.sync_mode.value) for p in plans]
            run.streams = streams
            ctx = _RunContext(job, run, store, registry, progress, started_at=datetime.now(timezone.utc))
            with ThreadPoolExecutor(max_workers=job.concurrency, thread_name_prefix="stream") as pool:
                list(pool.map(ctx.sync_stream, plans, streams))
            failed = [s for s in streams if s.outcome != "succeeded"]
            # paused: every stream that did not finish stopped cleanly for a rate limit
            run.outcome = ("paused" if all(s.outcome == "paused" for s in failed) else "failed") if failed else "succeeded"
            errors = [f"{s.source}.{s.stream}: {s.error}" for s in failed]
            run.steps = _finish_destinations(plans, run.run_id)
            failed_steps = [s for s in run.steps if not s.ok]
            if failed_steps:  # a build or push that failed fails the run, whatever the streams did
                run.outcome = "failed"
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


@dataclass
class _RunContext:
    job: Job
    run: RunRecord
    store: StateStore
    registry: Registry
    progress: Progress
    started_at: datetime

    def sync_stream(self, plan: StreamPlan, s: StreamRun) -> None:
        """Sync one stream; failures are recorded on `s`, never raised (other streams go on)."""
        t0 = time.monotonic()
        self.progress.stream_started(s)
        target = plan.target(self.run.run_id)
        writer = None
        try:
            writer = plan.destination.open_stream(plan.destination_config, target)
            self._pump(plan, s, writer, target, t0)
            s.outcome = "succeeded"
        except Exception as exc:  # recorded, with the stream named; other streams go on
            s.outcome = "paused" if isinstance(exc, RateLimitStop) else "failed"
            s.error = _describe(exc, plan)
            if isinstance(exc, RateLimitStop):  # so the next run does not knock before the window resets
                state = self.store.get(self.job.name, plan.source_name, plan.stream.name)
                state[PAUSED_KEY] = exc.resume_after.isoformat()
                self.store.set(self.job.name, plan.source_name, plan.stream.name, state)
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

    def _pump(self, plan: StreamPlan, s: StreamRun, writer: Any, target: StreamTarget, t0: float) -> None:
        job, stream = self.job, plan.stream
        saved = self.store.get(job.name, plan.source_name, stream.name)
        paused_until = saved.pop(PAUSED_KEY, None)
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
        cursor = _Cursor(stream, saved.get(CURSOR_KEY) if incremental else None, self.started_at)
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

        def write_batch(records: pa.RecordBatch) -> None:
            """Coerce, quarantine what does not fit, write the rest."""
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

        for message in plan.source.read(plan.source_config, request):
            if isinstance(message, Batch):
                _expect_stream(message.stream, plan)
                write_batch(message.records)
                s.seconds = time.monotonic() - t0
                self.progress.stream_progress(s)
            elif isinstance(message, Checkpoint):
                _expect_stream(message.stream, plan)
                writer.commit()  # durable first ...
                last_state = {**message.state}
                s.metrics.update(message.metrics)
                if incremental:
                    # unsorted streams keep the cursor they started from until they finish
                    cursor.save_into(last_state) if stream.cursor_sorted else cursor.keep_start_in(last_state)
                progress = last_state if incremental else {RESUME_KEY: last_state}
                self.store.set(job.name, plan.source_name, stream.name, progress)  # ... then state
            elif isinstance(message, NativeFile):
                _expect_stream(message.stream, plan)
                loaded = writer.load_file(message)
                s.rows_read += loaded.rows
                s.rows_written += loaded.rows
                hook.batch_written(run=self.run, target=target, rows=loaded.rows)
                for held in loaded.held_back.to_batches() if loaded.held_back is not None else []:
                    write_batch(held)  # rows held back (an empty key) meet the engine's rules like any batch
                s.seconds = time.monotonic() - t0
                self.progress.stream_progress(s)
            elif isinstance(message, Rejected):
                _expect_stream(message.stream, plan)
                quarantine.add(message.records, message.reason)
                s.rows_read += len(message.records)
                s.rows_rejected += len(message.records)
            else:
                raise FatalError(f"source yielded {type(message).__name__}, not a Batch, Checkpoint, Rejected or NativeFile")

        share = s.rows_rejected / s.rows_read if s.rows_read else 0.0
        if share > job.max_rejected_share:
            raise FatalError(
                f"{s.rows_rejected} of {s.rows_read} rows ({share:.1%}) could not be used, more than the "
                f"job's max_rejected_share of {job.max_rejected_share:.1%}",
                hint=f"the rows and the reason for each are in {quarantine.path}; fix the source or its "
                "schema, or raise max_rejected_share in the job file",
            )
        report = writer.finish()
        s.rows_written -= report.rows_rejected
        s.rows_rejected += report.rows_rejected
        if incremental:
            cursor.save_into(last_state)
        self.store.set(job.name, plan.source_name, stream.name, last_state)


class _Cursor:
    """The largest cursor value written so far, capped at the run's start."""

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
        return pc.cast(pa.array([value]), t)[0].as_py()
    return pa.scalar(value).cast(t).as_py()


def _expect_stream(name: str, plan: StreamPlan) -> None:
    if name != plan.stream.name:
        raise FatalError(f"source yielded a message for stream {name!r} while reading {plan.stream.name!r}")


def _describe(exc: BaseException, plan: StreamPlan) -> str:
    if isinstance(exc, ThreadlineError):
        return redact(exc.render())
    return redact(f"unexpected {type(exc).__name__} in {plan.source.name} → {plan.destination.name}: {exc}")
