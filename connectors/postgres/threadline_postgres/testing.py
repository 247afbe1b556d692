"""What tests, benches and examples need around a real Postgres server: is one there, can it
do logical replication, a schema of one's own (several test runs share the server), and
cleaning up the slots and publications a test made. Not imported by the source itself."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEST_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
LOGICAL_SETUP = Path(__file__).resolve().parents[3] / ".ci" / "postgres-logical.sh"


def unreachable(dsn: str = TEST_DSN) -> str:
    """Why no test can run against `dsn` ("" when one can)."""
    try:
        import psycopg

        psycopg.connect(dsn, connect_timeout=3).close()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: skip, saying why
        return (f"no PostgreSQL server at {dsn.split('@')[-1]} ({type(exc).__name__}): "
                "apt-get install postgresql, or set THREADLINE_TEST_PG_DSN")


def logical_unavailable(dsn: str = TEST_DSN) -> str:
    """Why change data capture cannot be tested ("" when it can). When the server's wal_level
    is not logical, runs .ci/postgres-logical.sh once (it sets it and restarts the server)."""
    reason = unreachable(dsn)
    if reason:
        return reason
    if _wal_level(dsn) != "logical" and LOGICAL_SETUP.exists():
        subprocess.run(["bash", str(LOGICAL_SETUP)], capture_output=True, timeout=120, check=False)
    level = _wal_level(dsn)
    if level != "logical":
        return (f"the server's wal_level is {level!r} and could not be set to logical (run {LOGICAL_SETUP} as "
                "root: ALTER SYSTEM SET wal_level = logical, then a restart)")
    return ""


def _wal_level(dsn: str) -> str:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3) as con:
            return con.execute("show wal_level").fetchone()[0]
    except Exception:  # noqa: BLE001
        return "unknown"


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def execute(sql: str, params: Any = None, dsn: str = TEST_DSN) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        cur = con.execute(sql, params)
        return cur.fetchall() if cur.description else []


def drop_everything(schema: str, slot_prefix: str | None = None, publication: str | None = None,
                    dsn: str = TEST_DSN) -> None:
    """Drop the schema, the slots whose name starts with `slot_prefix` and the publication."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        if slot_prefix:
            for (name,) in con.execute("select slot_name from pg_replication_slots where slot_name like %s",
                                       (slot_prefix.replace("_", r"\_") + "%",)).fetchall():
                con.execute("select pg_terminate_backend(active_pid) from pg_replication_slots "
                            "where slot_name = %s and active_pid is not null", (name,))
                try:
                    con.execute("select pg_drop_replication_slot(%s)", (name,))
                except psycopg.Error:
                    pass  # still active a moment longer: the server drops nothing twice; best effort
        if publication:
            con.execute(f'drop publication if exists "{publication}"')
        con.execute(f'drop schema if exists "{schema}" cascade')


@contextmanager
def scratch_schema(prefix: str = "tl_pg", dsn: str = TEST_DSN) -> Iterator[str]:
    """A fresh schema; it, its slots (`<schema>_…`) and its publication (named like it) are
    dropped afterwards."""
    schema = unique_name(prefix)
    execute(f'create schema "{schema}"', dsn=dsn)
    try:
        yield schema
    finally:
        drop_everything(schema, slot_prefix=schema, publication=schema, dsn=dsn)
