"""The shared-server engine: one schema in a Postgres database.

Stages are written in DuckDB's dialect; this engine transpiles each statement with sqlglot.
Arrow comes in through COPY (CSV written by pyarrow), never row by row.
"""

from __future__ import annotations

import io
from functools import lru_cache

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlglot
from threadline.contracts import FatalError

from threadline_profiles.engines.base import Engine, lit, quote, sql_type

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # pragma: no cover - psycopg is a dependency; kept for a clear message
    psycopg = None  # type: ignore[assignment]


class PostgresUnreachableError(FatalError):
    """The Postgres server could not be reached or dropped the connection."""


@lru_cache(maxsize=4096)
def to_postgres(sql: str) -> str:
    """One DuckDB-dialect statement in Postgres' dialect."""
    return sqlglot.transpile(sql, read="duckdb", write="postgres")[0]


def describe_dsn(dsn: str) -> str:
    """host:port/database as user, without any password, for messages."""
    try:
        user = conninfo_to_dict(dsn).get("user", "?")
    except Exception:
        return "(the configured dsn)"
    return f"{server(dsn)} as {user}"


def server(dsn: str) -> str:
    """host:port/database of a DSN: where the store is, whoever connects."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "(the configured dsn)"
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname', '?')}"


_EXTENSION_SCHEMA = ("SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace "
                     "WHERE e.extname = 'fuzzystrmatch'")


class PostgresEngine(Engine):
    dialect = "postgres"

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self.con = self._connect()
        self._levenshtein_ready = False

    def _connect(self) -> "psycopg.Connection":
        try:
            con = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise PostgresUnreachableError(
                f"cannot reach the Postgres profile store at {describe_dsn(self.dsn)}",
                hint="check that the server is running and that `dsn` in the destination config is right",
            ) from exc
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
        con.execute(f"SET search_path TO {quote(self.schema)}")
        return con

    @property
    def location(self) -> str:
        return f"{describe_dsn(self.dsn)} schema {self.schema}"

    def _run(self, sql: str):
        return self._native(to_postgres(sql))

    def _native(self, sql: str):
        """Run a statement already in Postgres' dialect; a lost connection is a clear error."""
        try:
            return self.con.execute(sql)
        except psycopg.OperationalError as exc:
            raise PostgresUnreachableError(
                f"lost the connection to the Postgres profile store at {self.location}",
                hint="the run can be repeated: committed data is kept and resolution starts over",
            ) from exc

    def execute(self, sql: str) -> None:
        self._run(sql)

    def query(self, sql: str) -> pa.Table:
        cur = self._run(sql)
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
        columns = list(zip(*rows)) if rows else [[] for _ in names]
        return pa.table({n: pa.array(list(c)) for n, c in zip(names, columns)}) if names else pa.table({})

    def register_arrow(self, name: str, data: pa.Table) -> None:
        data = _plain(data)
        cols = ", ".join(f"{quote(f.name)} {sql_type(f.type)}" for f in data.schema)
        self.execute(f"DROP TABLE IF EXISTS {name}")
        self.execute(f"CREATE TEMPORARY TABLE {name} ({cols})")
        if data.num_rows == 0:
            return
        buf = io.BytesIO()
        pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        column_list = ", ".join(quote(n) for n in data.column_names)
        try:
            with self.con.cursor().copy(f"COPY {name} ({column_list}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buf.getvalue())
        except psycopg.OperationalError as exc:
            raise PostgresUnreachableError(f"lost the connection to the Postgres profile store at {self.location}") from exc

    def unregister(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {name}")

    def begin(self) -> None:
        self._native("BEGIN")

    def commit(self) -> None:
        self._native("COMMIT")

    def rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except psycopg.Error:
            pass

    def table_columns(self, table: str) -> list[str]:
        rows = self._native(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"{lit(self.schema)} AND table_name = {lit(table)} ORDER BY ordinal_position"
        ).fetchall()
        return [r[0] for r in rows]

    def load_table(self, name: str, data: pa.Table, temp: bool = False) -> None:
        view = f"_tl_load_{name}"
        self.register_arrow(view, data)
        self.run([f"DROP TABLE IF EXISTS {name}", f"CREATE {'TEMP ' if temp else ''}TABLE {name} AS SELECT * FROM {view}"])
        self.unregister(view)

    def require_levenshtein(self) -> None:
        """Postgres has levenshtein in the fuzzystrmatch extension. It is installed once per
        database (in schema threadline_ext unless it is already somewhere else) and reached
        through a small function in this store's schema, so that dropping the schema never
        takes the extension away from other stores."""
        if self._levenshtein_ready:
            return
        try:
            found = self.con.execute(_EXTENSION_SCHEMA).fetchone()
            if found is None:
                try:
                    self.con.execute("CREATE SCHEMA IF NOT EXISTS threadline_ext")
                    self.con.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch SCHEMA threadline_ext")
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.DuplicateSchema):
                    pass  # another store's build created it at the same moment
                found = self.con.execute(_EXTENSION_SCHEMA).fetchone()
            self.con.execute(
                f"CREATE OR REPLACE FUNCTION {quote(self.schema)}.levenshtein(text, text) RETURNS integer "
                f"LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT {quote(found[0])}.levenshtein($1, $2) $$"
            )
        except psycopg.OperationalError as exc:
            raise PostgresUnreachableError(f"lost the connection to the Postgres profile store at {self.location}") from exc
        except psycopg.Error as exc:
            raise FatalError(
                f"the agreement rule needs Postgres' fuzzystrmatch extension (levenshtein) at {self.location}: "
                f"{exc.diag.message_primary or type(exc).__name__}",
                hint="ask a database administrator to run `CREATE EXTENSION fuzzystrmatch`, "
                "or turn the rule off with `resolution.agreement: null`",
            ) from exc
        self._levenshtein_ready = True

    def column_types(self, table: str) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
            f"{lit(self.schema)} AND table_name = {lit(table)} ORDER BY ordinal_position"
        ).fetchall()
        return {r[0]: r[1].upper() for r in rows}

    def handle(self) -> PostgresEngine:
        return PostgresEngine(self.dsn, self.schema)

    def compact(self) -> str:
        """VACUUM FULL every table of the schema: each is rewritten into new files and the old
        ones (with the bytes of deleted rows) are removed. Postgres' write-ahead log and any
        base backup keep them until they are recycled."""
        tables = [r[0] for r in self._native(
            "SELECT tablename FROM pg_tables WHERE schemaname = " + lit(self.schema) + " ORDER BY tablename").fetchall()]
        for table in tables:
            self._native(f"VACUUM FULL {quote(self.schema)}.{quote(table)}")
        return f"VACUUM FULL of {len(tables)} tables"

    def close(self) -> None:
        self.con.close()


def _plain(data: pa.Table) -> pa.Table:
    """Nested Arrow values as JSON-ish text, since CSV cannot carry them."""
    cols = []
    for f, col in zip(data.schema, data.columns):
        if pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type):
            col = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.table(cols, names=data.column_names)
