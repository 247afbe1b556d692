"""State, run history, quarantine and the job lock: everything a job keeps between runs.

One SQLite file per job's state folder (default `.threadline/` beside the job file). SQLite
is embedded, durable on commit and needs no server, which is what a default should be.
State is keyed by job, source, stream and destination — the place the stream lands, as its
destination's `locate` describes it — so a job pointed at a new database file reads everything
again instead of resuming from state that belongs to the old one. It holds only what a source
checkpointed (cursor values, tokens' positions) — never secrets or record values.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json  # noqa: F401 - registers pa.json

from threadline.contracts import StepResult, ThreadlineError

_SCHEMA = """
create table if not exists stream_state (
  job text not null, source text not null, stream text not null, destination text not null default '',
  state text not null, updated_at text not null,
  primary key (job, source, stream, destination)
);
create table if not exists runs (
  run_id text primary key, job text not null, started_at text not null, finished_at text,
  outcome text not null, error text, pid integer
);
create table if not exists run_streams (
  run_id text not null, source text not null, stream text not null,
  sync_mode text, rows_read integer, rows_written integer, rows_rejected integer,
  seconds real, outcome text, error text, metrics text, note text,
  primary key (run_id, source, stream)
);
create table if not exists run_latency (
  run_id text primary key, records integer, p50 real, p95 real, p99 real, max real
);
create table if not exists run_steps (
  run_id text not null, position integer not null, destination text not null, step text not null,
  outcome text not null, summary text, error text,
  primary key (run_id, position)
);
"""
# columns added since a state file could have been created, with their type
_ADDED_COLUMNS = {"run_streams": {"metrics": "text", "note": "text"}}

# State written before it was keyed by destination: moved under destination '' (unknown),
# which `get` falls back to, so upgrading threadline does not re-read every stream.
_MIGRATIONS = (
    ("stream_state", "destination", """
        alter table stream_state rename to stream_state_v1;
        create table stream_state (
          job text not null, source text not null, stream text not null, destination text not null default '',
          state text not null, updated_at text not null,
          primary key (job, source, stream, destination));
        insert into stream_state select job, source, stream, '', state, updated_at from stream_state_v1;
        drop table stream_state_v1;"""),
)
LEGACY_DESTINATION = ""


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StreamRun:
    """What one stream did in one run."""

    source: str
    stream: str
    sync_mode: str = ""
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    outcome: str = "running"
    error: str | None = None
    note: str | None = None  # something the user should know that is not an error (state ignored, say)
    metrics: dict[str, Any] = field(default_factory=dict)  # the source's last Checkpoint.metrics

    @property
    def rate(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunLatency:
    """Seconds from each record's arrival to the end of its follow-mode micro-batch."""

    records: int
    p50: float
    p95: float
    p99: float
    max: float


@dataclass
class RunRecord:
    run_id: str
    job: str
    started_at: str
    finished_at: str | None = None
    outcome: str = "running"
    error: str | None = None
    streams: list[StreamRun] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)  # what destinations did after the streams
    latency: RunLatency | None = None  # follow mode: arrival → end of the micro-batch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobLockedError(ThreadlineError):
    """Another sync of the same job is running."""


class StateStore:
    """The state database of one job's state folder. Safe to use from several threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")  # state must survive a power cut, not just a kill
        self._migrate()
        self._db.executescript(_SCHEMA)
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"pragma table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    self._db.execute(f"alter table {table} add column {name} {kind}")

    def _migrate(self) -> None:
        for table, column, script in _MIGRATIONS:
            columns = [r[1] for r in self._db.execute(f"pragma table_info({table})").fetchall()]
            if columns and column not in columns:
                self._db.executescript(f"begin immediate; {script} commit;")

    def close(self) -> None:
        self._db.close()

    # ---- stream state

    def get(self, job: str, source: str, stream: str, destination: str | None = None) -> dict[str, Any]:
        """The stream's saved state for `destination` (falling back to state saved before
        state was keyed by destination); with no destination, the most recently saved one."""
        with self._lock:
            if destination is None:
                row = self._db.execute(
                    "select state from stream_state where job=? and source=? and stream=? "
                    "order by updated_at desc, rowid desc limit 1", (job, source, stream)).fetchone()
            else:
                row = self._db.execute(
                    "select state from stream_state where job=? and source=? and stream=? and destination in (?, ?) "
                    "order by (destination = ?) desc limit 1",  # its own state before legacy state
                    (job, source, stream, destination, LEGACY_DESTINATION, destination)).fetchone()
        return json.loads(row[0]) if row else {}

    def set(self, job: str, source: str, stream: str, state: dict[str, Any], destination: str | None = None) -> None:
        """Save the stream's state for `destination` (replacing any state saved before state
        was keyed by destination); with no destination, every saved state of the stream."""
        payload = json.dumps(state, sort_keys=True, default=str)
        with self._lock:
            if destination is None:
                if self._db.execute("update stream_state set state=?, updated_at=? where job=? and source=? and stream=?",
                                    (payload, utcnow(), job, source, stream)).rowcount:
                    return
                destination = LEGACY_DESTINATION
            self._db.execute("begin immediate")
            try:
                if destination != LEGACY_DESTINATION:
                    self._db.execute("delete from stream_state where job=? and source=? and stream=? and destination=?",
                                     (job, source, stream, LEGACY_DESTINATION))
                self._db.execute(
                    "insert into stream_state values (?,?,?,?,?,?) on conflict (job, source, stream, destination) "
                    "do update set state=excluded.state, updated_at=excluded.updated_at",
                    (job, source, stream, destination, payload, utcnow()),
                )
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise

    def all_states(self, job: str) -> list[tuple[str, str, str, dict[str, Any], str]]:
        """(source, stream, destination, state, saved at) of every saved state of the job."""
        with self._lock:
            rows = self._db.execute(
                "select source, stream, destination, state, updated_at from stream_state where job=? "
                "order by source, stream, destination",
                (job,),
            ).fetchall()
        return [(s, st, d, json.loads(v), at) for s, st, d, v, at in rows]

    def reset(self, job: str, source: str | None = None, stream: str | None = None) -> int:
        sql, args = "delete from stream_state where job=?", [job]
        if source:
            sql, args = sql + " and source=?", [*args, source]
        if stream:
            sql, args = sql + " and stream=?", [*args, stream]
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # ---- runs

    def start_run(self, run: RunRecord) -> None:
        with self._lock:
            self._db.execute(
                "insert into runs (run_id, job, started_at, outcome, pid) values (?,?,?,?,?)",
                (run.run_id, run.job, run.started_at, run.outcome, os.getpid()),
            )

    def save_stream_run(self, run_id: str, s: StreamRun) -> None:
        with self._lock:
            self._db.execute(
                "insert or replace into run_streams (run_id, source, stream, sync_mode, rows_read, rows_written, "
                "rows_rejected, seconds, outcome, error, note, metrics) values (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, s.source, s.stream, s.sync_mode, s.rows_read, s.rows_written, s.rows_rejected,
                 round(s.seconds, 3), s.outcome, s.error, s.note, json.dumps(s.metrics) if s.metrics else None),
            )

    def finish_run(self, run: RunRecord) -> None:
        with self._lock:
            self._db.execute(
                "update runs set finished_at=?, outcome=?, error=? where run_id=?",
                (run.finished_at, run.outcome, run.error, run.run_id),
            )
            self._db.executemany(
                "insert or replace into run_steps values (?,?,?,?,?,?,?)",
                [(run.run_id, i, s.destination, s.step, s.outcome, s.summary, s.error) for i, s in enumerate(run.steps)],
            )

    def save_latency(self, run_id: str, latency: RunLatency) -> None:
        with self._lock:
            self._db.execute("insert or replace into run_latency values (?,?,?,?,?,?)",
                             (run_id, latency.records, latency.p50, latency.p95, latency.p99, latency.max))

    def runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute(
                "select run_id, job, started_at, finished_at, outcome, error, pid from runs where job=? "
                "order by started_at desc, rowid desc limit ?",
                (job, limit),
            ).fetchall()
            records = []
            for run_id, job_, started, finished, outcome, error, pid in rows:
                if outcome == "running" and pid and not _alive(pid):
                    outcome = "killed"  # the process died without recording an end
                streams = [
                    StreamRun(*r[:-1], metrics=json.loads(r[-1]) if r[-1] else {})
                    for r in self._db.execute(
                        "select source, stream, sync_mode, rows_read, rows_written, rows_rejected, seconds, outcome, "
                        "error, note, metrics from run_streams where run_id=? order by source, stream",
                        (run_id,),
                    ).fetchall()
                ]
                steps = [
                    StepResult(*r)
                    for r in self._db.execute(
                        "select destination, step, outcome, summary, error from run_steps where run_id=? order by position",
                        (run_id,),
                    ).fetchall()
                ]
                latency = self._db.execute(
                    "select records, p50, p95, p99, max from run_latency where run_id=?", (run_id,)).fetchone()
                records.append(RunRecord(run_id, job_, started, finished, outcome, error, streams, steps,
                                         RunLatency(*latency) if latency else None))
        return records

    # ---- quarantine

    def quarantine_dir(self, run_id: str) -> Path:
        return self.folder / "quarantine" / run_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Quarantine:
    """Rows that could not be coerced or parsed, kept with their reason, source, stream and
    run id as JSON lines (one file per stream and run) so that they can be read, fixed and
    replayed. Never silently dropped."""

    def __init__(self, folder: Path, run_id: str, source: str, stream: str) -> None:
        self.path = folder / f"{source}__{stream}.jsonl"
        self.run_id, self.source, self.stream = run_id, source, stream
        self.count = 0
        self._lock = threading.Lock()

    def add(self, rows: pa.Table | list[dict[str, Any]], reasons: list[str] | str) -> None:
        records = rows.to_pylist() if isinstance(rows, pa.Table) else rows
        if not records:
            return
        if isinstance(reasons, str):
            reasons = [reasons] * len(records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            for record, reason in zip(records, reasons):  # only rejected rows: a cold path
                out.write(json.dumps(
                    {"run_id": self.run_id, "source": self.source, "stream": self.stream,
                     "reason": reason, "record": record},
                    default=str, ensure_ascii=False,
                ) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.count += len(records)


@contextmanager
def job_lock(folder: Path, job: str, wait: bool = False) -> Iterator[None]:
    """Hold the job's lock for a run. A second sync of the same job waits (`wait=True`) or
    stops with a message naming the run that holds it."""
    refusal = lambda holder: JobLockedError(  # noqa: E731
        f"job {job!r} is already being synced ({holder})",
        hint="wait for that run to finish, or run `threadline sync --wait` to queue behind it")
    with file_lock(folder / f"{job}.lock", refusal, wait=wait):
        yield


@contextmanager
def file_lock(path: Path, refusal: Callable[[str], Exception], wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on `path` (flock, released when the process ends, however it
    ends). When another process holds it: wait, or raise `refusal(holder)`, where holder is
    what that process wrote in the file (its pid and since when)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            raise refusal(handle.read().strip() or "another process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {utcnow()}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock; the file stays for the next holder


def fsync_folder(folder: Path) -> None:
    """Make a file's creation, rename or removal in `folder` durable: fsync of the file alone
    leaves its directory entry in the page cache, and a crash can lose the rename."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_run_id() -> str:
    """Sortable by start time, unique even for two runs in one second."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def erase_quarantined(folder: Path, matches: Callable[[str, str, dict[str, Any]], bool]) -> int:
    """Delete from every quarantine file under the state folder `folder` the rows for which
    `matches(source, stream, record)` is true (a person's rows, when they are forgotten).
    Each file is rewritten beside itself and swapped in; a file left empty is removed.
    Returns how many rows were deleted."""
    deleted = 0
    for path in sorted((folder / "quarantine").glob("*/*.jsonl")):
        kept: list[str] = []
        gone = 0
        with path.open(encoding="utf-8") as rows:
            for line in rows:
                try:
                    row = json.loads(line)
                    hit = matches(str(row.get("source", "")), str(row.get("stream", "")), row.get("record") or {})
                except (ValueError, AttributeError):
                    hit = False  # a line we cannot read is left as it was
                if hit:
                    gone += 1
                else:
                    kept.append(line)
        if not gone:
            continue
        deleted += gone
        if not kept:
            path.unlink()
            continue
        fresh = path.with_name(path.name + ".tmp")
        with fresh.open("w", encoding="utf-8") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        os.replace(fresh, path)
        fsync_folder(path.parent)
    return deleted
