"""Bad input: each error names what is missing and the SQL that fixes it; a connection dropped
in the middle of a read loses nothing and the next sync resumes from the last checkpoint."""

from __future__ import annotations

import threading
import time

import pytest

from threadline.contracts import ConfigError
from threadline_postgres import PostgresSource
from threadline_postgres.testing import TEST_DSN, execute, unique_name

from pg_jobs import landed, problem, run, source_config, source_rows


def _check(config: dict) -> ConfigError:
    source = PostgresSource()
    with pytest.raises(ConfigError) as caught:
        source.check(source.spec.model_validate(config))
    return caught.value


@pytest.fixture
def role(schema):
    """A login role with no rights at all, dropped afterwards."""
    name = unique_name("tl_role")
    execute(f'create role "{name}" login')
    yield name, TEST_DSN.replace("postgres@", f"{name}@", 1)
    execute(f'drop owned by "{name}"')
    execute(f'drop role "{name}"')


def test_a_server_that_does_not_answer_names_the_dsn(schema):
    error = _check(source_config(schema, dsn="postgresql://postgres@127.0.0.1:9/test", connect_timeout=2))
    assert error.field == "dsn" and "cannot connect to Postgres at postgres@127.0.0.1:9/test" in error.render()


def test_a_database_that_does_not_exist_says_how_to_create_it(schema):
    error = _check(source_config(schema, dsn=TEST_DSN.rsplit("/", 1)[0] + "/no_such_db_tl"))
    assert error.field == "dsn" and 'CREATE DATABASE "no_such_db_tl"' in error.render()


def test_a_table_that_does_not_exist_is_named(schema):
    error = _check(source_config(schema, tables=["customers"]))
    assert error.field == "tables" and f"table {schema}.customers does not exist" in error.render()


def test_a_schema_that_does_not_exist_is_named(schema):
    error = _check(source_config("no_such_schema_tl"))
    assert error.field == "schemas" and "'no_such_schema_tl' does not exist" in error.render()


def test_missing_privileges_are_named_with_the_grant(schema, role):
    name, dsn = role
    execute(f'create table "{schema}".customers (id int primary key)')
    error = _check(source_config(schema, dsn=dsn))
    assert f'GRANT USAGE ON SCHEMA "{schema}" TO "{name}";' in error.render()
    execute(f'grant usage on schema "{schema}" to "{name}"')
    error = _check(source_config(schema, dsn=dsn, tables=["customers"]))
    assert f'GRANT SELECT ON "{schema}"."customers" TO "{name}";' in error.render()
    error = _check(source_config(schema, dsn=dsn))
    assert f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{name}";' in error.render()


def test_change_data_capture_without_the_replication_right_says_how_to_grant_it(cdc_schema):
    schema = cdc_schema
    name = unique_name("tl_role")
    execute(f'create role "{name}" login')
    try:
        execute(f'create table "{schema}".customers (id int primary key)')
        execute(f'grant usage on schema "{schema}" to "{name}"; grant select on all tables in schema "{schema}" to "{name}"')
        dsn = TEST_DSN.replace("postgres@", f"{name}@", 1)
        error = _check(source_config(schema, cdc=True, dsn=dsn))
        assert error.field == "replication" and f'ALTER ROLE "{name}" WITH REPLICATION;' in error.render()
        execute(f'alter role "{name}" replication')
        error = _check(source_config(schema, cdc=True, dsn=dsn))  # it owns no table: it cannot publish them
        assert error.field == "replication.publication"
        assert f'CREATE PUBLICATION "{schema}" FOR TABLE "{schema}"."customers"' in error.render()
    finally:
        execute(f'drop owned by "{name}"')
        execute(f'drop role "{name}"')


def _terminate_reader_once(schema: str, stop: threading.Event) -> None:
    """Kill the backend that copies the table out, as a network cut or a server restart would."""
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:
        rows = execute("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'threadline' "
                       "and query ilike %s and pid <> pg_backend_pid()", (f"%{schema}%customers%order by%",))
        if rows:
            return
        time.sleep(0.005)


@pytest.mark.parametrize("cdc", [False, True], ids=["full-refresh", "snapshot"])
def test_a_connection_dropped_mid_read_resumes_from_the_last_checkpoint(schema, tmp_path, cdc):
    if cdc:
        from threadline_postgres.testing import logical_unavailable

        if logical_unavailable():
            pytest.skip(logical_unavailable())
    execute(f'create table "{schema}".customers (id int primary key, email text)')
    execute(f'insert into "{schema}".customers select g, repeat(md5(g::text), 8) from generate_series(1, 300000) g')
    config = source_config(schema, cdc=cdc)
    streams = None if cdc else {"customers": {"sync_mode": "full_refresh", "write": "upsert"}}
    stop = threading.Event()
    killer = threading.Thread(target=_terminate_reader_once, args=(schema, stop))
    killer.start()
    try:
        dropped = run(tmp_path, config, streams)
    finally:
        stop.set()
        killer.join()
    assert not dropped.ok and "lost the connection to Postgres" in dropped.error
    assert "resumes from the last checkpoint" in dropped.error
    resumed = run(tmp_path, config, streams)
    assert resumed.ok, problem(resumed)
    assert landed(tmp_path, "db__customers", "count(*), count(distinct id), sum(id)", "1") == \
        source_rows(schema, "customers", "count(*), count(distinct id), sum(id)", "1")
