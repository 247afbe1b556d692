"""The `duckdb` destination: one table per source stream in an embedded DuckDB file.

Batches go in as Arrow, in bulk (`INSERT ... SELECT` from the registered batch). Each
stream writes inside a transaction that `commit()` ends, so what a checkpoint covers is on
disk before the engine saves the state. Dispositions:

- append:  rows are added;
- upsert:  rows replace the rows with the same primary key (delete-then-insert in one
           transaction; within a batch the last row for a key wins);
- replace: rows go to a staging table that takes the table's place when the stream ends,
           so readers never see a half-loaded table.

New columns are added to the table as they appear. Two lineage columns record the run and
the time each row landed.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from threadline.contracts import (
    ConfigError,
    Destination,
    JobPath,
    Spec,
    StreamTarget,
    StreamWriter,
    WriteDisposition,
    WriteReport,
)

RUN_COLUMN = "_threadline_run_id"
LOADED_COLUMN = "_threadline_loaded_at"


class DuckDBConfig(Spec):
    path: JobPath  # the database file, created if missing; relative to the job file
    schema_name: str = "main"


_connections: dict[Path, duckdb.DuckDBPyConnection] = {}
_connections_lock = threading.Lock()
_ddl_lock = threading.Lock()  # DDL from concurrent writers would conflict in DuckDB's catalog


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """The process's connection to a DuckDB file (DuckDB allows one writer process per file)."""
    path = path.resolve()
    with _connections_lock:
        con = _connections.get(path)
        if con is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                con = duckdb.connect(str(path))
            except duckdb.IOException as exc:
                raise ConfigError(
                    f"cannot open {path.name}: {_lock_holder(str(exc))}",
                    field="path",
                    hint="another process holds the file; wait for it to finish, or point `path` elsewhere",
                ) from None
            _connections[path] = con
        return con


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


class DuckDBDestination(Destination[DuckDBConfig]):
    """Lands streams as tables in a DuckDB file."""

    name = "duckdb"
    spec = DuckDBConfig

    def check(self, config: DuckDBConfig) -> None:
        connect(config.path).cursor().execute("select 1").fetchone()

    def open_stream(self, config: DuckDBConfig, target: StreamTarget) -> StreamWriter:
        return DuckDBWriter(connect(config.path).cursor(), config.schema_name, target)


class DuckDBWriter(StreamWriter):
    def __init__(self, cursor: duckdb.DuckDBPyConnection, schema_name: str, target: StreamTarget) -> None:
        self.cur = cursor
        self.target = target
        self.key = list(target.stream.primary_key)
        self.table = f"{quote(schema_name)}.{quote(target.table)}"
        self.schema_name = schema_name
        self.replace = target.disposition is WriteDisposition.REPLACE
        self.staging_name = f"{target.table}__staging" if self.replace else target.table
        self.into = f"{quote(schema_name)}.{quote(self.staging_name)}"
        self.rows = 0
        with _ddl_lock:
            self.cur.execute(f"create schema if not exists {quote(schema_name)}")
            if self.replace:
                self.cur.execute(f"drop table if exists {self.into}")
        self._columns: dict[str, str] | None = None
        self.cur.execute("begin transaction")

    # ---- contract

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._ensure_table(batch.schema)
        upsert = self.target.disposition is WriteDisposition.UPSERT
        if upsert:
            batch = batch.append_column("__threadline_row", pa.array(np.arange(batch.num_rows)))
        self.cur.register("__threadline_batch", batch)
        try:
            names = ", ".join(quote(n) for n in batch.schema.names if n != "__threadline_row")
            source = "__threadline_batch"
            if upsert:
                keys = ", ".join(quote(k) for k in self.key)
                source = (f"(select * from __threadline_batch qualify row_number() over "
                          f"(partition by {keys} order by __threadline_row desc) = 1)")
                match = " and ".join(f"t.{quote(k)} is not distinct from b.{quote(k)}" for k in self.key)
                self.cur.execute(f"delete from {self.into} t using __threadline_batch b where {match}")
            run = self.target.run_id.replace("'", "''")
            self.cur.execute(
                f"insert into {self.into} ({names}, {RUN_COLUMN}, {LOADED_COLUMN}) "
                f"select {names}, '{run}', now() from {source}"
            )
        finally:
            self.cur.unregister("__threadline_batch")
        self.rows += batch.num_rows

    def commit(self) -> None:
        self.cur.execute("commit")
        self.cur.execute("begin transaction")

    def finish(self) -> WriteReport:
        if self.replace:
            if self._columns is None:  # nothing was written: the table becomes empty, not stale
                self.cur.execute(f"delete from {self.table}") if self._exists(self.target.table) else None
            else:
                self.cur.execute(f"drop table if exists {self.table}")
                self.cur.execute(f"alter table {self.into} rename to {quote(self.target.table)}")
        self.cur.execute("commit")
        return WriteReport(rows_written=self.rows)

    def abort(self) -> None:
        try:
            self.cur.execute("rollback")
        except duckdb.Error:
            pass  # no transaction was open
        if self.replace:
            with _ddl_lock:
                self.cur.execute(f"drop table if exists {self.into}")

    # ---- table shape

    def _exists(self, table: str) -> bool:
        return bool(self.cur.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [self.schema_name, table],
        ).fetchone()[0])

    def _ensure_table(self, schema: pa.Schema) -> None:
        """Create the table on first write; add columns that appear later."""
        if self._columns is not None and all(n in self._columns for n in schema.names):
            return
        # DDL runs in its own transaction (between commits) so concurrent streams don't conflict
        self.cur.execute("commit")
        with _ddl_lock:
            empty = pa.Table.from_batches([], schema=schema)
            self.cur.register("__threadline_empty", empty)
            try:
                if not self._exists(self.staging_name):
                    self.cur.execute(
                        f"create table {self.into} as select *, ''::varchar as {RUN_COLUMN}, "
                        f"now() as {LOADED_COLUMN} from __threadline_empty"
                    )
                existing = {r[0]: r[1] for r in self.cur.execute(f"describe {self.into}").fetchall()}
                kinds = {r[0]: r[1] for r in self.cur.execute("describe select * from __threadline_empty").fetchall()}
                for name in schema.names:
                    if name not in existing:
                        self.cur.execute(f"alter table {self.into} add column {quote(name)} {kinds[name]}")
                        existing[name] = kinds[name]
            finally:
                self.cur.unregister("__threadline_empty")
        self._columns = existing
        self.cur.execute("begin transaction")
