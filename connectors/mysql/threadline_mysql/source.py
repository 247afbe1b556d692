"""The `mysql` source: tables and custom queries of a MySQL or MariaDB database as streams.

Rows are read in bulk into Arrow by ConnectorX (Rust; no Python per row) as a stream of
record batches; the catalog and the checks go through PyMySQL. Each session reads with
`time_zone = '+00:00'`, so TIMESTAMP columns arrive in UTC.

- full refresh: the table in primary-key order, a checkpoint every `checkpoint_rows` rows with
  the last key, so an interrupted refresh resumes after it;
- incremental: rows whose cursor is >= the engine's inclusive lower bound, in cursor order.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
from pydantic import Field

from threadline.contracts import (
    Batch,
    Catalog,
    Checkpoint,
    ConfigError,
    FatalError,
    Message,
    ReadRequest,
    Source,
    Spec,
    Stream,
    SyncMode,
)

from threadline_mysql.types import arrow_type

UTC_SESSION = "SET time_zone = '+00:00'"


class TableStream(Spec):
    table: str = Field(description="a table or view of the DSN's database (or `database.table`)")
    name: str | None = Field(None, description="the stream's name (default: the table's name)")
    cursor: str | None = Field(None, description="read incrementally by this column (>= the last value read)")
    primary_key: list[str] | None = Field(None, description="the key, for a view or a table without a primary key")


class QueryStream(Spec):
    name: str = Field(description="the stream's name")
    sql: str = Field(description="a SELECT; it is wrapped, so it may join and filter")
    primary_key: list[str] = Field(default_factory=list, description="result columns that identify a row")
    cursor: str | None = Field(None, description="incremental by this result column (>= the last value read)")


class MySQLConfig(Spec):
    dsn: str = Field(description="mysql://user:password@host:3306/database (put the password in an environment "
                                 "variable: ${MYSQL_PASSWORD})")
    tables: list[str | TableStream] | None = Field(
        None, description="only these tables: names or {table, cursor, primary_key, name} (default: every table "
                          "of the database)")
    queries: list[QueryStream] = Field(default_factory=list, description="custom SELECTs as streams")
    checkpoint_rows: int = Field(100_000, ge=1000, description="rows between checkpoints; a killed sync re-reads "
                                                               "at most this many")
    connect_timeout: int = Field(10, ge=1, description="seconds to wait for the server to answer")

    def table_options(self) -> list[TableStream]:
        return [t if isinstance(t, TableStream) else TableStream(table=t) for t in self.tables or []]


@dataclass
class _Column:
    name: str
    type: pa.DataType


@dataclass
class _Plan:
    stream: Stream
    source_sql: str  # a quoted table name, or a wrapped query
    columns: list[_Column]
    what: str


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _parts(dsn: str) -> dict[str, Any]:
    url = urlparse(dsn)
    if url.scheme not in ("mysql", "mariadb") or not url.hostname:
        raise ConfigError("`dsn` is not a MySQL URL", field="dsn",
                          hint="write it as mysql://user:password@host:3306/database")
    database = url.path.lstrip("/")
    if not database:
        raise ConfigError("`dsn` names no database", field="dsn", hint="end it with /<database>")
    return {"host": url.hostname, "port": url.port or 3306, "user": unquote(url.username or ""),
            "password": unquote(url.password or ""), "database": database}


def _where(parts: dict[str, Any]) -> str:
    return f"{parts['user']}@{parts['host']}:{parts['port']}/{parts['database']}"


def connect(config: MySQLConfig) -> Any:
    """A PyMySQL connection for the catalog and checks; failures say what to fix."""
    import pymysql

    parts = _parts(config.dsn)
    try:
        con = pymysql.connect(**parts, connect_timeout=config.connect_timeout, autocommit=True, charset="utf8mb4",
                              init_command=UTC_SESSION)
    except pymysql.err.OperationalError as exc:
        code, text = (exc.args + ("",))[:2]
        at = _where(parts)
        if code == 1045:
            raise ConfigError(f"MySQL at {at} refused the user {parts['user']!r} or its password", field="dsn",
                              hint="check the user and password in the DSN (or the environment variable it comes "
                                   "from)") from None
        if code == 1049:
            raise ConfigError(f"database {parts['database']!r} does not exist on {at}", field="dsn",
                              hint=f"fix the database name, or create it: CREATE DATABASE {quote(parts['database'])};") from None
        if code == 1044:
            raise ConfigError(f"user {parts['user']!r} may not use database {parts['database']!r}", field="dsn",
                              hint=f"GRANT SELECT ON {quote(parts['database'])}.* TO '{parts['user']}'@'%';") from None
        raise ConfigError(f"cannot connect to MySQL at {at}: {text or exc}", field="dsn",
                          hint="check the host and port in the DSN and that the server is running") from None
    return con


class MySQLSource(Source[MySQLConfig]):
    """Tables and queries of one MySQL or MariaDB database."""

    name = "mysql"
    spec = MySQLConfig
    _grantee = "'<user>'@'%'"

    def check(self, config: MySQLConfig) -> None:
        con = connect(config)
        try:
            for plan in self._plans(con, config):
                try:
                    with con.cursor() as cur:
                        cur.execute(f"select 1 from {plan.source_sql} limit 0")
                except Exception as exc:  # noqa: BLE001 - pymysql's classes
                    raise self._refused(exc, plan, con) from None
        finally:
            con.close()

    def discover(self, config: MySQLConfig) -> Catalog:
        con = connect(config)
        try:
            return Catalog(tuple(p.stream for p in self._plans(con, config)))
        finally:
            con.close()

    def read(self, config: MySQLConfig, request: ReadRequest) -> Iterator[Message]:
        con = connect(config)
        try:
            plan = next((p for p in self._plans(con, config) if p.stream.name == request.stream.name), None)
        finally:
            con.close()
        if plan is None:
            raise ConfigError(f"stream {request.stream.name!r} is no longer offered by this database",
                              hint="the table was dropped or renamed, or the config changed")
        stream = plan.stream
        columns = ", ".join(quote(c.name) for c in plan.columns)
        if request.sync_mode is SyncMode.INCREMENTAL and stream.cursor_field:
            cursor = quote(stream.cursor_field)
            where = f" where {cursor} >= {_literal(request.cursor_start)}" if request.cursor_start is not None else ""
            sql = f"select {columns} from {plan.source_sql}{where} order by {cursor}"
            yield from self._batches(config, stream, sql, plan.what, lambda last: {})
            return
        key = stream.primary_key
        after = request.state.get("after") if key else None
        where = ""
        if after:
            where = f" where ({', '.join(quote(k) for k in key)}) > ({', '.join(_literal(v) for v in after)})"
        order = f" order by {', '.join(quote(k) for k in key)}" if key else ""
        sql = f"select {columns} from {plan.source_sql}{where}{order}"
        yield from self._batches(config, stream, sql, plan.what, lambda last: {"after": last} if key else {})

    # ---- internals

    def _plans(self, con: Any, config: MySQLConfig) -> list[_Plan]:
        database = _parts(config.dsn)["database"]
        with con.cursor() as cur:
            cur.execute("select current_user()")
            name, _, host = cur.fetchone()[0].partition("@")
            self._grantee = f"'{name}'@'{host}'"
            if config.tables is None:
                cur.execute("select table_name from information_schema.tables where table_schema = %s "
                            "order by table_name", (database,))
                chosen = [TableStream(table=r[0]) for r in cur.fetchall()]
            else:
                chosen = config.table_options()
            plans = [self._table_plan(cur, database, t) for t in chosen]
            plans += [self._query_plan(con, q) for q in config.queries]
        return plans

    def _table_plan(self, cur: Any, default_db: str, options: TableStream) -> _Plan:
        db, _, table = options.table.rpartition(".")
        db = db or default_db
        cur.execute("select column_name, data_type, column_type, numeric_precision, numeric_scale from "
                    "information_schema.columns where table_schema = %s and table_name = %s order by ordinal_position",
                    (db, table))
        rows = cur.fetchall()
        if not rows:
            raise ConfigError(f"table {db}.{table} does not exist, or user {self._grantee} may not see it",
                              field="tables", hint=f"check the name; to let the user read it: GRANT SELECT ON "
                                                   f"{quote(db)}.{quote(table)} TO {self._grantee};")
        columns = [_Column(r[0], arrow_type(r[1], r[2], r[3], r[4])) for r in rows]
        cur.execute("select column_name from information_schema.key_column_usage where table_schema = %s and "
                    "table_name = %s and constraint_name = 'PRIMARY' order by ordinal_position", (db, table))
        key = tuple(options.primary_key or [r[0] for r in cur.fetchall()])
        names = [c.name for c in columns]
        for name in [*key, *([options.cursor] if options.cursor else [])]:
            if name not in names:
                raise ConfigError(f"table {db}.{table} has no column {name!r}", field="tables",
                                  hint=f"its columns: {', '.join(names)}")
        stream = Stream(options.name or (table if db == default_db else f"{db}__{table}"),
                        pa.schema([pa.field(c.name, c.type) for c in columns]), key, cursor_field=options.cursor,
                        description=f"table {db}.{table}" + (f", incremental by {options.cursor}" if options.cursor else ""))
        return _Plan(stream, f"{quote(db)}.{quote(table)}", columns, f"table {db}.{table}")

    def _query_plan(self, con: Any, spec: QueryStream) -> _Plan:
        import pymysql

        wrapped = f"({spec.sql}) as q"
        try:
            with con.cursor() as cur:
                cur.execute(f"create temporary table _threadline_shape as select * from {wrapped} limit 0")
                cur.execute("select column_name, data_type, column_type, numeric_precision, numeric_scale from "
                            "information_schema.columns where table_name = '_threadline_shape' and "
                            "table_schema = database() order by ordinal_position")
                rows = cur.fetchall()
                cur.execute("drop temporary table _threadline_shape")
        except pymysql.err.MySQLError as exc:
            raise ConfigError(f"query stream {spec.name!r} does not run: {exc.args[-1]}", field="queries",
                              hint="try the SELECT in the mysql client; it is wrapped as `select * from (<sql>) as q`") from None
        if not rows:  # temporary tables are not in information_schema on every server: describe instead
            with con.cursor() as cur:
                cur.execute(f"select * from {wrapped} limit 0")
                rows = [(d[0], _describe_type(d[1]), "", d[4], d[5]) for d in cur.description]
        columns = [_Column(r[0], arrow_type(r[1], r[2], r[3], r[4])) for r in rows]
        names = [c.name for c in columns]
        for name in [*spec.primary_key, *([spec.cursor] if spec.cursor else [])]:
            if name not in names:
                raise ConfigError(f"query stream {spec.name!r} has no result column {name!r}", field="queries",
                                  hint=f"its columns: {', '.join(names)}")
        stream = Stream(spec.name, pa.schema([pa.field(c.name, c.type) for c in columns]), tuple(spec.primary_key),
                        cursor_field=spec.cursor, description="custom query")
        return _Plan(stream, wrapped, columns, f"query stream {spec.name!r}")

    def _refused(self, exc: BaseException, plan: _Plan, con: Any) -> ConfigError:
        code = exc.args[0] if exc.args else 0
        if code in (1142, 1143, 1044):
            with con.cursor() as cur:
                cur.execute("select current_user()")
                user = cur.fetchone()[0]
            name, _, host = user.partition("@")
            return ConfigError(f"user {user!r} may not read {plan.what}", field="tables",
                               hint=f"GRANT SELECT ON {plan.source_sql} TO '{name}'@'{host}';")
        return ConfigError(f"{plan.what} cannot be read: {exc.args[-1] if exc.args else exc}", field="tables")

    def _batches(self, config: MySQLConfig, stream: Stream, sql: str, what: str, state_for) -> Iterator[Message]:
        import connectorx as cx

        parts = _parts(config.dsn)
        key = stream.primary_key
        since, last = 0, None
        try:
            reader = cx.read_sql(config.dsn, sql, return_type="arrow_stream", pre_execution_query=UTC_SESSION)
            for batch in reader:
                if not batch.num_rows:
                    continue
                yield Batch(stream.name, batch)
                since += batch.num_rows
                if key:
                    last = [_jsonable(batch.column(k)[batch.num_rows - 1].as_py()) for k in key]
                if since >= config.checkpoint_rows:
                    yield Checkpoint(stream.name, state_for(last))
                    since = 0
        except (ConfigError, FatalError):
            raise
        except Exception as exc:  # noqa: BLE001 - ConnectorX raises plain RuntimeErrors
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            lost = any(s in text.lower() for s in ("lost connection", "broken pipe", "connection reset", "gone away",
                                                   "connection refused", "io error"))
            raise FatalError(f"{'lost the connection to' if lost else 'failed reading'} MySQL at {_where(parts)} "
                             f"while reading {what}: {text}",
                             hint="what was committed is kept; the next sync resumes from the last checkpoint") from None
        if since or last is None:
            yield Checkpoint(stream.name, state_for(last))


def _describe_type(type_code: int) -> str:
    from pymysql.constants import FIELD_TYPE

    names = {v: k.lower() for k, v in vars(FIELD_TYPE).items() if k.isupper()}
    name = names.get(type_code, "blob")
    return {"long": "int", "longlong": "bigint", "short": "smallint", "tiny": "tinyint", "newdecimal": "decimal",
            "var_string": "varchar", "string": "char", "int24": "mediumint"}.get(name, name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _literal(value: Any) -> str:
    """A cursor or key value as a MySQL literal (times in UTC, as the session reads them)."""
    from pymysql.converters import escape_item

    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return escape_item(value, "utf8mb4")
