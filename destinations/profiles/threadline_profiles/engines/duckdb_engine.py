"""The embedded engine: one DuckDB file, the default store."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import duckdb
import pyarrow as pa
from threadline.contracts import FatalError

from threadline_profiles.engines import duckdb_crypto as crypto
from threadline_profiles.engines.base import Engine, lit
from threadline_profiles.engines.duckdb_crypto import StoreKey

logger = logging.getLogger(__name__)


class StoreLockedError(FatalError):
    """Another process has the store file open for writing."""


_PID = re.compile(r"PID (\d+)")


def connect_duckdb(path: Path, encryption: str = "on") -> tuple[duckdb.DuckDBPyConnection, StoreKey | None]:
    """Open the store file, or create it when there is none (encrypted unless `encryption`
    is "off"; see `duckdb_crypto`). An existing file opens as it is, encrypted or not. Returns the connection and the key it was opened with
    (None for an unencrypted store). A file held by another process, an encrypted store
    without its key or with another key are clear errors, and never a new empty store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if crypto.attached_here(path):
            return crypto.open_encrypted(path)
        if path.exists():
            try:
                con = duckdb.connect(str(path))
            except duckdb.CatalogException as exc:
                if "encrypted" not in str(exc):
                    raise
                return crypto.open_encrypted(path)
            if os.environ.get(crypto.ENV) and encryption != "off":
                logger.warning("$%s is set but the profile store %s is not encrypted; encrypt it with "
                               "`threadline profiles rotate-key --path %s`", crypto.ENV, path, path)
            return con, None
        if encryption == "off":
            return duckdb.connect(str(path)), None
        return crypto.create_encrypted(path)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" not in text.lower():
            raise FatalError(f"cannot open the profile store {path}: {text}") from exc
        pid = _PID.search(text)
        holder = f" (process {pid.group(1)})" if pid else ""
        raise StoreLockedError(
            f"the profile store {path} is in use by another process{holder}",
            hint="wait for the other sync or `threadline profiles` command to finish, "
            "or point this job at another `path`",
        ) from exc


class DuckDBEngine(Engine):
    """Runs each statement as it is written (the portable version). A stage's work tables are
    ordinary tables in the store file (`base.work_table` says why)."""

    dialect = "duckdb"

    def __init__(self, path: Path, connection: duckdb.DuckDBPyConnection | None = None,
                 memory_limit: str | None = None, encryption: str = "on", key: StoreKey | None = None) -> None:
        self.path = Path(path)
        self.memory_limit = memory_limit
        self.encryption = encryption
        self.key = key  # the store's key when it is encrypted (kept for compact and cursors)
        self._released = False
        self._owns = connection is None  # an encrypted store's shared attachment is released by its opener
        self.con = connection if connection is not None else self._connect()

    @property
    def encrypted(self) -> bool:
        return self.key is not None

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con, self.key = connect_duckdb(self.path, self.encryption)
        self._released = False
        con.execute("SET enable_progress_bar = false")
        # No stage relies on the order rows were inserted in (each ordered read says so);
        # without it DuckDB can stream and spill large CREATE TABLE ... AS and DISTINCT.
        con.execute("SET preserve_insertion_order = false")
        if self.memory_limit:
            con.execute(f"SET memory_limit = {lit(self.memory_limit)}")
        return con

    @property
    def location(self) -> str:
        return str(self.path)

    def execute(self, sql: str) -> None:
        self.con.execute(sql)

    def leftover_tables(self, prefix: str) -> dict[str, str]:
        """Tables and views whose name starts with `prefix` (name -> 'VIEW' or 'BASE TABLE'):
        work tables are ordinary tables here, so a killed build leaves them in the file."""
        rows = self.con.execute(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main' "
            f"AND table_catalog = current_database() AND starts_with(table_name, {lit(prefix)})"
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def query(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def register_arrow(self, name: str, data: pa.Table) -> None:
        self.con.register(name, data)

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    def begin(self) -> None:
        self.con.begin()

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def table_columns(self, table: str) -> list[str]:
        rows = self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' "
            f"AND table_name = {lit(table)} ORDER BY ordinal_position"
        ).fetchall()
        return [r[0] for r in rows]

    def column_types(self, table: str) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' "
            f"AND table_name = {lit(table)} ORDER BY ordinal_position"
        ).fetchall()
        return {r[0]: r[1].upper() for r in rows}

    def handle(self) -> DuckDBEngine:
        cursor = self.con.cursor()
        if self.encrypted:  # a cursor starts in the in-memory catalog, not the attached store
            cursor.execute(f"USE {crypto.CATALOG}")
        return DuckDBEngine(self.path, cursor, encryption=self.encryption, key=self.key)

    def compact(self) -> str:
        """Copy the store into a fresh file and swap it in: DuckDB reuses the blocks of deleted
        rows but never clears them, so erased people stay readable in the file until it is
        rewritten. A crash before the swap leaves the old file whole (and the copy is remade
        next time). Other handles of this engine are invalid afterwards."""
        fresh = self.path.with_name(self.path.name + ".compact")
        fresh.unlink(missing_ok=True)
        database = self.con.execute("SELECT current_database()").fetchone()[0]
        self.con.execute("CHECKPOINT")
        self.con.execute(crypto.attach_sql(fresh, "tl_compact", self.key))  # under the same key
        try:
            self.con.execute(f'COPY FROM DATABASE "{database}" TO tl_compact')
        finally:
            self.con.execute("DETACH tl_compact")
        before = self.path.stat().st_size
        self.close()
        os.replace(fresh, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self.con = self._connect()
        return f"file rewritten, {before / 1e6:.1f} MB → {self.path.stat().st_size / 1e6:.1f} MB"

    def close(self) -> None:
        self.con.close()
        if self._owns and self.encrypted and not self._released:
            self._released = True  # closed twice (a store closed, then released) counts once
            crypto.release(self.path)
