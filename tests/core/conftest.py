"""Fixtures for the core tests: a source that serves records from memory (so tests can
change what it serves between syncs) and a destination that can be told to fail, both
registered as in-process plugins next to the real installed ones."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from threadline import hookimpl
from threadline.contracts import (
    Batch, Catalog, Checkpoint, Destination, FatalError, ReadRequest, Source, Spec, Stream,
    StepResult, StreamTarget, StreamWriter, SyncMode, WriteReport,
)
from threadline.job import job_from_dict
from threadline.plugins import load_registry

PEOPLE = pa.schema([
    ("id", pa.int64()), ("email", pa.string()), ("updated_at", pa.timestamp("us", tz="UTC")),
])


class MemoryConfig(Spec):
    page_size: int = 2
    streams: list[str] = ["people"]
    first_checkpoint: dict[str, Any] = {}  # yielded before any row (a CDC source's slot made, say)


class MemorySource(Source[MemoryConfig]):
    """Serves `MemorySource.records` (a list of dicts) sorted by updated_at, honouring
    cursor_start inclusively, with a checkpoint after every page."""

    name = "memory"
    spec = MemoryConfig
    records: list[dict[str, Any]] = []
    active = 0
    max_active = 0
    lock = threading.Lock()
    gate: threading.Barrier | None = None
    states_seen: list[dict[str, Any]] = []  # request.state of every read, in order
    sigint_handlers_seen: list[Any] = []  # the SIGINT handler while each read ran

    def check(self, config: MemoryConfig) -> None:
        pass

    def discover(self, config: MemoryConfig) -> Catalog:
        return Catalog(tuple(Stream(n, PEOPLE, ("id",), cursor_field="updated_at") for n in config.streams))

    def read(self, config: MemoryConfig, request: ReadRequest) -> Iterator[Any]:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.max_active = max(cls.max_active, cls.active)
        try:
            if cls.gate is not None:
                cls.gate.wait(timeout=10)
            cls.states_seen.append(dict(request.state))
            cls.sigint_handlers_seen.append(signal.getsignal(signal.SIGINT))
            if config.first_checkpoint:
                yield Checkpoint(request.stream.name, dict(config.first_checkpoint))
            rows = sorted(cls.records, key=lambda r: r["updated_at"])
            if request.cursor_start is not None:
                rows = [r for r in rows if r["updated_at"] >= request.cursor_start]
            for i in range(0, len(rows), config.page_size):
                page = rows[i : i + config.page_size]
                yield Batch(request.stream.name, pa.RecordBatch.from_pylist(page, schema=PEOPLE))
                yield Checkpoint(request.stream.name, {"page": i // config.page_size})
        finally:
            with cls.lock:
                cls.active -= 1


class FlakyConfig(Spec):
    fail_on_write: int = 0  # fail the n-th write (1-based); 0 never
    after_run: str = "nothing"  # the post-run step: nothing | succeed | report_failure | raise


class MemoryDestination(Destination[FlakyConfig]):
    """Keeps committed rows per table in memory; can fail on the n-th write."""

    name = "memory"
    spec = FlakyConfig
    tables: dict[str, list[dict[str, Any]]] = {}
    writes = 0

    def check(self, config: FlakyConfig) -> None:
        pass

    def open_stream(self, config: FlakyConfig, target: StreamTarget) -> StreamWriter:
        return _MemoryWriter(config, target, self)

    def table_exists(self, config: FlakyConfig, target: StreamTarget) -> bool:
        return target.table in type(self).tables

    def finish_run(self, config: FlakyConfig, run_id: str) -> list[StepResult]:
        if config.after_run == "raise":
            raise FatalError("the index could not be rebuilt (injected)")
        if config.after_run == "report_failure":
            return [StepResult(self.name, "index", "failed", error="index rebuild refused (injected)")]
        if config.after_run == "succeed":
            return [StepResult(self.name, "index", "succeeded", "indexed every table")]
        return []


class _MemoryWriter(StreamWriter):
    def __init__(self, config: FlakyConfig, target: StreamTarget, dest: MemoryDestination) -> None:
        self.config, self.target, self.dest, self.pending = config, target, dest, []

    def write(self, batch: pa.RecordBatch) -> None:
        type(self.dest).writes += 1
        if self.config.fail_on_write and type(self.dest).writes == self.config.fail_on_write:
            raise FatalError("disk full (injected)")
        self.pending.extend(batch.to_pylist())

    def commit(self) -> None:
        if not self.pending:  # as a database would: no rows, no table
            return
        table = type(self.dest).tables.setdefault(self.target.table, [])
        key = self.target.stream.primary_key
        for row in self.pending:
            if key:
                table[:] = [r for r in table if tuple(r[k] for k in key) != tuple(row[k] for k in key)]
            table.append(row)
        self.pending = []

    def finish(self) -> WriteReport:
        self.commit()
        return WriteReport(rows_written=0)


class MemoryPlugin:
    @staticmethod
    @hookimpl
    def register_sources(register):
        register(MemorySource)

    @staticmethod
    @hookimpl
    def register_destinations(register):
        register(MemoryDestination)


def ts(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=timezone.utc)


@pytest.fixture
def memory(tmp_path: Path) -> SimpleNamespace:
    """The in-memory source and destination registered beside the installed plugins, reset
    for each test, with `job(**overrides)` to build a job that uses them."""
    MemorySource.records, MemorySource.active, MemorySource.max_active, MemorySource.gate = [], 0, 0, None
    MemorySource.states_seen, MemorySource.sigint_handlers_seen = [], []
    MemoryDestination.tables, MemoryDestination.writes = {}, 0

    def job(**overrides: Any):
        data = {
            "name": "memjob",
            "sources": {"app": {"connector": "memory", "config": overrides.pop("source_config", {})}},
            "destinations": {"dest": {"connector": "memory", "config": overrides.pop("destination_config", {})}},
            **overrides,
        }
        return job_from_dict(data, tmp_path)

    return SimpleNamespace(
        registry=load_registry(extra_plugins=[MemoryPlugin]), source=MemorySource,
        destination=MemoryDestination, job=job, ts=ts, schema=PEOPLE,
    )
