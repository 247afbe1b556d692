"""Incremental builds on Postgres, and a connection dropped in the middle of one.

Schemas are copied table by table (raw tables keep their landing times), so a full build
in a copy starts from exactly the data and state the incremental build had."""

from __future__ import annotations

import psycopg
import pytest
from synthetic_customers import customers
from threadline_profiles import ProfileStore, api
from threadline_profiles.engines import PostgresUnreachableError
from threadline_profiles.engines import postgres_crypto as crypto
from threadline_profiles.testing import Lander, snapshot

pytestmark = pytest.mark.postgres
DSN = "postgresql://postgres@127.0.0.1:5432/test"


def config_for(schema: str, tmp_path) -> dict:
    return {"engine": "postgres", "dsn": DSN, "schema": schema, "resolve_on_finish": False,
            "report_dir": str(tmp_path / schema), "mappings": customers(100).mappings,
            "resolution": {"agreement": None}, "incremental_up_to": 1.0}


def copy_schema(source: str, target: str, only: tuple[str, ...] = ()) -> None:
    """Copy every table of `source` (or those starting with one of `only`) into `target`. The
    tables of an encrypted store are rows of its sealed catalog: those rows are copied (still
    encrypted, under the same key)."""
    with psycopg.connect(DSN, autocommit=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            (source,)).fetchall()]
        con.execute(f'CREATE SCHEMA "{target}"')
        sealed = crypto.CATALOG in tables
        for table in tables:
            if sealed:
                wanted = (f'SELECT id FROM "{source}".{crypto.CATALOG} WHERE %(all)s OR name LIKE ANY(%(only)s)')
                where = {crypto.KEY_CHECK: "TRUE", crypto.CATALOG: f"id IN ({wanted})", crypto.CHUNKS: f"id IN ({wanted})"}
                con.execute(f'CREATE TABLE "{target}"."{table}" AS SELECT * FROM "{source}"."{table}" WHERE {where[table]}',
                            {"all": not only, "only": [f"{p}%" for p in only]})
            elif not only or table.startswith(only):
                con.execute(f'CREATE TABLE "{target}"."{table}" AS SELECT * FROM "{source}"."{table}"')


@pytest.fixture
def schemas(pg_schema):
    made = [pg_schema]
    yield made
    with psycopg.connect(DSN, autocommit=True) as con:
        for schema in made[1:]:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def land_changes(config: dict) -> None:
    """New CRM records of existing people, and CRM records whose email is now someone else's."""
    crm = customers(300, seed=3).tables["crm.contacts"]
    moved = crm.slice(0, 20).to_pylist()
    for i, row in enumerate(moved):
        row["email"] = crm.column("email")[(i * 37 + 50) % crm.num_rows].as_py()
    new = [{**row, "id": f"N{i}"} for i, row in enumerate(crm.slice(100, 20).to_pylist())]
    Lander(config).land("crm", "contacts", moved + new, run_id="changes", schema=crm.schema)


def test_postgres_incremental_builds_equal_full_and_clean_builds_and_survive_a_dropped_connection(tmp_path, schemas):
    config = config_for(schemas[0], tmp_path)
    lander = Lander(config)
    for key, table in customers(300, seed=3).tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table, batch_rows=200)
    with ProfileStore.open(config) as store:
        api.build(store, report=False)
        before = snapshot(store, with_ids=True)
    land_changes(config)
    schemas += [f"{schemas[0]}_full", f"{schemas[0]}_clean"]
    copy_schema(schemas[0], schemas[1])
    copy_schema(schemas[0], schemas[2], only=("raw_", "tl_streams"))

    for stage in ("scope", "resolve", "prepare"):  # the connection drops mid-build: nothing changes
        store = ProfileStore.open(config)
        pid = store.engine.con.info.backend_pid

        def drop_connection(name: str, at: str = stage) -> None:
            if name == at:
                with psycopg.connect(DSN, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        with pytest.raises(PostgresUnreachableError, match="lost the connection"):
            api.build(store, report=False, on_stage=drop_connection)
        with ProfileStore.open(config) as again:
            assert snapshot(again, with_ids=True) == before

    with ProfileStore.open(config) as store:
        result = api.build(store, report=False)
        assert result.mode == "incremental" and 0 < result.resolved < result.records
        after = (snapshot(store, with_ids=True), snapshot(store, with_ids=False))
    with ProfileStore.open(config_for(schemas[1], tmp_path)) as full:
        api.build(full, report=False, full=True)
        assert snapshot(full, with_ids=True) == after[0]
    with ProfileStore.open(config_for(schemas[2], tmp_path)) as clean:
        api.build(clean, report=False)
        assert snapshot(clean, with_ids=False) == after[1]


def test_postgres_incremental_builds_with_the_agreement_rule_reuse_its_model_and_equal_full_and_clean_builds(tmp_path, schemas):
    """The agreement rule on: the first build fits the model, the incremental build after the
    changes reuses it, and equals a full build (and a clean one that keeps the model) with it."""
    config = {**config_for(schemas[0], tmp_path), "resolution": {"max_records_per_value": 50}}
    lander = Lander(config)
    for key, table in customers(300, seed=3).tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table, batch_rows=200)
    with ProfileStore.open(config) as store:
        first = api.build(store, report=False)
        assert first.model_version == 1 and first.refit
    land_changes(config)
    # and loyalty members with a typo in the last name and nothing else to share: only the
    # agreement rule's pairs (scored with the stored model) bring their person into the scope
    loyalty = customers(300, seed=3).tables["loyalty.members"]
    crm = customers(300, seed=3).tables["crm.contacts"].slice(150, 30).to_pylist()
    typos = [{"id": f"T{i}", "card": None, "phone": None, "first_name": r["first_name"], "last_name": r["last_name"] + "e",
              "birth_date": f"{r['birth_date'][5:7]}/{r['birth_date'][8:10]}/{r['birth_date'][:4]}"} for i, r in enumerate(crm)]
    Lander(config).land("loyalty", "members", typos, run_id="typos", schema=loyalty.schema)
    schemas += [f"{schemas[0]}_full", f"{schemas[0]}_clean"]
    copy_schema(schemas[0], schemas[1])
    copy_schema(schemas[0], schemas[2], only=("raw_", "tl_streams", "tl_model"))

    with ProfileStore.open(config) as store:
        result = api.build(store, report=False)
        assert (result.mode, result.model_version, result.refit) == ("incremental", 1, ""), result.why_full
        assert 0 < result.resolved < result.records
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_links WHERE rule = 'agreement' "
                                   "AND record_key LIKE 'loyalty.members:T%'") > 5
        after = (snapshot(store, with_ids=True), snapshot(store, with_ids=False))
    with ProfileStore.open({**config_for(schemas[1], tmp_path), "resolution": config["resolution"]}) as full:
        assert api.build(full, report=False, full=True).model_version == 1
        assert snapshot(full, with_ids=True) == after[0]
    with ProfileStore.open({**config_for(schemas[2], tmp_path), "resolution": config["resolution"]}) as clean:
        assert api.build(clean, report=False).model_version == 1
        assert snapshot(clean, with_ids=False) == after[1]
