"""What every engine offers the stages: run SQL, read results as Arrow, bring Arrow in.

Stages write SQL in DuckDB's dialect; an engine for another database transpiles it with
sqlglot before running it. No stage talks to a database driver directly.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

_NAME = re.compile(r"[^a-z0-9_]+")
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")

# Set to a file path to append one JSON line per statement `Engine.run` runs (seconds and the
# statement's opening, string literals blanked so no value or secret is written): finds the
# statements a build spends its time on (bench/b3_resolution.py --statement-times).
STATEMENT_TIMES_ENV = "THREADLINE_STATEMENT_TIMES"


def _peak_rss_mb() -> int | None:
    """This process's peak resident memory so far (None where the platform does not say): in
    the statement log, the statement after which it rose is the one that took the memory."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 1024))  # bytes on macOS, KiB elsewhere


def safe_name(text: str) -> str:
    """A lower-case identifier made of letters, digits and underscores."""
    name = _NAME.sub("_", text.lower()).strip("_")
    return name if name and not name[0].isdigit() else f"t_{name}"


def quote(name: str) -> str:
    """A quoted SQL identifier (columns keep their case and may hold spaces)."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: Any) -> str:
    """A SQL literal. Used for values the store itself produced or normalized, so stage SQL
    stays one readable string that sqlglot can transpile."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def sql_type(t: pa.DataType) -> str:
    """The column type (DuckDB dialect) a raw table uses for an Arrow type."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({min(t.precision, 38)}, {t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BLOB"
    return "VARCHAR"  # strings, and nested values kept as JSON text


class Statement(str):
    """A statement in DuckDB's dialect (the portable version, what every engine runs unless
    told otherwise) carrying, beside it, the version an engine needs of its own, also written
    in DuckDB's dialect: `Statement(portable, spark=...)`. Engines pick theirs in `run` and
    `query`; nothing rewrites a statement behind the reader's back."""

    specific: dict[str, str]

    def __new__(cls, portable: str, **specific: str) -> Statement:
        out = super().__new__(cls, portable)
        out.specific = specific
        return out


# The engines whose work tables are TEMPORARY (see `work_table`); every other engine keeps them
# as ordinary tables of the store.
TEMPORARY_WORK_TABLES = frozenset({"postgres"})


def work_table(name: str, definition: str, *, if_not_exists: bool = False, **specific: str) -> Statement:
    """`CREATE TABLE name definition` for one of a stage's work tables (`tl_work_*`: made, read
    and dropped within one build): `definition` is `AS SELECT ...` or `(column TYPE, ...)`, and
    `specific` an engine's own definition where it needs one (as for `Statement`). How each
    engine keeps work tables is said here, once, and each engine runs the version made for it:

    - DuckDB: ordinary tables in the store file. DuckDB keeps a temporary table's blocks in its
      buffer pool, where at 10M records they crowd out the joins and aggregates until one
      cannot pin a block within `memory_limit`; an ordinary table's blocks are unloaded and
      read back. A killed build leaves them in the file (`Engine.leftover_tables`).
    - Spark: plain tables of the store's database (a Spark catalog has no temporary tables).
    - Postgres: TEMPORARY tables, private to the session and gone with it; an encrypted
      store never seals them (`postgres_crypto`)."""
    return _work("TABLE", name, definition, if_not_exists, specific)


def work_view(name: str, definition: str) -> Statement:
    """`CREATE VIEW name AS ...` for a stage's work view, kept as `work_table` keeps work tables
    (temporary on Postgres; a view of the store elsewhere)."""
    return _work("VIEW", name, definition, False, {})


def _work(kind: str, name: str, definition: str, if_not_exists: bool, specific: dict[str, str]) -> Statement:
    exists = "IF NOT EXISTS " if if_not_exists else ""

    def create(dialect: str | None) -> str:
        temporary = "TEMPORARY " if dialect in TEMPORARY_WORK_TABLES else ""
        return f"CREATE {temporary}{kind} {exists}{name} {specific.get(dialect or '', definition)}"

    engines = TEMPORARY_WORK_TABLES | set(specific)
    return Statement(create(None), **{dialect: create(dialect) for dialect in sorted(engines)})


def for_dialect(sql: str, dialect: str) -> str:
    """The version of `sql` an engine of `dialect` runs."""
    return sql.specific.get(dialect, sql) if isinstance(sql, Statement) else sql


class Engine(ABC):
    """A connection to the store's database, as the stages see it."""

    dialect: str = "duckdb"
    incremental_builds: bool = True  # False: every build resolves every record (incremental.plan)
    # True where a DELETE writes the table's remaining rows anew (Spark's Parquet tables): landing
    # then skips the upsert's DELETE when no staged key is in the table, so a batch of new
    # records is an append, not a rewrite of every record landed before it
    delete_rewrites_table: bool = False

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run one statement (DuckDB dialect)."""

    @abstractmethod
    def query(self, sql: str) -> pa.Table:
        """Run one SELECT (DuckDB dialect) and return its rows as Arrow."""

    @abstractmethod
    def register_arrow(self, name: str, data: pa.Table) -> None:
        """Make `data` queryable as table `name` on this handle until `unregister`."""

    @abstractmethod
    def unregister(self, name: str) -> None: ...

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def table_columns(self, table: str) -> list[str]:
        """The columns of `table`, in order; empty when the table does not exist."""

    @abstractmethod
    def column_types(self, table: str) -> dict[str, str]:
        """Column -> its type as the database names it, upper-case (e.g. `TIMESTAMP WITH TIME
        ZONE`, `DOUBLE PRECISION`, `VARCHAR`); empty when the table does not exist."""

    @abstractmethod
    def handle(self) -> Engine:
        """Another handle on the same store, for use by one thread."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def compact(self) -> str:
        """Rewrite the store so that no freed space still holds deleted rows (after an
        erasure); returns what was done, for messages."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store is, for messages (a file path or host/database/schema; no secrets)."""

    # ------------------------------------------------------------------ shared helpers

    def run(self, statements: list[str] | str) -> None:
        log = os.environ.get(STATEMENT_TIMES_ENV)
        for sql in [statements] if isinstance(statements, str) else statements:
            sql = for_dialect(sql, self.dialect)
            if not log:
                self.execute(sql)
                continue
            t0, cpu0 = time.perf_counter(), time.process_time()
            self.execute(sql)
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"seconds": round(time.perf_counter() - t0, 4),
                                      "cpu_s": round(time.process_time() - cpu0, 4), "peak_rss_mb": _peak_rss_mb(),
                                      "sql": _STRING_LITERAL.sub("'?'", " ".join(sql.split()))[:160]}) + "\n")

    def scalar(self, sql: str) -> Any:
        table = self.query(for_dialect(sql, self.dialect))
        return table.column(0)[0].as_py() if table.num_rows else None

    def table_exists(self, table: str) -> bool:
        return bool(self.table_columns(table))

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.query(for_dialect(sql, self.dialect)).to_pylist()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def require_levenshtein(self) -> None:
        """Make `LEVENSHTEIN(a, b)` callable from stage SQL (built into DuckDB)."""

    def leftover_tables(self, prefix: str) -> dict[str, str]:
        """Work tables and views (name -> 'VIEW' or 'BASE TABLE') an interrupted build may have
        left behind; none where work tables are temporary and end with the session."""
        return {}

    def append_table(self, name: str, data: pa.Table) -> None:
        """Add the rows of `data` to the existing table `name` (same columns, in order)."""
        view = f"_tl_append_{safe_name(name)}"
        self.register_arrow(view, data)
        try:
            self.execute(f"INSERT INTO {name} SELECT * FROM {view}")
        finally:
            self.unregister(view)

    def map_rows(self, source: str, columns: list[str], fn: Callable[[pa.Table], pa.Table], into: str,
                 batch_rows: int) -> None:
        """Append `fn` of the rows of work table `source` (its `columns`) to table `into`, whose
        columns `fn` returns in order. `fn` maps each row on its own (the other rows of a batch
        never change its result), so an engine may cut the batches as it likes. Here they are
        read into this process `batch_rows` at a time, by `source`'s column `n`, which numbers its
        rows 1..N; Spark runs `fn` on its executors instead (SparkEngine.map_rows)."""
        count = self.scalar(f"SELECT COUNT(*) FROM {source}") or 0
        for low in range(0, count, batch_rows):
            batch = self.query(f"SELECT {', '.join(columns)} FROM {source} WHERE n > {low} AND n <= {low + batch_rows}")
            self.append_table(into, fn(batch))

    def load_table(self, name: str, data: pa.Table, temp: bool = False) -> None:
        """Create (or replace) table `name` holding `data`; `temp`: a work table (`work_table`)."""
        view = f"_tl_load_{safe_name(name)}"
        self.register_arrow(view, data)
        try:
            self.run([f"DROP TABLE IF EXISTS {name}", load_sql(name, view, temp)])
        finally:
            self.unregister(view)


def load_sql(name: str, source: str, work: bool) -> str:
    """The statement that makes table `name` a copy of the rows of `source`: a work table
    (`work_table`) or a table of the store."""
    select = f"AS SELECT * FROM {source}"
    return work_table(name, select) if work else f"CREATE TABLE {name} {select}"
