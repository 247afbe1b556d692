"""What both contract suites share: a registry holding just the plugins under test, sync jobs
into a DuckDB file in a temporary folder, and a folder of files as the "sandbox" of file-based
sources.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pluggy

from threadline import hookspecs
from threadline.contracts import Batch, Destination, FatalError, NativeFile, Source, Stream, SyncMode, WriteDisposition
from threadline.engine.runner import RunReport, run_job
from threadline.job import job_from_dict
from threadline.plugins import Registry, registry as installed_registry

JOB_NAME = "contract"
SOURCE_NAME = "src"
DESTINATION_NAME = "db"


class SimulatedCrash(FatalError):
    """Raised by the suite in the middle of a read, to test that a sync resumes cleanly."""


def registry_of(sources: list[type[Source]] = (), destinations: list[type[Destination]] = ()) -> Registry:
    """A registry with only these plugins (none of the installed ones can conflict with them)."""
    manager = pluggy.PluginManager("threadline")
    manager.add_hookspecs(hookspecs)
    return Registry(
        manager=manager, plugins=[],
        sources={s.name: s for s in sources}, destinations={d.name: d for d in destinations},
    )


def installed_destination(name: str) -> type[Destination]:
    found = installed_registry().destinations.get(name)
    if found is None:
        raise AssertionError(
            f"the source contract suite lands data in the {name!r} destination, which is not installed: "
            f"pip install threadline-{name} (or `pip install -e destinations/{name}` in the threadline repo)"
        )
    return found


def table_name(stream: Stream) -> str:
    return f"{SOURCE_NAME}__{stream.name}"


def sync(
    source: type[Source], config: dict[str, Any], workdir: Path, streams: list[Stream], *,
    mode: SyncMode = SyncMode.INCREMENTAL,
    destination: type[Destination] | None = None, destination_config: dict[str, Any] | None = None,
) -> RunReport:
    """One run of a job `src → db`, state in `workdir`; `db` is DuckDB at
    `workdir/contract.duckdb` unless a destination and its config are given. Streams with a
    primary key are upserted where the destination can, others appended."""
    if destination is None:
        destination = installed_destination("duckdb")
        destination_config = {"path": str(duckdb_path(workdir))}
    choices = {}
    for s in streams:
        stream_mode = mode if mode in s.sync_modes else SyncMode.FULL_REFRESH
        upsert = s.primary_key and WriteDisposition.UPSERT in destination.dispositions
        choices[s.name] = {"sync_mode": stream_mode.value, "write": "upsert" if upsert else "append"}
    job = job_from_dict({
        "name": JOB_NAME,
        "sources": {SOURCE_NAME: {"connector": source.name, "config": config, "streams": choices}},
        "destinations": {DESTINATION_NAME: {"connector": destination.name, "config": destination_config or {}}},
        "state": str(workdir / ".threadline"),
        "concurrency": 1,
        "max_rejected_share": 0,
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([source], [destination]))


def duckdb_path(workdir: Path) -> Path:
    return workdir / "contract.duckdb"


def instrumented(
    source: type[Source], *, crash_after: dict[str, int] | None = None, record_into: list[Any] | None = None,
) -> type[Source]:
    """`source`, except that reading stream S crashes right after its `crash_after[S]`-th batch
    (or whole file handed to the destination), and every message it yields is appended to `record_into`."""

    class Instrumented(source):  # type: ignore[misc, valid-type]
        def read(self, config, request):  # noqa: ANN001 - same signature as the source's
            limit = (crash_after or {}).get(request.stream.name)
            seen = 0
            for message in super().read(config, request):
                if record_into is not None:
                    record_into.append(message)
                yield message
                if limit is not None and isinstance(message, (Batch, NativeFile)):
                    seen += 1
                    if seen >= limit:
                        raise SimulatedCrash(f"the contract suite crashed this read after {seen} batch(es) on purpose")

    Instrumented.__name__ = Instrumented.__qualname__ = f"Instrumented{source.__name__}"
    return Instrumented


def report_problem(report: RunReport) -> str:
    lines = [f"run {report.outcome}: {report.error or ''}"]
    lines += [f"  {s.source}.{s.stream}: {s.outcome} {s.error or ''}" for s in report.streams]
    return "\n".join(lines)


class FolderSandbox:
    """The "sandbox" of a file-based source: a folder that tests write files into.

    `write(name, records)` writes CSV (`.csv`) or JSON lines (`.jsonl`) and remembers the
    records, so `records` is what a full read of the folder should return.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, list[dict[str, Any]]] = {}

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for name in sorted(self.files) for r in self.files[name]]

    def write(self, name: str, records: list[dict[str, Any]]) -> Path:
        target = self.path / name
        if target.suffix == ".csv":
            with target.open("w", newline="", encoding="utf-8") as out:
                writer = csv.DictWriter(out, fieldnames=list(records[0]))
                writer.writeheader()
                writer.writerows(records)
        else:
            target.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        self.files[name] = [dict(r) for r in records]
        return target

    def stop(self) -> None:
        """Nothing runs: a folder needs no stopping (the same call as a server sandbox)."""


def end_rate_limit_pause(state_dir: Path, job: str, source: str, stream: str) -> None:
    """Make a stream paused by RateLimitStop readable again, as if its window had reset: tests
    that lift a sandbox's rate limit call this instead of waiting for the real reset time."""
    from datetime import datetime, timedelta, timezone

    from threadline.engine.runner import PAUSED_KEY
    from threadline.state import StateStore

    store = StateStore(state_dir)
    try:
        state = store.get(job, source, stream)
        if PAUSED_KEY in state:
            state[PAUSED_KEY] = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
            store.set(job, source, stream, state)
    finally:
        store.close()
