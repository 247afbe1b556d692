"""`forget` reaches every place a person's data can be, with a canary person: the landed
tables, the normalization cache (also after the source sends them again), the job's
quarantine, the store file's freed blocks (DuckDB) and table files (Postgres); tombstones are
keyed by the store's secret; a stranger's address changes nothing; the CLI asks first."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from threadline_profiles.cli.activation import forget_command
from threadline.state import Quarantine
from threadline_profiles import api
from threadline_profiles.activation.forget import KEYED, audit_log, tombstone_hash
from threadline_profiles.activation.secret import ENV, StoreSecretError, secret_file, store_secret
from threadline_profiles.testing import Lander

CANARY = {"id": 77, "email": "Zephyrine.Quillfeather@Canary-Mail.example", "phone": "(737) 214-8890",
          "first_name": "Zephyrine", "last_name": "Quillfeather", "street": "77 Quillfeather Lane", "zip": "78702"}
# what must not be found anywhere once she is forgotten, as text and as bytes
TRACES = ("quillfeather", "zephyrine", "7372148890")
MAPPING = {"crm.contacts": {"identifiers": {"email": "email", "phone": "phone"},
                            "traits": {"first_name": "first_name", "last_name": "last_name"},
                            "address": {"line1": "street", "postal_code": "zip"}, "cleaning": {"phone_region": "US"}}}


def others(n: int = 300) -> list[dict]:
    return [{"id": 1000 + i, "email": f"person{i}@example.com", "phone": f"(512) 353-{6000 + i:04d}", "first_name": "Ann",
             "last_name": f"Lee{i}", "street": f"{i} Main St", "zip": "78701"} for i in range(n)]


def traces_in(data: bytes) -> list[str]:
    low = data.lower()
    return [t for t in TRACES if t.encode() in low]


def landed(config: dict) -> Lander:
    lander = Lander({**config, "mappings": MAPPING})
    lander.land("crm", "contacts", [*others(), CANARY])
    lander.build()
    return lander


def file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + ".wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_the_store_file_holds_no_byte_of_a_forgotten_person(store_config):
    store_config = {**store_config, "encryption": "off"}  # bytes readable without the key (the key holder's view)
    lander = landed(store_config)
    path = Path(store_config["path"])
    assert traces_in(file_bytes(path)) == list(TRACES), "the test needs her in the file before"
    with lander.store() as store:
        result = api.forget(store, email=CANARY["email"])
        assert result.compacted.startswith("file rewritten")
        assert api.get(store, email="person1@example.com") is not None, "the store still works after the swap"
    assert traces_in(file_bytes(path)) == []
    assert not path.with_name(path.name + ".compact").exists()


def test_the_stored_agreement_model_is_fitted_again_without_her(store_config):
    """Its name dictionary and value frequencies were read from her records too."""
    lander = landed(store_config)
    held = ("SELECT COUNT(*) FROM (SELECT word AS v FROM tl_model_names UNION ALL SELECT value FROM tl_model_tf) AS m "
            "WHERE v LIKE '%quillfeather%' OR v LIKE '%zephyrine%'")
    with lander.store() as store:
        assert store.engine.scalar(held) > 0, "the test needs her in the model before"
        api.forget(store, email=CANARY["email"])
        assert store.engine.scalar(held) == 0
        head = store.engine.rows("SELECT version FROM tl_model ORDER BY version")
        assert [r["version"] for r in head] == [1, 2]


def test_without_compaction_the_freed_blocks_would_still_hold_her(store_config):
    """Why forget compacts: deleting rows leaves their bytes in the file."""
    store_config = {**store_config, "encryption": "off"}  # (in an encrypted file, for whoever holds the key)
    lander = landed(store_config)
    with lander.store() as store:
        api.forget(store, email=CANARY["email"], compact=False)
    assert traces_in(file_bytes(Path(store_config["path"])))


def test_the_normalization_cache_forgets_her_values_and_a_reread_does_not_bring_them_back(store_config):
    lander = landed(store_config)
    cached = "SELECT raw FROM tl_norm_cache WHERE lower(raw) LIKE '%quillfeather%' OR raw LIKE '%214-8890%'"
    with lander.store() as store:
        assert store.engine.rows(cached), "the test needs her values cached"
        api.forget(store, email=CANARY["email"])
        assert store.engine.rows(cached) == []
    lander.land("crm", "contacts", [CANARY], run_id="run-2")  # the CRM sends her again
    lander.build()
    with lander.store() as store:
        assert store.engine.rows(cached) == []
        assert api.get(store, email=CANARY["email"]) is None
        assert store.engine.scalar("SELECT COUNT(*) FROM raw_crm__contacts WHERE id = 77") == 0
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_norm_cache WHERE raw = 'Ann'") == 1, "shared values stay cached"


def test_her_quarantined_rows_are_deleted_and_everyone_elses_kept(store_config, tmp_path):
    lander = landed(store_config)
    state = tmp_path / ".threadline"
    first = Quarantine(state / "quarantine" / "run-1", "run-1", "crm", "contacts")
    first.add([{**CANARY, "email": " ZEPHYRINE.QUILLFEATHER@canary-mail.example", "zip": "not a zip"},
               {"id": 5, "email": "person5@example.com", "zip": "bad"}], "zip is not an integer")
    second = Quarantine(state / "quarantine" / "run-2", "run-2", "shop", "orders")
    second.add([{"order": 1, "phone": "+1 737-214-8890"}, {"order": 2, "phone": "+1 512 353 6001"}], "amount missing")
    only_her = Quarantine(state / "quarantine" / "run-3", "run-3", "crm", "contacts")
    only_her.add([{"id": 77, "street": "77 Quillfeather Lane"}], "ragged row")  # known by her record's key alone
    with lander.store() as store:
        result = api.forget(store, email=CANARY["email"], state_dir=state)
    assert result.quarantined_rows_deleted == 3
    left = "".join(p.read_text() for p in sorted(state.glob("quarantine/*/*.jsonl")))
    assert traces_in(left.encode()) == []
    assert "person5@example.com" in left and "353 6001" in left
    assert not only_her.path.exists(), "a file left empty is removed"


def test_tombstones_are_keyed_by_the_store_secret_kept_beside_the_store(store_config):
    lander = landed(store_config)
    with lander.store() as store:
        api.forget(store, email=CANARY["email"])
        stones = {r["hash"] for r in store.engine.rows("SELECT hash FROM tl_tombstones")}
        secret = store_secret(store)
        assert {r["scheme"] for r in store.engine.rows("SELECT scheme FROM tl_tombstones")} == {KEYED}
        key = secret_file(store.config)
    assert stones == {tombstone_hash(secret, "email", CANARY["email"].lower()), tombstone_hash(secret, "phone", "+17372148890")}
    unsalted = hashlib.sha256(f"email:{CANARY['email'].lower()}".encode()).hexdigest()
    assert unsalted not in stones, "a plain SHA-256 could be reversed by hashing candidate addresses"
    assert key == Path(store_config["path"] + ".secret") and stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_missing_secret_stops_the_build_rather_than_let_forgotten_people_back(store_config):
    lander = landed(store_config)
    with lander.store() as store:
        api.forget(store, email=CANARY["email"])
    Path(store_config["path"] + ".secret").unlink()
    lander.land("crm", "contacts", [CANARY], run_id="run-2")
    with pytest.raises(StoreSecretError, match="secret is missing") as failed:
        lander.build()
    assert "restore the file" in failed.value.hint


def test_a_secret_from_the_environment_replaces_the_file_and_another_one_is_refused(store_config, monkeypatch):
    monkeypatch.setenv(ENV, "e" * 40)
    lander = landed(store_config)
    with lander.store() as store:
        api.forget(store, email=CANARY["email"])
    assert not Path(store_config["path"] + ".secret").exists()
    lander.land("crm", "contacts", [CANARY], run_id="run-2")
    lander.build()  # the same secret: she is dropped again
    monkeypatch.setenv(ENV, "f" * 40)
    with pytest.raises(StoreSecretError, match="not the one its tombstones were made with"):
        lander.build()


def test_plain_sha256_tombstones_of_an_older_store_still_drop_and_become_keyed(store_config):
    lander = landed(store_config)
    with lander.store() as store:  # as the previous version wrote them
        api.forget(store, profile_id="none", rebuild=False, compact=False)  # makes the tables
        legacy = hashlib.sha256(b"email:" + CANARY["email"].lower().encode()).hexdigest()
        store.engine.execute(f"INSERT INTO tl_tombstones VALUES ('{legacy}', NULL, CURRENT_TIMESTAMP, 'old', NULL)")
        store_secret(store, create=True)
    lander.build()
    with lander.store() as store:
        assert api.get(store, email=CANARY["email"]) is None
        assert store.engine.rows("SELECT scheme FROM tl_tombstones") == [{"scheme": KEYED}]


def test_forgetting_an_address_nobody_holds_changes_nothing(store_config):
    lander = landed(store_config)
    with lander.store() as store:
        before = store.engine.scalar("SELECT COUNT(*) FROM tl_members")
        result = api.forget(store, email="zephyrine.quilfeather@canary-mail.example")  # a typo
        assert not result.found and result.tombstones == 0
        assert result.summary().startswith("nobody in the profile store holds")
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_members") == before
        assert not store.engine.table_exists("tl_tombstones") or not store.engine.scalar("SELECT COUNT(*) FROM tl_tombstones")
        assert audit_log(store) == []
    assert not Path(store_config["path"] + ".secret").exists()


def _job(tmp_path: Path, store_path: str) -> Path:
    job = tmp_path / "job.yaml"
    (tmp_path / "contacts.csv").write_text("id,email\n1,a@example.com\n")
    job.write_text(json.dumps({"name": "erasure", "sources": {"crm": {"connector": "files", "config": {"streams": [
        {"name": "contacts", "path": "contacts.csv", "primary_key": ["id"]}]}}}, "destinations": {"store": {
        "connector": "profiles", "config": {"path": store_path, "mappings": MAPPING}}}}))
    return job


def test_the_cli_asks_before_erasing_and_no_changes_nothing(store_config, tmp_path):
    landed(store_config)
    job = _job(tmp_path, store_config["path"])
    said_no = CliRunner().invoke(forget_command, ["--job", str(job), "--email", CANARY["email"]], input="n\n")
    assert said_no.exit_code == 0, said_no.output
    assert "erase 1 profile(s): 1 record(s) (1 in crm.contacts)" in said_no.output
    assert "nothing was changed" in said_no.output
    said_yes = CliRunner().invoke(forget_command, ["--job", str(job), "--email", CANARY["email"], "--yes"])
    assert said_yes.exit_code == 0, said_yes.output
    assert "forgot 1 profile(s), 1 record(s); 2 identifier(s) tombstoned" in said_yes.output
    assert "0 quarantined row(s) deleted" in said_yes.output and "store compacted" in said_yes.output


def test_the_cli_tells_a_typo_from_a_person(store_config, tmp_path):
    landed(store_config)
    job = _job(tmp_path, store_config["path"])
    typo = CliRunner().invoke(forget_command, ["--job", str(job), "--email", "zephyrine@canary-mail.example"])
    assert typo.exit_code == 0 and "nobody in the profile store holds that email; nothing was changed" in typo.output
    blocked = CliRunner().invoke(forget_command, ["--job", str(job), "--email", "new@canary-mail.example",
                                       "--even-if-unknown", "--yes"])
    assert blocked.exit_code == 0 and "1 identifier(s) tombstoned" in blocked.output


def test_postgres_table_files_hold_no_byte_of_her_after_forget(pg_schema, tmp_path):
    import psycopg

    PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

    # A plain store (an encrypted one never holds her in clear: test_profiles_postgres_encryption.py)
    config = {"engine": "postgres", "dsn": PG_DSN, "schema": pg_schema, "resolve_on_finish": False,
              "report_dir": str(tmp_path / "reports"), "encryption": "off"}
    lander = landed(config)
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        data_dir = Path(con.execute("SHOW data_directory").fetchone()[0])

        def table_files() -> bytes:
            con.execute("CHECKPOINT")  # dirty pages reach the files
            paths = [r[0] for r in con.execute(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 't', 'i') UNION ALL SELECT pg_relation_filepath(c.reltoastrelid) "
                "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "AND c.reltoastrelid <> 0", (pg_schema, pg_schema)).fetchall() if r[0]]
            if not os.access(data_dir / paths[0], os.R_OK):
                pytest.skip(f"the Postgres data files under {data_dir} are not readable by this user (run as root)")
            return b"".join((data_dir / p).read_bytes() for p in paths if (data_dir / p).exists())

        assert traces_in(table_files()), "the test needs her in the table files before"
        with lander.store() as store:
            result = api.forget(store, email=CANARY["email"])
        assert result.compacted.startswith("VACUUM FULL")
        assert traces_in(table_files()) == []
