"""A fresh Postgres schema per test on the machine's server (skipped, saying why, without one)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable() -> str:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: skip with the reason
        return f"no PostgreSQL server at {PG_DSN.split('@')[-1]} ({type(exc).__name__}); apt-get install postgresql"


@pytest.fixture
def pg_schema() -> Any:
    reason = _reachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"tl_dest_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f'drop schema if exists "{schema}" cascade')


def rows_of(schema: str, table: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(PG_DSN, row_factory=dict_row) as con:
        exists = con.execute("select to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
        if not exists or exists["to_regclass"] is None:
            return []
        return con.execute(f'select * from "{schema}"."{table}"').fetchall()
