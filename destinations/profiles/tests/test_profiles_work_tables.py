"""How each engine keeps a stage's work tables, as declared by `base.work_table` (nothing
rewrites a statement on the way): ordinary tables in a DuckDB store file, TEMPORARY tables
on Postgres that an encrypted store never seals, plain tables on Spark."""

from __future__ import annotations

import os

import psycopg
import pytest
from threadline_profiles.engines import DuckDBEngine, PostgresEngine
from threadline_profiles.engines import postgres_crypto as crypto
from threadline_profiles.engines.base import for_dialect, work_table, work_view

PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def test_each_engine_gets_the_work_table_statement_declared_for_it():
    made = work_table("tl_work_x", "AS SELECT 1 AS a")
    assert made == "CREATE TABLE tl_work_x AS SELECT 1 AS a"  # the portable version
    assert for_dialect(made, "duckdb") == "CREATE TABLE tl_work_x AS SELECT 1 AS a"
    assert for_dialect(made, "spark") == "CREATE TABLE tl_work_x AS SELECT 1 AS a"
    assert for_dialect(made, "postgres") == "CREATE TEMPORARY TABLE tl_work_x AS SELECT 1 AS a"
    assert for_dialect(work_view("tl_work_v", "AS SELECT 1 AS a"), "postgres") == "CREATE TEMPORARY VIEW tl_work_v AS SELECT 1 AS a"
    own = work_table("tl_work_n", "(a BIGINT)", if_not_exists=True, spark="(a LONG)")
    assert (own, for_dialect(own, "spark"), for_dialect(own, "postgres")) == (
        "CREATE TABLE IF NOT EXISTS tl_work_n (a BIGINT)", "CREATE TABLE IF NOT EXISTS tl_work_n (a LONG)",
        "CREATE TEMPORARY TABLE IF NOT EXISTS tl_work_n (a BIGINT)")


def test_duckdb_work_tables_and_views_are_ordinary_ones_in_the_store_file(tmp_path):
    engine = DuckDBEngine(tmp_path / "profiles.duckdb", encryption="off")
    try:
        engine.run([work_table("tl_work_x", "AS SELECT 1 AS a"), work_view("tl_work_v", "AS SELECT a FROM tl_work_x")])
        assert engine.scalar("SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = 'tl_work_x' AND NOT temporary") == 1
        assert engine.scalar("SELECT COUNT(*) FROM duckdb_views() WHERE view_name = 'tl_work_v' AND NOT temporary") == 1
        assert engine.leftover_tables("tl_work_") == {"tl_work_x": "BASE TABLE", "tl_work_v": "VIEW"}
    finally:
        engine.close()


@pytest.mark.postgres
@pytest.mark.parametrize("encryption", ["off", "on"])
def test_postgres_work_tables_are_the_sessions_own_and_never_sealed(pg_schema, encryption):
    engine = PostgresEngine(PG_DSN, pg_schema, encryption=encryption)
    try:
        engine.run([work_table("tl_work_x", "AS SELECT 1 AS a"), "CREATE TABLE tl_kept AS SELECT 2 AS b"])
        temporary = {r[0] for r in engine.con.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r'").fetchall()}
        with psycopg.connect(PG_DSN, autocommit=True) as other:
            schema_tables = set(crypto.store_tables(other, pg_schema))
            sealed = {r[0] for r in other.execute(f'SELECT name FROM "{pg_schema}".{crypto.CATALOG}').fetchall()} \
                if encryption == "on" else set()
        assert "tl_work_x" in temporary and "tl_work_x" not in schema_tables | sealed
        if encryption == "on":  # a store table: made in the session's temporary schema, sealed at the commit
            assert "tl_kept" in temporary and "tl_kept" in sealed and schema_tables == set(crypto.OWN_TABLES)
        else:
            assert "tl_kept" in schema_tables and "tl_kept" not in temporary
    finally:
        engine.close()
