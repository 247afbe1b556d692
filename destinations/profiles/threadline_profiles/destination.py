"""The `profiles` destination: lands each stream, and resolves profiles once per run.

Streams of one run may land concurrently (the engine runs them in threads): every writer
gets its own handle on the store (a DuckDB cursor or a Postgres connection) and merges into
its own raw table; catalog changes and merges are serialised by the store's lock.
Resolution runs once, when the run has finished (`run_finished` hook), over everything
landed so far; `threadline profiles build` runs it by hand.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from pathlib import Path

import pyarrow as pa
from threadline.contracts import (
    Destination,
    StepResult,
    StreamTarget,
    StreamWriter,
    ThreadlineError,
    WriteDisposition,
    WriteReport,
)

from threadline_profiles import api
from threadline_profiles.activation.push import PushOutcome, push_all
from threadline_profiles.audiences.membership import check_config
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.engines import safe_name
from threadline_profiles.land import landing
from threadline_profiles.land.mapping import check_all, check_mapping
from threadline_profiles.pipeline import publish_report
from threadline_profiles.report import latency
from threadline_profiles.store import ProfileStore, shared_store

log = logging.getLogger("threadline.profiles")


def raw_table_name(target: StreamTarget) -> str:
    return "raw_" + safe_name(target.table or f"{target.source}__{target.stream.name}")


class ProfilesWriter(StreamWriter):
    """Writes one stream of one run into its raw table."""

    _ids = itertools.count()

    def __init__(self, store: ProfileStore, config: ProfilesConfig, target: StreamTarget) -> None:
        self.store, self.config, self.target = store, config, target
        self.schema = target.stream.schema
        self.engine = store.engine.handle()
        self.raw = raw_table_name(target)
        suffix = uuid.uuid4().hex[:8]
        self.stage = f"_tl_stage_{self.raw}_{suffix}"
        self.side = f"_tl_replace_{self.raw}_{suffix}" if target.disposition is WriteDisposition.REPLACE else None
        self.report = WriteReport()
        self._seq = 0
        self._closed = False
        with store.lock:
            self.engine.run(landing.create_raw_table(self.raw, self.schema))
            self.engine.run(landing.add_missing_columns(self.raw, self.schema, self.engine.table_columns(self.raw)))
            self.engine.run(landing.register_stream(target.source, target.stream.name, self.raw, target.stream.primary_key))
            self.engine.run(landing.create_stage_table(self.stage, self.schema))
            if self.side:
                self.engine.run(landing.create_side_table(self.side, self.raw))

    def write(self, batch: pa.RecordBatch) -> None:
        keys = landing.record_keys(batch, self.target.stream.primary_key, f"{self.target.run_id}", self._seq)
        table = pa.Table.from_batches([batch]).select(self.schema.names)
        table = table.append_column("_tl_key", keys)
        table = table.append_column("_tl_seq", pa.array(range(self._seq, self._seq + batch.num_rows), pa.int64()))
        self._seq += batch.num_rows
        missing = table.column("_tl_key").null_count
        if missing:
            table = table.filter(table.column("_tl_key").is_valid())
            self.report.rows_rejected += missing
            self.report.rejections.append(f"{missing} rows without a primary key value ({', '.join(self.target.stream.primary_key)})")
        view = f"_tl_batch_{next(self._ids)}"
        self.engine.register_arrow(view, table)
        try:
            self.engine.execute(landing.insert_into_stage(self.stage, view, self.schema))
        finally:
            self.engine.unregister(view)
        self.report.rows_written += table.num_rows

    def commit(self) -> None:
        into = self.side or self.raw
        duplicates = bool(self.engine.scalar(landing.duplicate_keys_sql(self.stage)))
        # where a DELETE rewrites the whole table, a batch of records not landed before is appended
        keys_landed = not self.engine.delete_rewrites_table or bool(
            self.engine.scalar(landing.staged_keys_landed_sql(self.stage, into)))
        statements = landing.merge_stage(self.stage, into, self.schema, self.target.source, self.target.stream.name,
                                         self.target.run_id, duplicates, keys_landed)
        if not keys_landed:  # one INSERT (and the stage emptied): nothing to commit together
            with self.store.lock:
                self.engine.run(statements)
            return
        with self.store.lock, self.engine.transaction():
            self.engine.run(statements)

    def finish(self) -> WriteReport:
        self.commit()
        with self.store.lock:
            if self.side:
                with self.engine.transaction():
                    self.engine.run(landing.replace_table(self.raw, self.side))
            self.engine.execute(f"DROP TABLE IF EXISTS {self.stage}")
        self._close()
        return self.report

    def abort(self) -> None:
        if self._closed:
            return
        try:
            with self.store.lock:
                self.engine.execute(f"DROP TABLE IF EXISTS {self.stage}")
                if self.side:
                    self.engine.execute(f"DROP TABLE IF EXISTS {self.side}")
        finally:
            self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self.engine.close()
            self.store.release()


class ProfilesDestination(Destination[ProfilesConfig]):
    """The unified profile store, as a destination named `profiles`."""

    name = "profiles"
    spec = ProfilesConfig
    applies_deletes = True  # a deleted record leaves its raw table; the next build drops it from its profile

    def __init__(self) -> None:
        # per run: the raw tables it lands whose stream says when each record arrived
        self._arrival_columns: dict[str, set[latency.ArrivalColumn]] = {}

    def check(self, config: ProfilesConfig) -> None:
        store = shared_store(config)
        try:
            store.ensure_catalog()
        finally:
            store.release()
        check_config(config)  # audience filters, trait names, suppression files
        if config.activations:
            from threadline_profiles.activation.push import check_activations

            check_activations(config, reach=True)

    def check_targets(self, config: ProfilesConfig, targets: list[StreamTarget]) -> None:
        check_all(config, {f"{t.source}.{t.stream.name}": t.stream.schema.names for t in targets})
        check_config(config)
        if config.activations:
            from threadline_profiles.activation.push import check_activations

            check_activations(config)

    def open_stream(self, config: ProfilesConfig, target: StreamTarget) -> ProfilesWriter:
        key = f"{target.source}.{target.stream.name}"
        if target.stream.arrival_field:  # its records' latency is measured at the end of the run
            arrival = latency.ArrivalColumn(raw_table_name(target), target.stream.arrival_field)
            self._arrival_columns.setdefault(target.run_id, set()).add(arrival)
        mapping = config.mapping_for(target.source, target.stream.name)
        if mapping is not None:
            check_mapping(key, mapping, target.stream.schema.names)
        check_config(config)  # a bad audience fails before anything is read
        store = shared_store(config)
        try:
            if config.mappings:
                store.save_settings()
            return ProfilesWriter(store, config, target)
        except BaseException:
            store.release()
            raise

    def locate(self, config: ProfilesConfig, target: StreamTarget) -> str:
        if config.engine == "postgres":
            from threadline_profiles.engines.postgres_engine import server

            return f"profiles:postgres:{server(config.dsn)}#{config.db_schema}.{raw_table_name(target)}"
        if config.engine == "spark":
            return f"profiles:spark:{config.spark.remote or config.spark.master}#{config.spark.database}.{raw_table_name(target)}"
        return f"profiles:duckdb:{Path(config.path).resolve()}#{raw_table_name(target)}"

    def table_exists(self, config: ProfilesConfig, target: StreamTarget) -> bool:
        if config.engine == "duckdb" and not Path(config.path).exists():
            return False  # deleted, or never built: nothing to resume into (and nothing is created)
        store = shared_store(config)
        engine = store.engine.handle()  # its own cursor: other streams' writers use the store meanwhile
        try:
            return engine.table_exists(raw_table_name(target))
        finally:
            engine.close()
            store.release()

    def finish_run(self, config: ProfilesConfig, run_id: str) -> list[StepResult]:
        """After the run's streams: build the profiles, then push the activations marked
        `push_on_build`. Each is a step of the run's record; a build that fails fails the run,
        and so does a push that fails (one below a platform's minimum is skipped, not failed)."""
        arrival_columns = sorted(self._arrival_columns.pop(run_id, set()), key=lambda c: c.table)
        if not config.resolve_on_finish:
            return []
        store = shared_store(config)
        try:
            try:
                # the report is written once, after the pushes, so it shows what the platforms took
                result = api.build(store, run_id=run_id, report=False)
            except ThreadlineError as exc:
                return [StepResult(self.name, "build", "failed", error=exc.render())]
            arrived = latency.arrivals(store, run_id, arrival_columns)
            latency.record(store, run_id, "built", arrived)
            pushes: list[StepResult] = []
            try:
                if config.activations:
                    result.pushes = push_all(store, run_id, on_build=True)
                    from threadline_profiles.audit import log as audit_log

                    audit_log.record_pushes(store, f"sync:{run_id}", result.pushes)
                    pushes = [_push_step(self.name, p) for p in result.pushes]
                    if any(p.outcome == "pushed" for p in result.pushes):
                        latency.record(store, run_id, "pushed", arrived)
            finally:
                publish_report(store, result)
            # the sync's summary covers landing; this line is how a user learns the profiles exist
            log.info("profile store: %s records resolved into %s profiles in %.1fs, %s; report: %s",
                     f"{result.records:,}", f"{result.profiles:,}", result.seconds, result.how(), result.report_path)
            steps = [StepResult(self.name, "build", "succeeded",
                                f"{result.records:,} records → {result.profiles:,} profiles ({result.mode}, "
                                f"{result.seconds:.1f}s); report: {result.report_path}"), *pushes]
            return steps
        finally:
            store.release()


def _push_step(destination: str, push: PushOutcome) -> StepResult:
    outcome = {"pushed": "succeeded", "failed": "failed"}.get(push.outcome, "skipped")
    summary = push.summary()  # counts and reasons, never members
    return StepResult(destination, f"push {push.activation}", outcome, summary,
                      error=summary if outcome == "failed" else None)
