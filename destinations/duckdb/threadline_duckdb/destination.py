"""The `duckdb` destination: one table per source stream in an embedded DuckDB file.

Batches go in as Arrow, in bulk (`INSERT ... SELECT` from the registered batch), gathered
into inserts of up to 100k rows. Each stream writes inside one transaction that `commit()`
ends (and every 250k rows, which bounds memory), so what a checkpoint covers is on disk before
the engine saves the state. Dispositions:

- append:  rows are added;
- upsert:  rows are added as for append, and at each commit the rows sharing a key with a row
           written later are deleted, in the same transaction: the last row written for a key
           wins. Into an empty table (a first load) a Bloom filter of the keys written so far
           (keys.py) flags the only keys that can repeat, so a load of unique keys pays no join
           (after a file DuckDB read itself, the keys repeated in the table are found by grouping);
           into a table that had rows, the commit joins the keys it wrote against the table. In a
           change stream, a key whose newest row's `_threadline_op` is "delete" is removed;
- replace: rows go to a staging table that takes the table's place when the stream ends,
           so readers never see a half-loaded table.

Why inserts of at most 100k rows: DuckDB writes a statement of one row group (122,880 rows) or
more straight to the file, and then rewrites those row groups at the next checkpoint — closing
the database cost ~1.9 CPU-s after 1M rows inserted 250k at a time, ~0.02 after 100k at a time.

New columns are added to the table as they appear; a column whose type the stream changed
(the source's column was altered) is converted to the new type. Two lineage columns record
the run and the time each row landed. Table and schema names follow the core's name rule
(`threadline.names`) and are quoted in every statement. A run closes the file when it ends
(`release`), so a sync waiting for the job's lock can open it next.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from threadline.contracts import (
    OPERATION_COLUMN,
    ConfigError,
    Destination,
    FatalError,
    FileLoad,
    JobPath,
    NativeFile,
    Operation,
    Spec,
    StreamTarget,
    StreamWriter,
    WriteDisposition,
    WriteReport,
)
from threadline.arrays import bool_mask
from threadline.engine.coerce import coerce
from threadline.names import safe_name
from threadline_duckdb.keys import SeenKeys

RUN_COLUMN = "_threadline_run_id"
LOADED_COLUMN = "_threadline_loaded_at"


class DuckDBConfig(Spec):
    path: JobPath  # the database file, created if missing; relative to the job file
    schema_name: str = "main"
    # DuckDB caches up to 80% of RAM by default, so its memory would grow with the data landed;
    # a bound keeps a sync's memory flat (DuckDB spills to disk beyond it). As whole
    # `threadline sync` commands (bench B6), 96MB peaked at 401 / 445 MiB for 1M / 10M rows
    # (x1.11). 32MB peaked at 376 / 386 MiB (x1.03) on DuckDB 2.0.1, but DuckDB 1.5.5 (pinned
    # for encryption, issue 20) reads a CSV in 30.5 MiB blocks and cannot read one under 32MB
    memory_limit: str = "96MB"
    # DuckDB's worker threads (None: DuckDB's own choice, one per core). On a machine other work
    # keeps busy, 1 thread does the same work in less CPU: a 1M-row CTAS took 1.9 CPU-s with 1
    # thread and between 2.2 and 4.9 with 2 at load ~11 on 2 cores (threads waiting for a core)
    threads: int | None = Field(default=None, ge=1)

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


def connect(path: Path, memory_limit: str | None = None, threads: int | None = None) -> duckdb.DuckDBPyConnection:
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
            # Values are inlined as literals here, not bound as parameters: DuckDB 1.5's parameter
            # binding imports pandas (~0.3 CPU-s a sync, tests/core/test_core_startup.py).
            con.execute(f"set memory_limit = {_literal(memory_limit)}")
        if threads:
            con.execute(f"set threads = {int(threads)}")
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


@contextmanager
def _registered(cur: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> Iterator[None]:
    """`rows` readable as the view `name` for ONE statement. DuckDB 1.5 scans a registered
    pyarrow Table through pyarrow.dataset, and importing pyarrow.dataset imports pandas when it
    is installed (~0.6 CPU-s a sync, tests/core/test_core_startup.py); an Arrow C stream (the
    PyCapsule interface) is read as it is, no slower, but only once."""
    cur.register(name, rows.__arrow_c_stream__())
    try:
        yield
    finally:
        cur.unregister(name)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def has_table(cur: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether `schema.table` exists (literals, not parameters: see connect())."""
    return bool(cur.execute(
        "select count(*) from information_schema.tables "
        f"where table_schema = {_literal(schema)} and table_name = {_literal(table)}"
    ).fetchall()[0][0])


_CSV_REJECTS, _CSV_SCANS = "__threadline_csv_rejects", "__threadline_csv_scans"
_CSV_KEYS = "__threadline_csv_keys"  # keys of held-back rows that will land (upsert)
_DUCKDB_TYPES = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.date32(): "DATE"}
# The text the engine's Arrow cast turns into the same value DuckDB's cast gives; other text
# (" 5", "1e3", "+5", "inf") is held back for the engine to decide.
_EXACT_TEXT = {pa.int64(): "-?[0-9]+", pa.float64(): r"-?[0-9]+(\.[0-9]+)?", pa.date32(): "[0-9]{4}-[0-9]{2}-[0-9]{2}"}


def _converts_exactly(column: str, arrow_type: pa.DataType) -> str:
    """SQL that is true when the text in `column` is null or converts to `arrow_type` exactly
    as the engine's cast would."""
    if pa.types.is_string(arrow_type):
        return "true"
    return (f"({column} is null or (regexp_full_match({column}, '{_EXACT_TEXT[arrow_type]}') "
            f"and try_cast({column} as {_DUCKDB_TYPES[arrow_type]}) is not null))")


def _csv_scan(file: NativeFile, rejects: bool) -> str:
    """read_csv(...) of `file` with every column as text, read as the files source's options
    say (Arrow's defaults otherwise: double quotes escape a quote, a quoted null is null). One
    reader thread, as the Arrow path reads: DuckDB's parallel reader on a busy 2-core machine
    cost 1.27-1.32x the Arrow path's CPU for a 1M-row upsert, 1.12x in one thread (bench/README.md)."""
    o = file.options
    columns = "{" + ", ".join(f"{_literal(n)}: 'VARCHAR'" for n in file.schema.names) + "}"
    nulls = "[" + ", ".join(_literal(v) for v in o.get("null_values", [""])) + "]"
    quote_char = _literal(o.get("quote_char", '"'))
    args = [_literal(str(file.path)), "header = true", f"skip = {int(o.get('skip_rows', 0))}",
            f"delim = {_literal(o.get('delimiter', ','))}", f"quote = {quote_char}", f"escape = {quote_char}",
            f"nullstr = {nulls}", "auto_detect = false", f"columns = {columns}", "ignore_errors = true", "parallel = false"]
    if rejects:
        args += ["store_rejects = true", f"rejects_table = '{_CSV_REJECTS}'", f"rejects_scan = '{_CSV_SCANS}'"]
    return "read_csv(" + ", ".join(args) + ")"


def _csv_problem(kind: str, message: str) -> str:
    found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message or "")
    if found:
        return f"expected {found.group(1)} columns, found {found.group(2)}"
    return f"{kind.lower()}: {(message or '').splitlines()[0][:200]}"


def _records_at_most(path: Path, header_lines: int) -> int:
    """How many records the file can hold at most: its lines after the header (a quoted value
    may span lines, so there may be fewer)."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n") - header_lines


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
        connect(config.path, config.memory_limit, config.threads).cursor().execute("select 1").fetchall()

    def open_stream(self, config: DuckDBConfig, target: StreamTarget) -> StreamWriter:
        return DuckDBWriter(connect(config.path, config.memory_limit, config.threads).cursor(), config.schema_name, target)

    def locate(self, config: DuckDBConfig, target: StreamTarget) -> str:
        return f"duckdb:{Path(config.path).resolve()}#{config.schema_name}.{target.table}"

    def table_exists(self, config: DuckDBConfig, target: StreamTarget) -> bool:
        if not Path(config.path).exists():
            return False  # deleted, or never written: nothing to resume into (and nothing is created)
        cur = connect(config.path, config.memory_limit, config.threads).cursor()
        try:
            return has_table(cur, config.schema_name, target.table)
        finally:
            cur.close()

    def release(self, config: DuckDBConfig) -> None:
        close(config.path)


class DuckDBWriter(StreamWriter):
    """Writes one stream inside one open transaction that each commit() ends (see the module
    docstring for how upsert keeps the last row per key)."""

    insert_rows = 100_000  # rows per INSERT: below one row group, see the module docstring
    # DuckDB keeps a transaction's rows (inserted below a row group at a time) in memory until it
    # commits: a 10M-row sync in one commit peaked at 1.8 GiB; committing every 250k rows, 713 MiB
    # (in-process, 1M rows: 449 MiB), for the same CPU as one commit. Committing before a
    # checkpoint is harmless: the state is not saved yet, and a re-read upserts the same rows.
    commit_rows = 250_000
    native_formats = frozenset({"parquet", "csv"})  # load_file reads these with DuckDB's own readers

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
            # a first load into an empty table needs no join against older rows
            self.seen = SeenKeys() if self.upsert and self._row_count() == 0 else None
        self.repeats: list[pa.Table] = []  # keys the Bloom filter flagged since the last commit
        # after a file loaded by DuckDB itself (whose keys the Bloom filter never saw), a first
        # load finds repeated keys by grouping the table: every row in it is this writer's. For
        # a 1M-row file that costs ~0.2 CPU-s, where hashing the keys into the filter cost more
        self.group_for_repeats = False
        self.wrote_since_commit = False
        self.uncommitted_rows = 0
        self.cur.execute("begin transaction")

    # ---- contract

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if not self._fits(batch.schema):
            self._flush(everything=True)
            self._ensure_table(batch.schema)
        self.rows += batch.num_rows
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        self._flush(everything=False)
        if self.uncommitted_rows >= self.commit_rows:
            self.commit()  # early, so what DuckDB holds in memory stays bounded

    def commit(self) -> None:
        self._end_transaction()
        self.cur.execute("begin transaction")

    def finish(self) -> WriteReport:
        if self.replace:
            self._flush(everything=True)
            if self._columns is None:  # nothing was written: the table becomes empty, not stale
                if self._exists(self.target.table):
                    self.cur.execute(f"delete from {self.table}")
            else:
                self.cur.execute(f"drop table if exists {self.table}")
                self.cur.execute(f"alter table {self.into} rename to {quote(self.target.table)}")
        self._end_transaction()
        return WriteReport(rows_written=self.rows)

    def load_file(self, file: NativeFile) -> FileLoad:
        """Insert a whole file in one statement with DuckDB's own reader (no Arrow round trip)."""
        self._flush(everything=True)  # rows written before the file stay before it
        return self._load_csv(file) if file.format == "csv" else self._load_parquet(file)

    def _load_parquet(self, file: NativeFile) -> FileLoad:
        """read_parquet; rows with an empty primary key are held back for the engine's quarantine.
        They are looked for only when the file's statistics do not rule them out: the footer
        counts each row group's nulls per column, and a second scan of a 1M-row file for keys
        that cannot be empty cost ~0.12 CPU-s (its filter on the insert ~0.03)."""
        if not self._fits(file.schema):
            self._ensure_table(file.schema)
        source = "read_parquet(" + _literal(str(file.path)) + ")"
        empty_key = " or ".join(f"{quote(k)} is null" for k in self.key)
        if self.seen is not None:
            self.group_for_repeats = True
        names = ", ".join(quote(n) for n in file.schema.names)
        try:
            if empty_key and not self._may_hold_nulls(file.path, self.key):
                empty_key = ""
            rows = f"(select * from {source} where not ({empty_key}))" if empty_key else source
            loaded = self.cur.execute(f"insert into {self.into} ({names}, {RUN_COLUMN}, {LOADED_COLUMN}) "
                                      f"select {names}, {self.run_literal}, now() from {rows}").fetchall()[0][0]
        except duckdb.InvalidInputException as exc:  # a damaged file (bad UTF-8, a broken page)
            raise FatalError(f"{file.path.name} cannot be read as parquet: {exc}", where="duckdb",
                             hint="re-export the file, or move it out of the stream's path") from None
        self.rows += loaded
        self.wrote_since_commit = self.wrote_since_commit or loaded > 0
        held_back = self.cur.sql(f"select * from {source} where {empty_key}").to_arrow_table() if empty_key else None
        return FileLoad(loaded, held_back)

    def _may_hold_nulls(self, path: Path, columns: list[str]) -> bool:
        """Whether the Parquet file's statistics leave room for a null in any of `columns` (top-level
        columns): false only when every row group counts zero nulls for each of them; a row
        group without the count, or a column it does not list, may hold some."""
        wanted = ", ".join(_literal(c) for c in columns)
        return not self.cur.execute(
            f"select count(distinct row_group_id) * {len(columns)} = count(*) filter "
            f"(where path_in_schema in ({wanted}) and stats_null_count = 0) "
            f"from parquet_metadata({_literal(str(path))})").fetchall()[0][0]

    def _load_csv(self, file: NativeFile) -> FileLoad:
        """read_csv with every column as text, cast in the same statement. Only rows whose every
        value converts exactly as the engine's cast would (`_converts_exactly`) and whose key is
        there are inserted; the rest are held back, as text, for the engine to coerce or
        quarantine with its reasons. Lines with the wrong number of columns come back as
        malformed, as the Arrow reader reports them."""
        schema = pa.schema([f.with_nullable(True) for f in file.schema])
        if not self._fits(schema):
            self._ensure_table(schema)
        for table in (_CSV_REJECTS, _CSV_SCANS):
            self.cur.execute(f"drop table if exists temp.{table}")
        scan = _csv_scan(file, rejects=True)
        fits = " and ".join([_converts_exactly(quote(f.name), f.type) for f in schema]
                            + [f"{quote(k)} is not null" for k in self.key]) or "true"
        typed = ", ".join(quote(f.name) if pa.types.is_string(f.type) else
                          f"cast({quote(f.name)} as {_DUCKDB_TYPES[f.type]})" for f in schema)
        names = ", ".join(quote(n) for n in schema.names)
        try:
            loaded = self.cur.execute(f"insert into {self.into} ({names}, {RUN_COLUMN}, {LOADED_COLUMN}) "
                                      f"select {typed}, {self.run_literal}, now() from {scan} where {fits}").fetchall()[0][0]
            rejects = self.cur.execute(f"select line, csv_line, error_type, error_message from temp.{_CSV_REJECTS} "
                                       "order by line").fetchall()
        except duckdb.Error as exc:
            raise FatalError(f"{file.path.name} cannot be read as csv: {str(exc).splitlines()[0][:300]}", where="duckdb",
                             hint="check the file is CSV, and the stream's csv options (delimiter, quote_char)") from None
        # text in another encoding fails the stream, as it does on the Arrow path
        undecodable = [n for n, _, kind, _ in rejects if kind in ("INVALID ENCODING", "INVALID UNICODE")]
        if undecodable:
            raise ConfigError(f"{file.path.name} is not valid utf-8 text (line {undecodable[0]})",
                              hint="set `csv: {encoding: latin-1}` (or the file's real encoding, e.g. cp1252, utf-16) on the stream")
        malformed = [{"file": file.path.name, "line": line, "text": text, "problem": _csv_problem(kind, message)}
                     for line, text, kind, message in dict((r[0], r) for r in rejects).values()]
        self.rows += loaded
        self.wrote_since_commit = self.wrote_since_commit or loaded > 0
        self.uncommitted_rows += loaded
        if self.seen is not None:
            self.group_for_repeats = True
        held_back = None
        # A record spans one line or more: when the rows loaded and the malformed lines account
        # for every line, nothing was held back and the file need not be read again.
        if loaded + len(malformed) != _records_at_most(file.path, 1 + int(file.options.get("skip_rows", 0))):
            held_back = self.cur.sql(f"select * from {_csv_scan(file, rejects=False)} where not ({fits})").to_arrow_table()
        if held_back is not None and held_back.num_rows and self.upsert:
            held_back, reread = self._with_loaded_rows_of_their_keys(file, schema, fits, held_back)
            loaded -= reread
            self.rows -= reread
            self.uncommitted_rows -= reread
        column_count = all(kind in ("TOO MANY COLUMNS", "MISSING COLUMNS") for _, _, kind, _ in rejects)
        return FileLoad(loaded, held_back if held_back is not None and held_back.num_rows else None, malformed,
                        "malformed CSV line (wrong number of columns)" if column_count else "malformed CSV line")

    def _with_loaded_rows_of_their_keys(self, file: NativeFile, schema: pa.Schema, fits: str,
                                        held_back: pa.Table) -> tuple[pa.Table, int]:
        """Rows held back land after the file's loaded rows, and in an upsert the order decides
        which row of a key wins. When a held-back row the engine will land (its own cast says
        which) shares its key with a row this transaction loaded, every row of those keys is
        handed back with the held-back rows, in file order, so the engine writes them in the
        file's order after their loaded copies, which the commit then drops as older rows of
        their keys. Returns (the rows to hand back, how many of them were loaded)."""
        landing = [good.select(self.key) for batch in held_back.to_batches()
                   if (good := coerce(batch, file.schema, tuple(self.key)).good).num_rows]
        if not landing:
            return held_back, 0  # every held-back row goes to quarantine: none competes for a key
        keys = pa.Table.from_batches(landing)
        with _registered(self.cur, "__threadline_batch", keys):
            self.cur.execute(f"create or replace temp table {_CSV_KEYS} as select distinct * from __threadline_batch")
        try:
            match = " and ".join(f"c.{quote(k)} = t.{quote(k)}" for k in self.key)
            shared = self.cur.execute(
                f"select count(*) from {self.into} t semi join temp.{_CSV_KEYS} c on {match} "
                f"where t.{LOADED_COLUMN} = now() and t.{RUN_COLUMN} = {self.run_literal}").fetchall()[0][0]
            if not shared:
                return held_back, 0
            types = {f.name: f.type for f in schema}
            same_key = " and ".join(
                f"c.{quote(k)} = " + (f"s.{quote(k)}" if pa.types.is_string(types[k])
                                      else f"try_cast(s.{quote(k)} as {_DUCKDB_TYPES[types[k]]})") for k in self.key)
            # row_number() over the scan alone is the file's order; the join after it need not keep it
            rows = self.cur.sql(
                f"select * exclude (__threadline_position) from (select row_number() over () as __threadline_position, * "
                f"from {_csv_scan(file, rejects=False)}) s where not ({fits}) or exists "
                f"(select 1 from temp.{_CSV_KEYS} c where {same_key}) order by __threadline_position").to_arrow_table()
        finally:
            self.cur.execute(f"drop table if exists temp.{_CSV_KEYS}")
        return rows, rows.num_rows - held_back.num_rows

    def abort(self) -> None:
        self.pending, self.pending_rows, self.repeats = [], 0, []
        try:
            self.cur.execute("rollback")
        except duckdb.Error:
            pass  # no transaction was open
        if self.replace:
            with _ddl_lock:
                self.cur.execute(f"drop table if exists {self.into}")

    # ---- inserting

    def _flush(self, everything: bool) -> None:
        """Insert the pending rows in slices of `insert_rows`; keep a short tail for the next
        batch unless `everything`."""
        if not self.pending or (not everything and self.pending_rows < self.insert_rows):
            return
        staged = pa.Table.from_batches(self.pending) if len({b.schema for b in self.pending}) == 1 else \
            pa.concat_tables([pa.Table.from_batches([b]) for b in self.pending], promote_options="default")
        whole = staged.num_rows if everything else staged.num_rows - staged.num_rows % self.insert_rows
        for start in range(0, whole, self.insert_rows):
            self._insert(staged.slice(start, min(self.insert_rows, whole - start)))
        rest = staged.slice(whole)
        self.pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def _insert(self, rows: pa.Table) -> None:
        names = ", ".join(quote(n) for n in rows.schema.names)
        if self.seen is not None:
            self._note_repeats(rows)
        with _registered(self.cur, "__threadline_batch", rows):
            self.cur.execute(f"insert into {self.into} ({names}, {RUN_COLUMN}, {LOADED_COLUMN}) "
                             f"select {names}, {self.run_literal}, now() from __threadline_batch")
        self.wrote_since_commit = True
        self.uncommitted_rows += rows.num_rows

    def _note_repeats(self, rows: pa.Table) -> None:
        """Keep the keys of `rows` that may have been written before, as the Bloom filter says;
        only their hashes come back from DuckDB."""
        keys = ", ".join(quote(k) for k in self.key)
        with _registered(self.cur, "__threadline_keys", rows.select(self.key)):
            hashes = self.cur.execute(f"select hash({keys}) as h from __threadline_keys").fetchnumpy()["h"]
        repeats = self.seen.flag_repeats(np.asarray(hashes))
        if repeats.any():
            self.repeats.append(rows.select(self.key).filter(bool_mask(repeats)))

    # ---- upsert: the last row written for a key wins

    def _end_transaction(self) -> None:
        """Insert what is pending, keep the newest row per key (upsert), commit."""
        self._flush(everything=True)
        if self.upsert and self.wrote_since_commit:
            self._drop_older_rows()
            if OPERATION_COLUMN in (self._columns or {}):  # a key whose newest change is a delete goes
                self.cur.execute(f"delete from {self.into} where {quote(OPERATION_COLUMN)} = '{Operation.DELETE.value}'")
        self.cur.execute("commit")
        self.repeats, self.wrote_since_commit, self.uncommitted_rows = [], False, 0

    def _drop_older_rows(self) -> None:
        """Delete every row that shares its key with a row written later. Rows this transaction
        wrote have the largest rowids, in the order they were written, so `rowid` orders rows
        from oldest to newest. Only keys that can repeat are looked at: the Bloom filter's flags
        on a first load, else the keys this transaction wrote (their `_threadline_loaded_at` is
        the transaction's `now()`)."""
        keys = ", ".join(quote(k) for k in self.key)
        match = " and ".join(f"t.{quote(k)} is not distinct from c.{quote(k)}" for k in self.key)
        candidates = None
        if self.group_for_repeats:
            source = f"(select {keys} from {self.into} group by all having count(*) > 1)"
        elif self.seen is not None:
            if not self.repeats:
                return
            candidates = pa.concat_tables(self.repeats)
            source = "__threadline_repeats"
        else:
            source = (f"(select {keys} from {self.into} where {LOADED_COLUMN} = now() "
                      f"and {RUN_COLUMN} = {self.run_literal})")
        with _registered(self.cur, source, candidates) if candidates is not None else nullcontext():
            self.cur.execute(
                f"delete from {self.into} where rowid in (select rid from ("
                f"select t.rowid as rid, row_number() over (partition by {', '.join('t.' + quote(k) for k in self.key)} "
                f"order by t.rowid desc) as newest from {self.into} t semi join (select distinct {keys} from {source}) c "
                f"on {match}) where newest > 1)")

    # ---- table shape

    def _exists(self, table: str) -> bool:
        return has_table(self.cur, self.schema_name, table)

    def _row_count(self) -> int:
        if not self._exists(self.staging_name):
            return 0
        return self.cur.execute(f"select count(*) from {self.into}").fetchall()[0][0]

    def _fits(self, schema: pa.Schema) -> bool:
        return self._columns is not None and schema.equals(self._schema)

    def _ensure_table(self, schema: pa.Schema) -> None:
        """Create the table on first write; add columns that appear later; change the type of a
        column whose type the stream changed (the source's column was altered)."""
        if self._columns is not None and schema.equals(self._schema):
            return
        _refuse_names_equal_but_for_case(schema.names, self.target.table)
        # DDL runs between transactions: concurrent streams' DDL would conflict in DuckDB's catalog
        self._end_transaction()
        empty = pa.Table.from_batches([], schema=schema)
        with _ddl_lock:
            with _registered(self.cur, "__threadline_empty", empty):
                kinds = dict(self.cur.execute("select column_name, column_type from (describe select * from __threadline_empty)").fetchall())
            if not self._exists(self.staging_name):
                with _registered(self.cur, "__threadline_empty", empty):
                    self.cur.execute(
                        f"create table {self.into} as select *, ''::varchar as {RUN_COLUMN}, "
                        f"now() as {LOADED_COLUMN} from __threadline_empty"
                    )
            # DuckDB's identifiers ignore case: `Email` in a batch is the table's `email`
            existing = {n.lower(): t for n, t in self.cur.execute(f"select column_name, column_type from (describe {self.into})").fetchall()}
            for f in schema:
                name, known = f.name, f.name.lower()  # DuckDB's identifiers ignore case
                if known not in existing:
                    self.cur.execute(f"alter table {self.into} add column {quote(name)} {kinds[name]}")
                    existing[known] = kinds[name]
                elif existing[known] != kinds[name] and not pa.types.is_null(f.type):
                    self._retype(name, existing[known], kinds[name])
                    existing[known] = kinds[name]
        self._columns = existing
        self._schema = schema
        self.cur.execute("begin transaction")

    def _retype(self, name: str, old: str, new: str) -> None:
        try:
            self.cur.execute(f"alter table {self.into} alter column {quote(name)} set data type {new}")
        except duckdb.Error as exc:
            raise FatalError(
                f"column {name!r} of {self.table} is {old}; the stream now sends {new}, and the rows it holds cannot "
                f"be converted: {str(exc).splitlines()[0]}",
                hint=f"change the column yourself (ALTER TABLE {self.table} ALTER {quote(name)} SET DATA TYPE …), or "
                     "drop the table to have it created again") from None
