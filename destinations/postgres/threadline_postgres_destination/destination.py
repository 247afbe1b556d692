"""The `postgres` destination: one table per source stream in a Postgres schema — plain
landing, distinct from the profile store.

Batches go in by binary COPY through the ADBC driver (Arrow → COPY in C++, no Python per
row), each stream on its own connection inside a transaction that `commit()` ends, so what a
checkpoint covers is durable before the engine saves the state. Dispositions:

- append:  rows are copied into the table;
- upsert:  rows are copied into a temporary staging table and merged at each commit: the last
           row of each key wins (`DISTINCT ON`), keys whose last change is a delete
           (`_threadline_op`) are deleted, the others `INSERT … ON CONFLICT (key) DO UPDATE`;
           tables it creates get the key as PRIMARY KEY;
- replace: rows are copied into `<table>__staging`, which takes the table's place in one
           transaction when the stream ends, so readers never see a half-loaded table.

New columns are added as they appear; a column whose values no longer fit its type (the
source's type changed) is altered to the new type. Two lineage columns record the run and
the time each row landed.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from threadline.contracts import (
    OPERATION_COLUMN,
    ConfigError,
    Destination,
    FatalError,
    Operation,
    Spec,
    StreamTarget,
    StreamWriter,
    WriteDisposition,
    WriteReport,
)
from threadline_postgres.connect import bulk_connection, server, session
from threadline_postgres.sql import qualified, quote_ident, quote_literal

from threadline_postgres_destination.columns import column_arrow_type, fit, pg_type

RUN_COLUMN = "_threadline_run_id"
LOADED_COLUMN = "_threadline_loaded_at"
_SEQ = "_threadline_seq"  # write order in the staging table, so the last row of a key wins
_stages = itertools.count()

_COLUMNS_SQL = """
select a.attname, coalesce(bt.typname, t.typname),
       case when t.typtype = 'd' then t.typtypmod else a.atttypmod end, et.typname, format_type(a.atttypid, a.atttypmod)
from pg_attribute a
join pg_type t on t.oid = a.atttypid
left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
left join pg_type et on et.oid = coalesce(bt.typelem, t.typelem) and coalesce(bt.typcategory, t.typcategory) = 'A'
where a.attrelid = to_regclass({table}) and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""


class PostgresDestinationConfig(Spec):
    dsn: str = Field(description="a libpq connection string or URI: postgresql://user:password@host:5432/db "
                                 "(put the password in an environment variable: ${PG_PASSWORD})")
    schema_name: str = Field("public", description="the schema tables are created in (created if missing)")
    connect_timeout: int = Field(10, ge=1, description="seconds to wait for the server to answer")


class PostgresDestination(Destination[PostgresDestinationConfig]):
    """Lands streams as tables in a Postgres schema."""

    name = "postgres"
    spec = PostgresDestinationConfig
    applies_deletes = True

    def check(self, config: PostgresDestinationConfig) -> None:
        with session(config.dsn, config.connect_timeout) as con:
            me = con.execute("select current_user").fetchone()[0]
            exists = con.execute("select has_schema_privilege(oid, 'CREATE') from pg_namespace where nspname = %s",
                                 (config.schema_name,)).fetchone()
            if exists is None:
                if not con.execute("select has_database_privilege(current_database(), 'CREATE')").fetchone()[0]:
                    raise ConfigError(f"schema {config.schema_name!r} does not exist and user {me!r} may not create it",
                                      field="schema_name",
                                      hint=f"CREATE SCHEMA {quote_ident(config.schema_name)} AUTHORIZATION "
                                           f"{quote_ident(me)};  (or GRANT CREATE ON DATABASE … TO {quote_ident(me)};)")
            elif not exists[0]:
                raise ConfigError(f"user {me!r} may not create tables in schema {config.schema_name!r}",
                                  field="schema_name",
                                  hint=f"GRANT USAGE, CREATE ON SCHEMA {quote_ident(config.schema_name)} TO {quote_ident(me)};")
        bulk_connection(config.dsn, config.connect_timeout).close()

    def open_stream(self, config: PostgresDestinationConfig, target: StreamTarget) -> StreamWriter:
        return PostgresWriter(config, target)

    def locate(self, config: PostgresDestinationConfig, target: StreamTarget) -> str:
        return f"postgres:{server(config.dsn)}#{config.schema_name}.{target.table}"

    def table_exists(self, config: PostgresDestinationConfig, target: StreamTarget) -> bool:
        with session(config.dsn, config.connect_timeout) as con:
            return con.execute("select to_regclass(%s) is not null",
                               (qualified(config.schema_name, target.table),)).fetchone()[0]


class PostgresWriter(StreamWriter):
    """One stream of one run, on its own connection (one open transaction at a time)."""

    def __init__(self, config: PostgresDestinationConfig, target: StreamTarget) -> None:
        self.config, self.target = config, target
        self.key = list(target.stream.primary_key)
        self.upsert = target.disposition is WriteDisposition.UPSERT
        self.replace = target.disposition is WriteDisposition.REPLACE
        self.schema = config.schema_name
        self.table = target.table
        self.into = f"{target.table}__staging" if self.replace else target.table  # where batches are copied
        self.stage = f"_threadline_stage_{next(_stages)}" if self.upsert else None
        self.rows = 0
        self.pending = 0
        self.seq = 0
        self.con = bulk_connection(config.dsn, config.connect_timeout, autocommit=False)
        self.cur = self.con.cursor()
        self.columns: dict[str, tuple[str, int, str | None, str]] | None = None  # name → (typname, typmod, elem, type)
        self._sql(f"create schema if not exists {quote_ident(self.schema)}", "create the schema")
        if self.replace:
            self._sql(f"drop table if exists {qualified(self.schema, self.into)}", "drop the old staging table")
        self._commit()

    # ---- contract

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        batch = self._fit(batch)
        if self.upsert:
            batch = batch.append_column(_SEQ, pa.array(np.arange(self.seq, self.seq + batch.num_rows), pa.int64()))
            self.seq += batch.num_rows
            self._copy(batch, self.stage, temporary=True)
            self.pending += batch.num_rows
        else:
            n = batch.num_rows
            batch = batch.append_column(RUN_COLUMN, pc.take(pa.array([self.target.run_id]), pa.array(np.zeros(n, np.int32))))
            self._copy(batch, self.into)
        self.rows += batch.num_rows

    def commit(self) -> None:
        if self.upsert:
            self._merge()
        self._commit()

    def finish(self) -> WriteReport:
        if self.upsert:
            self._merge()
        if self.replace:
            if self.columns is None:  # nothing was written: the table becomes empty, not stale
                if self._exists(self.table):
                    self._sql(f"delete from {qualified(self.schema, self.table)}", "empty the table")
            else:
                self._sql(f"drop table if exists {qualified(self.schema, self.table)}", "drop the replaced table")
                self._sql(f"alter table {qualified(self.schema, self.into)} rename to {quote_ident(self.table)}",
                          "put the new table in place")
        if self.stage:
            self._sql(f"drop table if exists {quote_ident(self.stage)}", "drop the staging table")
        self._commit()
        self._close()
        return WriteReport(rows_written=self.rows)

    def abort(self) -> None:
        try:
            self.con.rollback()
            if self.replace:
                self._sql(f"drop table if exists {qualified(self.schema, self.into)}", "drop the staging table")
                self.con.commit()
        except Exception:  # noqa: BLE001 - the connection may be gone; nothing uncommitted survives that
            pass
        self._close()

    # ---- internals

    def _sql(self, sql: str, what: str) -> Any:
        try:
            self.cur.execute(sql)
        except Exception as exc:  # noqa: BLE001 - the driver's own classes
            raise _error(exc, what, self.schema, self.table) from None
        return self.cur

    def _commit(self) -> None:
        try:
            self.con.commit()
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, "commit", self.schema, self.table) from None

    def _close(self) -> None:
        try:
            self.cur.close()
            self.con.close()
        except Exception:  # noqa: BLE001
            pass

    def _exists(self, table: str) -> bool:
        self._sql(f"select to_regclass({quote_literal(qualified(self.schema, table))}) is not null", "look up the table")
        return bool(self.cur.fetchone()[0])

    def _read_columns(self, table: str) -> dict[str, tuple[str, int, str | None, str]]:
        self._sql(_COLUMNS_SQL.format(table=quote_literal(qualified(self.schema, table))), "read the table's columns")
        return {name: (typname, typmod, elem, formatted) for name, typname, typmod, elem, formatted in self.cur.fetchall()}

    def _fit(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Create the table on the first batch; add new columns; cast the batch to the table's
        column types, altering a column whose values no longer fit it."""
        if self.columns is None:
            self.columns = self._read_columns(self.into)
            if not self.columns:
                self._create(batch.schema)
            elif self.upsert:
                self._check_unique_key()
        arrays, names = [], []
        for field, array in zip(batch.schema, batch.columns):
            if field.name not in self.columns:
                self._add_column(field)
            typname, typmod, elem, formatted = self.columns[field.name]
            fitted = fit(array, field, column_arrow_type(typname, typmod, elem))
            if fitted is None:
                self._alter_column(field, formatted)
                typname, typmod, elem, _ = self.columns[field.name]
                fitted = fit(array, field, column_arrow_type(typname, typmod, elem))
                if fitted is None:
                    raise FatalError(f"column {field.name!r} of {self.schema}.{self.table} is {formatted} and the "
                                     f"stream's values ({field.type}) cannot be written to it")
            arrays.append(fitted)
            names.append(field.name)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _create(self, schema: pa.Schema) -> None:
        columns = [f"{quote_ident(f.name)} {pg_type(f)}" + (" not null" if f.name in self.key else "") for f in schema]
        columns += [f"{RUN_COLUMN} text", f"{LOADED_COLUMN} timestamptz not null default now()"]
        if self.key:
            columns.append("primary key (" + ", ".join(quote_ident(k) for k in self.key) + ")")
        self._sql(f"create table if not exists {qualified(self.schema, self.into)} ({', '.join(columns)})",
                  "create the table")
        self.columns = self._read_columns(self.into)
        if self.upsert:
            self._check_unique_key()

    def _check_unique_key(self) -> None:
        """INSERT … ON CONFLICT needs a unique index on exactly the key."""
        self._sql(
            "select count(*) from pg_index i where i.indrelid = to_regclass("
            f"{quote_literal(qualified(self.schema, self.table))}) and i.indisunique and "
            "(select array_agg(a.attname::text order by a.attname) from pg_attribute a where a.attrelid = i.indrelid "
            f"and a.attnum = any(i.indkey)) = array[{', '.join(quote_literal(k) for k in sorted(self.key))}]::text[]",
            "look up the key's unique index")
        if not self.cur.fetchone()[0]:
            keys = ", ".join(quote_ident(k) for k in self.key)
            raise ConfigError(f"table {self.schema}.{self.table} has no primary key or unique index on ({', '.join(self.key)}), "
                              "which an upsert needs", hint=f"ALTER TABLE {qualified(self.schema, self.table)} ADD "
                                                            f"PRIMARY KEY ({keys});  (or write this stream with `write: append`)")

    def _add_column(self, field: pa.Field) -> None:
        self._sql(f"alter table {qualified(self.schema, self.into)} add column if not exists "
                  f"{quote_ident(field.name)} {pg_type(field)}", f"add column {field.name}")
        if self.stage and self._stage_exists:
            self._sql(f"alter table {quote_ident(self.stage)} add column if not exists {quote_ident(field.name)} "
                      f"{pg_type(field)}", f"add column {field.name} to the staging table")
        self.columns = self._read_columns(self.into)

    def _alter_column(self, field: pa.Field, formatted: str) -> None:
        new = pg_type(field)
        using = f"{quote_ident(field.name)}::text::{new}"
        try:
            self._sql(f"alter table {qualified(self.schema, self.into)} alter column {quote_ident(field.name)} "
                      f"type {new} using {using}", f"change column {field.name} from {formatted} to {new}")
        except FatalError as exc:
            raise FatalError(f"column {field.name!r} of {self.schema}.{self.table} is {formatted}, the stream now sends "
                             f"{field.type}, and the existing values cannot be converted to {new}: {exc.message}",
                             hint=f"change the column yourself (ALTER TABLE … ALTER COLUMN {quote_ident(field.name)} TYPE …), "
                                  "or drop the table to have it created again") from None
        if self.stage and self._stage_exists:
            self._sql(f"alter table {quote_ident(self.stage)} alter column {quote_ident(field.name)} type {new} "
                      f"using {using}", f"change column {field.name} of the staging table")
        self.columns = self._read_columns(self.into)

    _stage_exists = False

    def _copy(self, batch: pa.RecordBatch, table: str | None, temporary: bool = False) -> None:
        if temporary and not self._stage_exists:
            self._sql(f"create temp table {quote_ident(table)} (like {qualified(self.schema, self.into)}) "
                      "on commit preserve rows", "create the staging table")
            self._sql(f"alter table {quote_ident(table)} drop column {LOADED_COLUMN}, drop column {RUN_COLUMN}, "
                      f"add column {_SEQ} bigint", "shape the staging table")
            self._stage_exists = True
        try:
            if temporary:
                self.cur.adbc_ingest(table, batch, mode="append", temporary=True)
            else:
                self.cur.adbc_ingest(table, batch, mode="append", db_schema_name=self.schema)
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, "copy rows in", self.schema, self.table) from None

    def _merge(self) -> None:
        """Upsert the staged rows: the last row of each key wins; a last delete deletes."""
        if not self.pending:
            return
        stage = quote_ident(self.stage)
        table = qualified(self.schema, self.into)
        keys = ", ".join(quote_ident(k) for k in self.key)
        match = " and ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in self.key)
        names = [n for n in self.columns if n not in (RUN_COLUMN, LOADED_COLUMN)]  # type: ignore[union-attr]
        cols = ", ".join(quote_ident(n) for n in names)
        newest = f"(select distinct on ({keys}) * from {stage} order by {keys}, {_SEQ} desc)"
        has_ops = OPERATION_COLUMN in names
        if has_ops:
            self._sql(f"delete from {table} t using {newest} s where {match} and s.{quote_ident(OPERATION_COLUMN)} = "
                      f"{quote_literal(Operation.DELETE.value)}", "apply deletes")
        live = f" where s.{quote_ident(OPERATION_COLUMN)} is distinct from {quote_literal(Operation.DELETE.value)}" \
            if has_ops else ""
        updates = ", ".join(f"{quote_ident(n)} = excluded.{quote_ident(n)}" for n in names if n not in self.key)
        updates = ", ".join(x for x in (updates, f"{RUN_COLUMN} = excluded.{RUN_COLUMN}",
                                        f"{LOADED_COLUMN} = excluded.{LOADED_COLUMN}") if x)
        self._sql(f"insert into {table} ({cols}, {RUN_COLUMN}, {LOADED_COLUMN}) select "
                  + ", ".join(f"s.{quote_ident(n)}" for n in names)
                  + f", {quote_literal(self.target.run_id)}, now() from {newest} s{live} "
                  f"on conflict ({keys}) do update set {updates}", "upsert the staged rows")
        self._sql(f"truncate {stage}", "empty the staging table")
        self.pending = 0


def _error(exc: BaseException, what: str, schema: str, table: str) -> Exception:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    lower = text.lower()
    if "permission denied for schema" in lower:
        return ConfigError(f"cannot {what} in schema {schema!r}: {first}", field="schema_name",
                           hint=f"GRANT USAGE, CREATE ON SCHEMA {quote_ident(schema)} TO <this user>;")
    if "permission denied" in lower or "must be owner" in lower:
        return ConfigError(f"cannot {what} on {schema}.{table}: {first}",
                           hint=f"GRANT SELECT, INSERT, UPDATE, DELETE ON {qualified(schema, table)} TO <this user>; "
                                "(altering or replacing a table needs its ownership)")
    from threadline_postgres.connect import ConnectionLost, is_connection_lost

    if is_connection_lost(exc):
        return ConnectionLost(f"lost the connection to Postgres while writing {schema}.{table} ({what}): {first}",
                              hint="rows after the last checkpoint were rolled back; the next sync writes them again")
    return FatalError(f"Postgres refused to {what} for {schema}.{table}: {first}")
