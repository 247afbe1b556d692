"""The postgres destination against the destination contract suite, on the machine's Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from threadline.testing import DestinationContract
from threadline_postgres.testing import TEST_DSN
from threadline_postgres_destination import PostgresDestination


def rows_of(schema: str, table: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(TEST_DSN, row_factory=dict_row) as con:
        if con.execute("select to_regclass(%s) is null as missing", (f'"{schema}"."{table}"',)).fetchone()["missing"]:
            return []
        return con.execute(f'select * from "{schema}"."{table}"').fetchall()


@pytest.mark.usefixtures("pg_schema")
class TestPostgresDestinationContract(DestinationContract):
    destination = PostgresDestination
    bad_config = {"dsn": "postgresql://postgres@127.0.0.1:9/test"}

    @pytest.fixture(autouse=True)
    def _schema(self, pg_schema: str) -> None:
        self.schema = pg_schema

    def config(self, tmp_path: Path) -> dict[str, Any]:
        return {"dsn": TEST_DSN, "schema_name": self.schema, "connect_timeout": 3}

    def read_rows(self, config, table: str) -> list[dict[str, Any]]:
        return rows_of(config.schema_name, table)
