"""The `postgres` source: tables, views and custom queries as streams, read in bulk as
Arrow; incremental by a cursor column, or by change data capture through logical
replication (pgoutput) with deletes.

How a stream is read (`read`):

- full refresh: the table in key order, a checkpoint every `checkpoint_rows` rows with the
  last key read, so an interrupted refresh resumes after it;
- incremental by cursor: rows whose cursor is >= the engine's inclusive lower bound, in cursor
  order (the engine keeps the cursor, capped at the run's start);
- change data capture (see `cdc.py`): an initial snapshot that joins the slot exactly, then
  the slot's changes as rows with an operation column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from threadline.contracts import (
    OPERATION_COLUMN,
    Catalog,
    ConfigError,
    Message,
    ReadRequest,
    Source,
    Stream,
    SyncMode,
)

from threadline_postgres import bulk, catalog, cdc, replication
from threadline_postgres.catalog import Query, Table
from threadline_postgres.config import PostgresConfig
from threadline_postgres.connect import bulk_connection, session
from threadline_postgres.sql import quote_ident
from threadline_postgres.types import Column


@dataclass
class Plan:
    """One stream and where its rows come from."""

    stream: Stream
    table: Table | None = None
    query: Query | None = None
    cdc: bool = False

    @property
    def columns(self) -> list[Column]:
        return self.table.columns if self.table else self.query.columns  # type: ignore[union-attr]

    @property
    def source_sql(self) -> str:
        return self.table.qualified if self.table else f"({self.query.spec.sql}) as q"  # type: ignore[union-attr]

    @property
    def what(self) -> str:
        return f"table {self.table.schema}.{self.table.name}" if self.table else f"query stream {self.stream.name!r}"


class PostgresSource(Source[PostgresConfig]):
    """Tables, views and queries of one Postgres database."""

    name = "postgres"
    spec = PostgresConfig

    # ---- contract

    def check(self, config: PostgresConfig) -> None:
        with session(config.dsn, config.connect_timeout) as con:
            plans = self._plans(con, config)
            hidden = catalog.unreadable(con, config)
            if hidden:
                me = catalog.user(con)
                schemas = sorted({h.split(".")[0] for h in hidden})
                raise ConfigError(
                    f"user {me!r} may not read {len(hidden)} table(s) of the configured schemas: {', '.join(hidden[:10])}",
                    field="schemas",
                    hint=" ".join(f"GRANT SELECT ON ALL TABLES IN SCHEMA {quote_ident(s)} TO {quote_ident(me)};"
                                  for s in schemas) + " — or list the tables to read in `tables:`")
            cdc_tables = [p.table for p in plans if p.cdc and p.table is not None]
            if config.replication is not None:
                replication.check_server(con)
                cdc.check_publication_rights(con, config, cdc_tables)
        bulk_connection(config.dsn, config.connect_timeout).close()

    def discover(self, config: PostgresConfig) -> Catalog:
        with session(config.dsn, config.connect_timeout) as con:
            return Catalog(tuple(p.stream for p in self._plans(con, config)))

    def read(self, config: PostgresConfig, request: ReadRequest) -> Iterator[Message]:
        with session(config.dsn, config.connect_timeout) as con:
            plan = next((p for p in self._plans(con, config) if p.stream.name == request.stream.name), None)
        if plan is None:
            raise ConfigError(f"stream {request.stream.name!r} is no longer offered by this database",
                              hint="the table was dropped or renamed, or the config changed")
        stream = request.stream
        if request.sync_mode is SyncMode.INCREMENTAL and plan.cdc:
            yield from cdc.read(config, plan.table, stream, request.state)  # type: ignore[arg-type]
        elif request.sync_mode is SyncMode.INCREMENTAL and stream.cursor_field:
            yield from self._read_by_cursor(config, plan, request)
        else:
            yield from self._read_full(config, plan, request.state)

    # ---- streams

    def _plans(self, con, config: PostgresConfig) -> list[Plan]:
        plans = [self._table_plan(config, t) for t in catalog.tables(con, config)]
        plans += [self._query_plan(catalog.query_columns(con, q)) for q in config.queries]
        return plans

    def _table_plan(self, config: PostgresConfig, table: Table) -> Plan:
        options = table.options
        name = (options.name if options and options.name else
                table.name if table.schema == config.schemas[0] else f"{table.schema}__{table.name}")
        cursor = options.cursor if options else None
        fields = [pa.field(c.name, c.arrow_type) for c in table.columns]
        use_cdc = config.replication is not None and cursor is None and cdc.capturable(table)
        what = f"{'table' if table.is_table else 'view'} {table.schema}.{table.name}"
        if use_cdc:
            stream = Stream(name, pa.schema([*fields, pa.field(OPERATION_COLUMN, pa.string())]), table.primary_key,
                            sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
                            description=f"{what}, incremental by change data capture")
        else:
            stream = Stream(name, pa.schema(fields), table.primary_key, cursor_field=cursor,
                            description=what + (f", incremental by {cursor}" if cursor else ""))
        return Plan(stream, table=table, cdc=use_cdc)

    def _query_plan(self, query: Query) -> Plan:
        spec = query.spec
        fields = [pa.field(c.name, c.arrow_type) for c in query.columns]
        stream = Stream(spec.name, pa.schema(fields), tuple(spec.primary_key), cursor_field=spec.cursor,
                        description="custom query" + (f", incremental by {spec.cursor}" if spec.cursor else ""))
        return Plan(stream, query=query)

    # ---- reads

    def _read_full(self, config: PostgresConfig, plan: Plan, state: dict) -> Iterator[Message]:
        key = plan.stream.primary_key
        where = bulk.after_key(plan.columns, key, state["after"]) if key and state.get("after") else ""
        sql = bulk.select(plan.source_sql, plan.columns, where, list(key) or None)
        yield from bulk.keyed_batches(config, plan.stream, bulk_connection(config.dsn, config.connect_timeout), sql,
                                 plan.what, lambda last: {"after": last} if key else {})

    def _read_by_cursor(self, config: PostgresConfig, plan: Plan, request: ReadRequest) -> Iterator[Message]:
        cursor = plan.stream.cursor_field
        column = next(c for c in plan.columns if c.name == cursor)
        where = f"{quote_ident(cursor)} >= {bulk.literal(request.cursor_start, column)}" \
            if request.cursor_start is not None else ""
        sql = bulk.select(plan.source_sql, plan.columns, where, [cursor])  # type: ignore[list-item]
        if not where:
            sql += " nulls first"
        yield from bulk.keyed_batches(config, plan.stream, bulk_connection(config.dsn, config.connect_timeout), sql,
                                 plan.what, lambda last: {})
