"""The Postgres engine: the same stages, transpiled by sqlglot, give the same profiles."""

from __future__ import annotations

import pytest
from synthetic_customers import customers
from threadline_profiles import ProfileStore, api
from threadline_profiles.engines import PostgresUnreachableError
from threadline_profiles.engines.postgres_engine import to_postgres
from threadline_profiles.testing import Lander, profile_ids

pytestmark = pytest.mark.postgres


def land_all(config: dict) -> dict:
    data = customers(400, seed=11)
    config = {**config, "resolve_on_finish": False, "mappings": data.mappings,
              "resolution": {"never_merge": [["crm.contacts:C1", "shop.customers:S2"]],
                             "always_merge": [["crm.contacts:C3", "loyalty.members:L4"]]}}
    lander = Lander(config)
    lander.land_tables(data.tables, batch_rows=250)
    with lander.store() as store:
        api.build(store)
        return {
            "ids": profile_ids(store),
            "golden": {(r["profile_id"], r["field"]): (r["value"], r["record_key"])
                       for r in store.engine.rows("SELECT * FROM tl_golden")},
            "links": sorted((r["record_key"], r["linked_record_key"], r["rule"]) for r in store.engine.rows("SELECT * FROM tl_links")),
            "dq": sorted((r["source"], r["field"], r["status"], r["reason"], r["n"]) for r in store.engine.rows("SELECT * FROM tl_dq")),
            "blocked": sorted((r["field"], r["value"], r["records"]) for r in store.engine.rows("SELECT * FROM tl_blocked")),
            "refused": sorted((r["record_key"], r["linked_record_key"], r["rule"], float(r["weight"]), r["reason"])
                              for r in store.engine.rows("SELECT * FROM tl_links_refused")),
        }


def test_postgres_and_duckdb_give_the_same_profiles_golden_records_and_reports(tmp_path, pg_schema):
    on_duckdb = land_all({"path": str(tmp_path / "p.duckdb"), "report_dir": str(tmp_path / "r1")})
    on_postgres = land_all({"engine": "postgres", "dsn": "postgresql://postgres@127.0.0.1:5432/test",
                            "schema": pg_schema, "report_dir": str(tmp_path / "r2")})
    assert len(set(on_duckdb["ids"].values())) < len(on_duckdb["ids"])  # records did merge
    assert on_duckdb["refused"]  # the guards and the limits refused links, weighed alike on both
    for part in ("ids", "golden", "links", "dq", "blocked", "refused"):
        assert on_postgres[part] == on_duckdb[part], part


def test_postgres_lookups_work_like_duckdb(tmp_path, pg_schema):
    config = {"engine": "postgres", "schema": pg_schema, "resolve_on_finish": False, "report_dir": str(tmp_path),
              "mappings": {"crm.contacts": {"identifiers": {"email": "email"}}}}
    lander = Lander(config)
    lander.land("crm", "contacts", [{"id": 1, "email": "a@mail.com"}, {"id": 2, "email": "A@mail.com"}])
    with lander.store() as store:
        api.build(store)
        profile = api.get(store, email="a@MAIL.com")
        assert {m.record_key for m in profile.members} == {"crm.contacts:1", "crm.contacts:2"}


def test_an_unreachable_postgres_is_a_clear_error_without_the_password():
    with pytest.raises(PostgresUnreachableError) as err:
        ProfileStore.open({"engine": "postgres", "dsn": "postgresql://postgres:s3cret@127.0.0.1:1/test"})
    text = str(err.value)
    assert "cannot reach the Postgres profile store at 127.0.0.1:1/test as postgres" in text
    assert "s3cret" not in text


def test_stage_sql_is_carried_to_the_postgres_dialect():
    assert to_postgres("SELECT CAST(x AS VARCHAR) FROM t") == "SELECT CAST(x AS TEXT) FROM t"


def test_a_connection_dropped_mid_run_is_a_clear_error_and_the_next_build_completes(tmp_path, pg_schema):
    import psycopg

    config = {"engine": "postgres", "schema": pg_schema, "resolve_on_finish": False, "report_dir": str(tmp_path),
              "mappings": {"crm.contacts": {"identifiers": {"email": "email"}}}}
    lander = Lander(config)
    lander.land("crm", "contacts", [{"id": 1, "email": "a@mail.com"}, {"id": 2, "email": "a@mail.com"}])
    store = lander.store()
    pid = store.engine.con.info.backend_pid

    def drop_connection(stage: str) -> None:
        if stage == "normalize":
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with pytest.raises(PostgresUnreachableError, match="lost the connection"):
        api.build(store, report=False, on_stage=drop_connection)
    with lander.store() as again:
        api.build(again, report=False)
        assert len(set(profile_ids(again).values())) == 1
