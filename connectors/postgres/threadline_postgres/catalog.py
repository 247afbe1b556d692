"""What the database offers: tables (and views) with their columns and keys, and the shape
of custom queries. Missing schemas, tables and privileges are errors with the SQL that fixes
them."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from threadline.contracts import ConfigError

from threadline_postgres.config import PostgresConfig, QueryStream, TableStream
from threadline_postgres.sql import qualified, quote_ident
from threadline_postgres.types import Column

_COLUMNS_SQL = """
select a.attname, coalesce(bt.typname, t.typname),
       case when t.typtype = 'd' then t.typtypmod else a.atttypmod end,
       et.typname, a.attnotnull
from pg_attribute a
join pg_type t on t.oid = a.atttypid
left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
left join pg_type et on et.oid = coalesce(bt.typelem, t.typelem) and coalesce(bt.typcategory, t.typcategory) = 'A'
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""

_PRIMARY_KEY_SQL = """
select a.attname from pg_index i
join lateral unnest(i.indkey) with ordinality as k(attnum, n) on true
join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
where i.indrelid = %s and i.indisprimary order by k.n
"""

_TABLES_SQL = """
select c.oid, n.nspname, c.relname, c.relkind, c.relreplident, has_table_privilege(c.oid, 'SELECT')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition
order by c.relname
"""


@dataclass
class Table:
    """A table or view, as a stream reads it."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind: r table, p partitioned, v view, m materialized view, f foreign
    replica_identity: str  # d default (the primary key), f full, i index, n nothing
    columns: list[Column] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()
    options: TableStream | None = None

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def is_table(self) -> bool:
        return self.kind in ("r", "p")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise ConfigError(f"table {self.schema}.{self.name} has no column {name!r}",
                          hint=f"its columns: {', '.join(c.name for c in self.columns)}")


@dataclass
class Query:
    """A custom query and the columns of its result."""

    spec: QueryStream
    columns: list[Column]


def user(con: psycopg.Connection) -> str:
    return con.execute("select current_user").fetchone()[0]


def tables(con: psycopg.Connection, config: PostgresConfig) -> list[Table]:
    """The tables the config names, or every readable table of its schemas."""
    me = user(con)
    for schema in config.schemas:
        _check_schema(con, schema, me)
    if config.tables is None:
        found: list[Table] = []
        for schema in config.schemas:
            for oid, nsp, rel, kind, ident, readable in con.execute(_TABLES_SQL, (schema,)).fetchall():
                if readable:  # tables this user cannot read are not offered (naming them: check())
                    found.append(Table(oid, nsp, rel, kind, ident))
        return [_describe(con, t) for t in found]
    return [_describe(con, _named(con, options, config.schemas[0], me)) for options in config.table_options()]


def unreadable(con: psycopg.Connection, config: PostgresConfig) -> list[str]:
    """Tables in the config's schemas this user cannot SELECT (only when `tables` is not given)."""
    if config.tables is not None:
        return []
    out = []
    for schema in config.schemas:
        out += [f"{nsp}.{rel}" for _, nsp, rel, _, _, readable in con.execute(_TABLES_SQL, (schema,)).fetchall()
                if not readable]
    return out


def _check_schema(con: psycopg.Connection, schema: str, me: str) -> None:
    row = con.execute("select has_schema_privilege(oid, 'USAGE') from pg_namespace where nspname = %s",
                      (schema,)).fetchone()
    if row is None:
        raise ConfigError(f"schema {schema!r} does not exist in this database", field="schemas",
                          hint="list the schemas that hold your tables (`\\dn` in psql)")
    if not row[0]:
        raise ConfigError(f"user {me!r} may not use schema {schema!r}", field="schemas",
                          hint=f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {quote_ident(me)};")


def _named(con: psycopg.Connection, options: TableStream, default_schema: str, me: str) -> Table:
    schema, _, name = options.table.rpartition(".")
    schema = schema or default_schema
    row = con.execute(
        "select c.oid, n.nspname, c.relname, c.relkind, c.relreplident, has_table_privilege(c.oid, 'SELECT') "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s "
        "and c.relkind in ('r', 'p', 'v', 'm', 'f')", (schema, name)).fetchone()
    if row is None:
        raise ConfigError(f"table {schema}.{name} does not exist", field="tables",
                          hint="check the name (a table outside the first of `schemas` is written `schema.table`)")
    oid, nsp, rel, kind, ident, readable = row
    if not readable:
        raise ConfigError(f"user {me!r} may not read table {schema}.{name}", field="tables",
                          hint=f"GRANT SELECT ON {qualified(schema, name)} TO {quote_ident(me)};")
    return Table(oid, nsp, rel, kind, ident, options=options)


def _describe(con: psycopg.Connection, table: Table) -> Table:
    table.columns = [Column(*row) for row in con.execute(_COLUMNS_SQL, (table.oid,)).fetchall()]
    key = tuple(r[0] for r in con.execute(_PRIMARY_KEY_SQL, (table.oid,)).fetchall())
    if table.options and table.options.primary_key:
        key = tuple(table.options.primary_key)
        for name in key:
            table.column(name)
    table.primary_key = key
    if table.options and table.options.cursor:
        table.column(table.options.cursor)
    return table


def query_columns(con: psycopg.Connection, spec: QueryStream) -> Query:
    """The result columns of a custom query, found without running it (LIMIT 0)."""
    try:
        cur = con.execute(f"select * from ({spec.sql}) as q limit 0")
    except psycopg.Error as exc:
        raise ConfigError(f"query stream {spec.name!r} does not run: {_first_line(exc)}", field="queries",
                          hint="try the SELECT in psql; it is wrapped as `select * from (<sql>) as q`") from None
    result = cur.pgresult
    oids = [result.ftype(i) for i in range(result.nfields)]
    names = {oid: (typname, elem) for oid, typname, elem in con.execute(
        "select t.oid, t.typname, e.typname from pg_type t left join pg_type e on e.oid = t.typelem "
        "and t.typcategory = 'A' where t.oid = any(%s)", (oids,)).fetchall()}
    columns = []
    for i, desc in enumerate(cur.description or []):
        typname, elem = names.get(oids[i], ("text", None))
        columns.append(Column(desc.name, typname, result.fmod(i), elem))
    seen = [c.name for c in columns]
    for name in [*spec.primary_key, *([spec.cursor] if spec.cursor else [])]:
        if name not in seen:
            raise ConfigError(f"query stream {spec.name!r} has no result column {name!r}", field="queries",
                              hint=f"its columns: {', '.join(seen)}")
    return Query(spec, columns)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
