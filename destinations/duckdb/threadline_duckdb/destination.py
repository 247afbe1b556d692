"""The `duckdb` destination: one table per source stream in an embedded DuckDB file.

Batches go in as Arrow, in bulk (`INSERT ... SELECT` from the registered batch). Each
stream writes inside a transaction that `commit()` ends, so what a checkpoint covers is on
disk before the engine saves the state. Dispositions:

- append:  rows are added;
- upsert:  batches wait as Arrow until a commit (or 250k rows) and are then merged with one
           delete-join and one insert in one transaction: one join per checkpoint rather than
           one per batch. The last row written for a key wins; in a change stream, when that
           row's `_threadline_op` is "delete", the key's row is removed;
- replace: rows go to a staging table that takes the table's place when the stream ends,
           so readers never see a half-loaded table.

New columns are added to the table as they appear; a column whose type the stream changed
(the source's column was altered) is converted to the new type. Two lineage columns record
the run and the time each row landed. Table and schema names follow the core's name rule
(`threadline.names`) and are quoted in every statement. A run closes the file when it ends
(`release`), so a sync waiting for the job's lock can open it next.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import field_validator

from threadline.contracts import (
    OPERATION_COLUMN,
    ConfigError,
    Destination,
    FatalError,
    JobPath,
    Operation,
    Spec,
    StreamTarget,
    StreamWriter,
    WriteDisposition,
    WriteReport,
)
from threadline.names import safe_name

_ROW = "__threadline_row"  # write order, so the last row written for a key wins
RUN_COLUMN = "_threadline_run_id"
LOADED_COLUMN = "_threadline_loaded_at"


class DuckDBConfig(Spec):
    path: JobPath  # the database file, created if missing; relative to the job file
    schema_name: str = "main"
    # DuckDB caches up to 80% of RAM by default, so its memory would grow with the data landed;
    # a bound keeps a sync's memory flat (DuckDB spills to disk beyond it)
    memory_limit: str = "256MB"

    @field_validator("schema_name")
    @classmethod
    def _schema_is_a_safe_name(cls, value: str) -> str:
        try:
            return safe_name(value, "schema_name")
        except ConfigError as exc:
            raise ValueError(f"{exc.message} ({exc.hint})") from None


_connections: dict[Path, duckdb.DuckDBPyConnection] = {}
_connections_lock = threading.Lock()
_ddl_lock = threading.Lock()  # DDL from concurrent writers would conflict in DuckDB's catalog


def connect(path: Path, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """The process's connection to a DuckDB file (DuckDB allows one writer process per file)."""
    path = path.resolve()
    with _connections_lock:
        con = _connections.get(path)
        if con is None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                con = duckdb.connect(str(path))
            except OSError as exc:
                raise ConfigError(f"cannot create {path}: {exc.strerror}", field="path",
                                  hint="point `path` at a file in a folder this user can write to") from None
            except duckdb.IOException as exc:
                locked = "lock" in str(exc).lower()
                raise ConfigError(
                    f"cannot open {path.name}: {_lock_holder(str(exc)) if locked else str(exc).splitlines()[0]}",
                    field="path",
                    hint="another process holds the file; wait for it to finish, or point `path` elsewhere"
                    if locked else "check that `path` is a DuckDB file this user can write",
                ) from None
            _connections[path] = con
        if memory_limit:
            con.execute("set memory_limit = ?", [memory_limit])
        return con


def close(path: Path) -> None:
    """Close the process's connection to one file, if open, so another process can open it."""
    with _connections_lock:
        con = _connections.pop(Path(path).resolve(), None)
        if con is not None:
            con.close()


def close_all() -> None:
    """Close every cached connection (tests, and before another process must open the file)."""
    with _connections_lock:
        for con in _connections.values():
            con.close()
        _connections.clear()


def _lock_holder(message: str) -> str:
    m = re.search(r"PID (\d+)", message)
    return f"it is locked by another process (pid {m.group(1)})" if m else "it is locked or unreadable"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _refuse_names_equal_but_for_case(names: list[str], table: str) -> None:
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise FatalError(f"columns {other!r} and {name!r} of {table} differ only in case, and DuckDB "
                             "takes them for one column", where="duckdb",
                             hint="rename one of them in the source (or its export), or map it to another name")


class DuckDBDestination(Destination[DuckDBConfig]):
    """Lands streams as tables in a DuckDB file."""

    name = "duckdb"
    spec = DuckDBConfig
    applies_deletes = True

    def check(self, config: DuckDBConfig) -> None:
        connect(config.path, config.memory_limit).cursor().execute("select 1").fetchall()

    def open_stream(self, config: DuckDBConfig, target: StreamTarget) -> StreamWriter:
        return DuckDBWriter(connect(config.path, config.memory_limit).cursor(), config.schema_name, target)

    def locate(self, config: DuckDBConfig, target: StreamTarget) -> str:
        return f"duckdb:{Path(config.path).resolve()}#{config.schema_name}.{target.table}"

    def table_exists(self, config: DuckDBConfig, target: StreamTarget) -> bool:
        if not Path(config.path).exists():
            return False  # deleted, or never written: nothing to resume into (and nothing is created)
        cur = connect(config.path, config.memory_limit).cursor()
        try:
            return bool(cur.execute(
                "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                [config.schema_name, target.table]).fetchall()[0][0])
        finally:
            cur.close()

    def release(self, config: DuckDBConfig) -> None:
        close(config.path)


class DuckDBWriter(StreamWriter):
    """Append and replace write inside one open transaction that each commit() ends.

    Upsert keeps batches as Arrow until commit() — or until `flush_rows` are pending — and then
    merges them in a short transaction of its own: delete the table's rows with those keys,
    insert the newest pending row per key. Merging before the checkpoint is harmless (the state
    is not saved yet, and a re-read upserts the same rows), and it bounds both memory and the
    size of any one transaction: DuckDB 2.0.0 reads back 0 rows from a table holding more than
    ~1M rows uncommitted in the same transaction, so no transaction here reads a table after
    writing that many rows to it (the >1M-row test in tests/ keeps that covered)."""

    flush_rows = 250_000

    def __init__(self, cursor: duckdb.DuckDBPyConnection, schema_name: str, target: StreamTarget) -> None:
        self.cur = cursor
        self.target = target
        safe_name(target.table, "table")  # the engine checked it; a writer driven by hand is checked here
        self.key = list(target.stream.primary_key)
        self.table = f"{quote(schema_name)}.{quote(target.table)}"
        self.schema_name = schema_name
        self.upsert = target.disposition is WriteDisposition.UPSERT
        self.replace = target.disposition is WriteDisposition.REPLACE
        self.staging_name = f"{target.table}__staging" if self.replace else target.table
        self.into = f"{quote(schema_name)}.{quote(self.staging_name)}"
        self.run_literal = "'" + target.run_id.replace("'", "''") + "'"
        self.rows = 0
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self._columns: dict[str, str] | None = None
        self._schema: pa.Schema | None = None  # the batch schema the table was last fitted to
        with _ddl_lock:
            self.cur.execute(f"create schema if not exists {quote(schema_name)}")
            if self.replace:
                self.cur.execute(f"drop table if exists {self.into}")
        self._begin()

    def _begin(self) -> None:
        if not self.upsert:  # upsert merges in transactions of their own
            self.cur.execute("begin transaction")

    def _commit(self) -> None:
        if not self.upsert:
            self.cur.execute("commit")

    # ---- contract

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._ensure_table(batch.schema)
        self.rows += batch.num_rows
        if self.upsert:
            self.pending.append(batch)
            self.pending_rows += batch.num_rows
            if self.pending_rows >= self.flush_rows:
                self._merge_pending()
            return
        names = ", ".join(quote(n) for n in batch.schema.names)
        self.cur.register("__threadline_batch", batch)
        try:
            self.cur.execute(f"insert into {self.into} ({names}, {RUN_COLUMN}, {LOADED_COLUMN}) "
                             f"select {names}, {self.run_literal}, now() from __threadline_batch")
        finally:
            self.cur.unregister("__threadline_batch")

    def commit(self) -> None:
        if self.upsert:
            self._merge_pending()
        else:
            self.cur.execute("commit")
            self.cur.execute("begin transaction")

    def finish(self) -> WriteReport:
        if self.upsert:
            self._merge_pending()
            return WriteReport(rows_written=self.rows)
        if self.replace:
            if self._columns is None:  # nothing was written: the table becomes empty, not stale
                if self._exists(self.target.table):
                    self.cur.execute(f"delete from {self.table}")
            else:
                self.cur.execute(f"drop table if exists {self.table}")
                self.cur.execute(f"alter table {self.into} rename to {quote(self.target.table)}")
        self.cur.execute("commit")
        return WriteReport(rows_written=self.rows)

    def abort(self) -> None:
        self.pending, self.pending_rows = [], 0
        if not self.upsert:
            try:
                self.cur.execute("rollback")
            except duckdb.Error:
                pass  # no transaction was open
        if self.replace:
            with _ddl_lock:
                self.cur.execute(f"drop table if exists {self.into}")

    def _merge_pending(self) -> None:
        """Upsert the pending batches in one transaction."""
        if not self.pending:
            return
        staged = pa.concat_tables([pa.Table.from_batches([b]) for b in self.pending], promote_options="default")
        staged = staged.append_column(_ROW, pa.array(np.arange(staged.num_rows)))
        keys = ", ".join(quote(k) for k in self.key)
        match = " and ".join(f"t.{quote(k)} is not distinct from s.{quote(k)}" for k in self.key)
        names = ", ".join(quote(c) for c in staged.schema.names if c != _ROW)
        self.cur.register("__threadline_pending", staged)
        try:
            total, distinct = self.cur.execute(
                f"select count(*), count(distinct ({keys})) from __threadline_pending").fetchall()[0]
            # the window costs as much as the insert: only pay it when a key really came twice
            newest = f"qualify row_number() over (partition by {keys} order by {_ROW} desc) = 1" if total != distinct else ""
            rows = f"(select * from __threadline_pending {newest})"
            if OPERATION_COLUMN in staged.schema.names:  # a key whose last change is a delete is not inserted again
                rows = f"(select * from {rows} where {quote(OPERATION_COLUMN)} is distinct from '{Operation.DELETE.value}')"
            self.cur.execute("begin transaction")
            try:
                self.cur.execute(f"delete from {self.into} t using (select distinct {keys} from __threadline_pending) s where {match}")
                self.cur.execute(f"insert into {self.into} ({names}, {RUN_COLUMN}, {LOADED_COLUMN}) "
                                 f"select {names}, {self.run_literal}, now() from {rows}")
                self.cur.execute("commit")
            except BaseException:
                self.cur.execute("rollback")
                raise
        finally:
            self.cur.unregister("__threadline_pending")
        self.pending, self.pending_rows = [], 0

    # ---- table shape

    def _exists(self, table: str) -> bool:
        return bool(self.cur.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [self.schema_name, table],
        ).fetchall()[0][0])

    def _ensure_table(self, schema: pa.Schema) -> None:
        """Create the table on first write; add columns that appear later; change the type of a
        column whose type the stream changed (the source's column was altered)."""
        if self._columns is not None and schema.equals(self._schema):
            return
        _refuse_names_equal_but_for_case(schema.names, self.target.table)
        # DDL runs between transactions: concurrent streams' DDL would conflict in DuckDB's catalog
        self._commit()
        with _ddl_lock:
            self.cur.register("__threadline_empty", pa.Table.from_batches([], schema=schema))
            try:
                if not self._exists(self.staging_name):
                    self.cur.execute(
                        f"create table {self.into} as select *, ''::varchar as {RUN_COLUMN}, "
                        f"now() as {LOADED_COLUMN} from __threadline_empty"
                    )
                # DuckDB's identifiers ignore case: `Email` in a batch is the table's `email`
                existing = {n.lower(): t for n, t in self.cur.execute(f"select column_name, column_type from (describe {self.into})").fetchall()}
                kinds = dict(self.cur.execute("select column_name, column_type from (describe select * from __threadline_empty)").fetchall())
                for f in schema:
                    name, known = f.name, f.name.lower()  # DuckDB's identifiers ignore case
                    if known not in existing:
                        self.cur.execute(f"alter table {self.into} add column {quote(name)} {kinds[name]}")
                        existing[known] = kinds[name]
                    elif existing[known] != kinds[name] and not pa.types.is_null(f.type):
                        self._retype(name, existing[known], kinds[name])
                        existing[known] = kinds[name]
            finally:
                self.cur.unregister("__threadline_empty")
        self._columns = existing
        self._schema = schema
        self._begin()

    def _retype(self, name: str, old: str, new: str) -> None:
        try:
            self.cur.execute(f"alter table {self.into} alter column {quote(name)} set data type {new}")
        except duckdb.Error as exc:
            raise FatalError(
                f"column {name!r} of {self.table} is {old}; the stream now sends {new}, and the rows it holds cannot "
                f"be converted: {str(exc).splitlines()[0]}",
                hint=f"change the column yourself (ALTER TABLE {self.table} ALTER {quote(name)} SET DATA TYPE …), or "
                     "drop the table to have it created again") from None
