"""The shared-server engine: one schema in a Postgres database.

Stages are written in DuckDB's dialect; this engine transpiles each statement with sqlglot.
Arrow comes in through COPY (CSV written by pyarrow), never row by row. A new store is
encrypted unless `encryption: off`: its tables are sealed (`postgres_crypto`).
"""

from __future__ import annotations

import io
import logging
import os
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlglot
from threadline.contracts import ConfigError, FatalError

from threadline_profiles.engines import postgres_crypto as crypto
from threadline_profiles.engines.base import Engine, lit, load_sql, quote, sql_type

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # pragma: no cover - psycopg is a dependency; kept for a clear message
    psycopg = None  # type: ignore[assignment]


logger = logging.getLogger(__name__)


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

    def __init__(self, dsn: str, schema: str, encryption: str = "on", key_file: Path | None = None,
                 opened: tuple[crypto.Cipher | None] | None = None) -> None:
        """`encryption` decides only for a new store (an existing one opens as it is); its key
        file is `key_file` (default `<database>.<schema>.key` here). `opened`: the cipher of a
        store this process has opened already (another handle on it)."""
        self.dsn = dsn
        self.schema = schema
        self.encryption = encryption
        self.key_file = key_file
        self.cipher: crypto.Cipher | None = None
        self.con = self._connect(opened)
        self.sealed = crypto.SealedTables(self.con, self.cipher) if self.cipher else None
        self._levenshtein_ready = False

    def _connect(self, opened: tuple[crypto.Cipher | None] | None = None) -> "psycopg.Connection":
        con = connect(self.dsn)
        try:
            self.cipher = opened[0] if opened is not None else self._open_or_create(con)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
            # an encrypted store's session creates its tables in pg_temp (postgres_crypto.search_path)
            con.execute(f"SET search_path TO {crypto.search_path(self.schema) if self.cipher else quote(self.schema)}")
        except BaseException:
            con.close()
            raise
        return con

    def _open_or_create(self, con: "psycopg.Connection") -> crypto.Cipher | None:
        """An encrypted store opens with its key or not at all; a plain one opens as it is; a
        new one is made encrypted unless `encryption` is "off"."""
        base = crypto.key_base(self.key_file, con.info.dbname, self.schema)
        if crypto.is_sealed(con, self.schema):
            return crypto.open_sealed(con, self.schema, base)
        if crypto.store_tables(con, self.schema):
            if os.environ.get(crypto.ENV) and self.encryption != "off":
                logger.warning("$%s is set but the Postgres profile store (schema %s) is not encrypted; encrypt it "
                               "with `threadline profiles rotate-key`", crypto.ENV, self.schema)
            return None
        if self.encryption == "off":
            return None
        return crypto.create_sealed(con, self.schema, base)

    @property
    def location(self) -> str:
        return f"{describe_dsn(self.dsn)} schema {self.schema}"

    def _run(self, sql: str):
        if self.sealed is None:
            return self._native(to_postgres(sql))
        try:
            return self.sealed.run(to_postgres(sql), self.con.execute)
        except psycopg.OperationalError as exc:
            raise self._lost() from exc

    def _lost(self) -> PostgresUnreachableError:
        return PostgresUnreachableError(
            f"lost the connection to the Postgres profile store at {self.location}",
            hint="the run can be repeated: committed data is kept and resolution starts over")

    def _native(self, sql: str):
        """Run a statement already in Postgres' dialect; a lost connection is a clear error."""
        try:
            return self.con.execute(sql)
        except psycopg.OperationalError as exc:
            raise self._lost() from exc

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
        if self.sealed is not None:
            self.sealed.begin()

    def commit(self) -> None:
        if self.sealed is not None:
            try:
                self.sealed.seal_changes()
            except psycopg.OperationalError as exc:
                raise self._lost() from exc
        self._native("COMMIT")
        if self.sealed is not None:
            self.sealed.after_end(committed=True)

    def rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except psycopg.Error:
            pass
        if self.sealed is not None:
            self.sealed.after_end(committed=False)

    def table_columns(self, table: str) -> list[str]:
        if self.sealed is not None:
            found = self.sealed.table_columns(table)
            if found is not None:
                return found
        rows = self._native(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"{lit(self.schema)} AND table_name = {lit(table)} ORDER BY ordinal_position"
        ).fetchall()
        return [r[0] for r in rows]

    def load_table(self, name: str, data: pa.Table, temp: bool = False) -> None:
        view = f"_tl_load_{name}"
        self.register_arrow(view, data)
        self.run([f"DROP TABLE IF EXISTS {name}", load_sql(name, view, temp)])
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
        schema = lit(self.schema)
        if self.sealed is not None and self.table_exists(table):
            self._run(f"SELECT * FROM {table} LIMIT 0")  # brings a sealed table in
            schema = "(SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema())"
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
            f"{schema} AND table_name = {lit(table)} ORDER BY ordinal_position"
        ).fetchall()
        return {r[0]: r[1].upper() for r in rows}

    def handle(self) -> PostgresEngine:
        return PostgresEngine(self.dsn, self.schema, self.encryption, self.key_file, opened=(self.cipher,))

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


def connect(dsn: str) -> "psycopg.Connection":
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise PostgresUnreachableError(
            f"cannot reach the Postgres profile store at {describe_dsn(dsn)}",
            hint="check that the server is running and that `dsn` in the destination config is right",
        ) from exc


def store_exists(dsn: str, schema: str) -> bool:
    """Whether `schema` holds a profile store (sealed or plain), without creating anything."""
    con = connect(dsn)
    try:
        return bool(crypto.store_tables(con, schema))
    finally:
        con.close()


def rotate_key(dsn: str, schema: str, key_file: Path | None, decrypt: bool = False) -> str:
    """`threadline profiles rotate-key` for a Postgres store: re-encrypt it under a new key,
    encrypt a plain one, or (`decrypt`) store it plain from now on. Never makes a store."""
    con = connect(dsn)
    try:
        base = crypto.key_base(key_file, con.info.dbname, schema)
        if not crypto.store_tables(con, schema):
            raise ConfigError(f"there is no profile store in schema {schema} at {server(dsn)}",
                              hint="give the dsn and schema of an existing store")
        current = crypto.open_sealed(con, schema, base) if crypto.is_sealed(con, schema) else None
        if current is None and decrypt:
            raise ConfigError(f"the profile store in schema {schema} is not encrypted: there is nothing to decrypt")
        return crypto.rotate(con, schema, base, current, decrypt=decrypt)
    finally:
        con.close()


def _plain(data: pa.Table) -> pa.Table:
    """Nested Arrow values as JSON-ish text, since CSV cannot carry them."""
    cols = []
    for f, col in zip(data.schema, data.columns):
        if pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type):
            col = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.table(cols, names=data.column_names)
