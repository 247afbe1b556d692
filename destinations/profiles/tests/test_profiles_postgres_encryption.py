"""Encryption at rest of a Postgres store (sealed tables), as someone with the database but
not the key would try it: every table of the schema read by a plain client, a `pg_dump` of
the schema and (where this user can read them) the table files on disk show none of the
population's emails or phones; without the key or with another nothing opens and nothing is
created; rotate-key keeps the data and the old key stops working; a sealed store gives the
same profiles as a plain one."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from threadline_profiles import ProfileStore, api
from threadline_profiles.engines import postgres_crypto as crypto
from threadline_profiles.engines.postgres_engine import PostgresEngine, rotate_key
from threadline_profiles.testing import SECRET_MAPPING as MAPPING
from threadline_profiles.testing import SECRET_TRACES as TRACES
from threadline_profiles.testing import Lander, profiles_of
from threadline_profiles.testing import secret_population as population

pytestmark = pytest.mark.postgres
PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def config_for(schema: str, tmp_path: Path, **extra) -> dict:
    return {"engine": "postgres", "dsn": PG_DSN, "schema": schema, "resolve_on_finish": False,
            "report_dir": str(tmp_path / "reports"), "mappings": MAPPING, **extra}


def landed(config: dict) -> Lander:
    lander = Lander(config)
    lander.land("crm", "contacts", population())
    lander.build()
    return lander


def as_a_plain_client(schema: str) -> bytes:
    """Everything a database user without the key reads: every table of the schema in text
    form, a pg_dump of the schema, and the table files (with their TOAST) when readable."""
    out = []
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute("CHECKPOINT")  # dirty pages reach the files
        for table in crypto.store_tables(con, schema):
            with con.cursor().copy(f'COPY "{schema}"."{table}" TO STDOUT') as copy:
                out.extend(bytes(data) for data in copy)
        data_dir = Path(con.execute("SHOW data_directory").fetchone()[0])
        files = [r[0] for r in con.execute(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'i') UNION ALL SELECT pg_relation_filepath(c.reltoastrelid) "
            "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.reltoastrelid <> 0", (schema, schema)).fetchall() if r[0]]
    readable = [data_dir / f for f in files if os.access(data_dir / f, os.R_OK)]
    out.extend(p.read_bytes() for p in readable)
    if readable and shutil.which("strings"):
        out.append(subprocess.run(["strings", "-a", *map(str, readable)], capture_output=True, check=True).stdout)
    if shutil.which("pg_dump"):
        out.append(subprocess.run(["pg_dump", "--schema", schema, PG_DSN], capture_output=True, check=True).stdout)
    return b"".join(out).lower()


def traces(data: bytes) -> list[str]:
    return [t for t in TRACES if t.encode() in data]


def snapshot(schema: str) -> list:
    """The schema's tables and sealed catalog, to show a refused open changed nothing."""
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        tables = crypto.store_tables(con, schema)
        sealed = con.execute(f'SELECT name, generation FROM "{schema}".{crypto.CATALOG} ORDER BY name').fetchall() \
            if crypto.CATALOG in tables else []
    return [tables, sealed]


def test_a_new_postgres_store_is_sealed_and_a_plain_client_finds_no_email_or_phone(tmp_path, pg_schema):
    plain = f"{pg_schema}_plain"
    try:
        landed(config_for(plain, tmp_path, encryption="off")).store().close()
        assert traces(as_a_plain_client(plain)), "the control: an unencrypted store shows the population"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{plain}" CASCADE')

    lander = landed(config_for(pg_schema, tmp_path))
    with lander.store() as store:  # with its key the whole pipeline works as before
        assert len(profiles_of(store)) == 300
        assert api.find(store, email="marisol.quennell0@tidewater-mail.example")[0].golden["last_name"]
        sealed = {r["name"] for r in store.engine.rows(f"SELECT name FROM {crypto.CATALOG}")}
    assert {"tl_members", "tl_golden", "raw_crm__contacts"} <= sealed
    with psycopg.connect(PG_DSN, autocommit=True) as con:  # nothing else is a table of the schema
        assert set(crypto.store_tables(con, pg_schema)) == set(crypto.OWN_TABLES)
    assert traces(as_a_plain_client(pg_schema)) == []


def test_a_new_store_keyed_by_a_file_makes_it_readable_by_its_owner_only(tmp_path, pg_schema, monkeypatch):
    monkeypatch.delenv(crypto.ENV)
    key = tmp_path / "keys" / "store.key"
    landed(config_for(pg_schema, tmp_path, key_file=str(key))).store().close()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64
    with ProfileStore.open(config_for(pg_schema, tmp_path, key_file=str(key))) as store:
        assert len(profiles_of(store)) == 300


def test_without_its_key_or_with_another_the_store_does_not_open_and_nothing_is_created(tmp_path, pg_schema, monkeypatch):
    landed(config_for(pg_schema, tmp_path)).store().close()
    real = os.environ[crypto.ENV]
    before = snapshot(pg_schema)
    monkeypatch.delenv(crypto.ENV)
    key = tmp_path / "store.key"
    for encryption in ("on", "off"):  # `off` never makes a plain store in place of a sealed one
        with pytest.raises(crypto.StoreKeyError, match="not found") as missing:
            ProfileStore.open(config_for(pg_schema, tmp_path, key_file=str(key), encryption=encryption))
        assert str(key) in str(missing.value) and "$THREADLINE_STORE_KEY" in str(missing.value)
    assert not key.exists(), "a refused open made a key"

    monkeypatch.setenv(crypto.ENV, "f" * 64)
    with pytest.raises(crypto.StoreKeyError, match="wrong key") as wrong:
        ProfileStore.open(config_for(pg_schema, tmp_path))
    assert real not in str(wrong.value) and real not in (wrong.value.hint or "")
    assert snapshot(pg_schema) == before, "a refused open changed the schema"

    monkeypatch.setenv(crypto.ENV, real)
    with ProfileStore.open(config_for(pg_schema, tmp_path)) as store:
        assert len(profiles_of(store)) == 300


def test_a_sealed_store_gives_the_same_profiles_golden_records_and_links_as_a_plain_one(tmp_path, pg_schema):
    def published(config: dict) -> dict:
        with landed(config).store() as store:
            e = store.engine
            return {"profiles": profiles_of(store),
                    "golden": sorted((r["field"], str(r["value"]), r["record_key"]) for r in e.rows("SELECT * FROM tl_golden")),
                    "links": sorted((r["record_key"], r["linked_record_key"], r["rule"]) for r in e.rows("SELECT * FROM tl_links"))}

    plain = f"{pg_schema}_plain"
    try:
        assert published(config_for(pg_schema, tmp_path)) == published(config_for(plain, tmp_path, encryption="off"))
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{plain}" CASCADE')


def test_another_session_sees_what_a_later_build_sealed(tmp_path, pg_schema):
    config = config_for(pg_schema, tmp_path)
    lander = landed(config)
    reader = ProfileStore.open(config)  # its own session, like `threadline serve`
    try:
        assert reader.engine.scalar("SELECT COUNT(*) FROM raw_crm__contacts") == 301
        lander.land("crm", "contacts", [{"id": 900, "email": "new.person@example.com", "phone": None,
                                         "first_name": "New", "last_name": "Person"}], run_id="later")
        lander.build()
        assert reader.engine.scalar("SELECT COUNT(*) FROM raw_crm__contacts") == 302
        assert len(profiles_of(reader)) == 301
    finally:
        reader.close()


def rotate_cli(schema: str, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "threadline", "profiles", "rotate-key", "--dsn", PG_DSN, "--schema", schema,
                           *args], capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})})


def test_rotate_key_by_key_file_keeps_the_data_and_the_old_key_stops_working(tmp_path, pg_schema, monkeypatch):
    monkeypatch.delenv(crypto.ENV)
    key = tmp_path / f"test.{pg_schema}.key"  # where `--dsn` finds it: in the current folder
    config = config_for(pg_schema, tmp_path, key_file=str(key))
    landed(config).store().close()
    old = key.read_text()
    out = rotate_cli(pg_schema, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "re-encrypted" in out.stdout and key.read_text() != old
    assert not Path(str(key) + ".next").exists()
    with ProfileStore.open(config) as store:
        assert len(profiles_of(store)) == 300
    key.write_text(old)
    with pytest.raises(crypto.StoreKeyError, match="wrong key"):
        ProfileStore.open(config)


def test_rotate_key_by_the_environment_moves_to_the_new_variable(tmp_path, pg_schema, monkeypatch):
    config = config_for(pg_schema, tmp_path)
    landed(config).store().close()
    old, new = os.environ[crypto.ENV], "a" * 64
    assert rotate_cli(pg_schema, tmp_path).returncode != 0  # no new key given: refused, nothing changed
    out = rotate_cli(pg_schema, tmp_path, env={crypto.NEW_ENV: new})
    assert out.returncode == 0 and crypto.NEW_ENV in out.stdout, out.stderr
    with pytest.raises(crypto.StoreKeyError, match="wrong key"):
        ProfileStore.open(config)
    monkeypatch.setenv(crypto.ENV, new)
    with ProfileStore.open(config) as store:
        assert len(profiles_of(store)) == 300
    assert old not in out.stdout + out.stderr


def test_a_plain_store_still_opens_and_rotate_key_seals_it_and_decrypt_undoes_it(tmp_path, pg_schema):
    config = config_for(pg_schema, tmp_path, encryption="off")
    landed(config).store().close()
    assert traces(as_a_plain_client(pg_schema))
    assert "encrypted with the key in $THREADLINE_STORE_KEY" in rotate_key(PG_DSN, pg_schema, None)
    assert traces(as_a_plain_client(pg_schema)) == []
    with ProfileStore.open(config) as store:
        assert len(profiles_of(store)) == 300
    assert "decrypted" in rotate_key(PG_DSN, pg_schema, None, decrypt=True)
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        assert not crypto.is_sealed(con, pg_schema)
    with ProfileStore.open(config) as store:
        assert len(profiles_of(store)) == 300
        assert not isinstance(store.engine, PostgresEngine) or store.engine.sealed is None


def test_rotate_key_never_makes_a_store(tmp_path, pg_schema):
    out = rotate_cli(pg_schema, tmp_path)
    assert out.returncode != 0 and "no profile store" in out.stderr
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        assert crypto.store_tables(con, pg_schema) == []


def test_forget_on_a_sealed_store_erases_the_person_and_compacts_the_chunks(tmp_path, pg_schema):
    config = config_for(pg_schema, tmp_path)
    email = "marisol.quennell5@tidewater-mail.example"
    with landed(config).store() as store:
        assert api.find(store, email=email)
        result = api.forget(store, email=email)
        assert result.compacted.startswith("VACUUM FULL")
    with ProfileStore.open(config) as store:  # a new session reads what forget sealed
        assert api.find(store, email=email) == []
        assert len(profiles_of(store)) == 299


def test_a_rotation_committed_before_its_key_file_swap_finishes_on_the_next_open(tmp_path, pg_schema, monkeypatch):
    monkeypatch.delenv(crypto.ENV)
    key = tmp_path / "store.key"
    config = config_for(pg_schema, tmp_path, key_file=str(key))
    landed(config).store().close()
    old = key.read_text()
    assert "re-encrypted" in rotate_key(PG_DSN, pg_schema, key)
    # as if it stopped after its transaction committed, with the new key still in `.next`
    key.rename(tmp_path / "store.key.next")
    key.write_text(old)
    with ProfileStore.open(config) as store:
        assert len(profiles_of(store)) == 300
    assert key.read_text() != old and not (tmp_path / "store.key.next").exists()


SERVER_LOG = Path("/var/log/postgresql/postgresql-15-main.log")  # Debian's pg_ctlcluster log


def test_the_key_never_reaches_the_server_in_a_statement(tmp_path, pg_schema, monkeypatch):
    if not os.access(SERVER_LOG, os.R_OK):
        pytest.skip(f"the server's log {SERVER_LOG} is not readable here")
    # every statement of these sessions (only these) logged by the server, as with log_statement = all
    dsn = f"{PG_DSN}?options=-c%20log_statement%3Dall"
    key, new = os.environ[crypto.ENV], "b" * 64
    start = SERVER_LOG.stat().st_size
    landed(config_for(pg_schema, tmp_path, dsn=dsn)).store().close()
    monkeypatch.setenv(crypto.NEW_ENV, new)
    rotate_key(dsn, pg_schema, None)
    with open(SERVER_LOG, "rb") as log:
        log.seek(start)
        logged = log.read()
    assert f"{crypto.CATALOG}".encode() in logged and b"statement:" in logged, "the control: the sessions were logged"
    assert key.encode() not in logged and new.encode() not in logged


def test_a_command_given_a_schema_without_a_store_stops_and_makes_nothing(tmp_path, pg_schema):
    out = subprocess.run([sys.executable, "-m", "threadline", "profiles", "get", "--dsn", PG_DSN, "--schema", pg_schema,
                          "--email", "a@example.com"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode != 0 and f"no profile store in schema {pg_schema}" in out.stderr
    assert list(tmp_path.iterdir()) == []  # no key file
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        assert con.execute("SELECT COUNT(*) FROM pg_namespace WHERE nspname = %s", (pg_schema,)).fetchone()[0] == 0
