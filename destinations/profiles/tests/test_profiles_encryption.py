"""Encryption at rest of a DuckDB store, as an attacker holding the file would try it: the
file (and WAL) read as bytes, with `strings` and with DuckDB directly shows none of the
population's emails or phones; without the key or with another key nothing opens and
nothing new is created; rotate-key keeps the data and the old key stops working.

The stores are encrypted as in production: DuckDB with its httpfs extension (OpenSSL) loaded
from the `duckdb-extension-httpfs` wheel."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from threadline.contracts import ConfigError, FatalError
from threadline_profiles import ProfileStore, api
from threadline_profiles.engines import duckdb_crypto as crypto
from threadline_profiles.testing import SECRET_MAPPING as MAPPING
from threadline_profiles.testing import SECRET_TRACES as TRACES
from threadline_profiles.testing import Lander, copy_store, profiles_of
from threadline_profiles.testing import secret_population as population

@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv(crypto.ENV, raising=False)
    monkeypatch.delenv(crypto.NEW_ENV, raising=False)


def landed(path: Path, **config) -> Lander:
    lander = Lander({"path": str(path), "resolve_on_finish": False, "mappings": MAPPING, **config})
    lander.land("crm", "contacts", population())
    lander.build()
    return lander


def file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + ".wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def traces_in(path: Path) -> list[str]:
    low = file_bytes(path).lower()
    found = [t for t in TRACES if t.encode() in low]
    if shutil.which("strings"):
        out = subprocess.run(["strings", "-a", str(path)], capture_output=True, text=True).stdout.lower()
        found += [f"strings:{t}" for t in TRACES if t in out]
    return found


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_new_store_is_encrypted_and_its_file_shows_no_email_or_phone(tmp_path):
    plain = tmp_path / "plain" / "profiles.duckdb"
    landed(plain, encryption="off")
    assert traces_in(plain), "the control: an unencrypted store shows the population"

    path = tmp_path / "profiles.duckdb"
    lander = landed(path)
    key = crypto.key_file(path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64
    assert traces_in(path) == []
    for opened in (lambda: duckdb.connect(str(path)), lambda: duckdb.connect(str(path), read_only=True)):
        with pytest.raises(duckdb.Error, match="encrypted"):
            opened()
    with lander.store() as store:  # with its key the whole pipeline works as before
        assert len(profiles_of(store)) == 300
        assert api.find(store, email="marisol.quennell0@tidewater-mail.example")[0].golden["last_name"]


def test_without_its_key_or_with_another_the_store_does_not_open_and_nothing_is_created(tmp_path, monkeypatch):
    path = tmp_path / "profiles.duckdb"
    landed(path).store().close()
    key = crypto.key_file(path)
    real = key.read_text().strip()
    key.rename(tmp_path / "elsewhere.key")
    before = folder_state(tmp_path)

    with pytest.raises(crypto.StoreKeyError) as missing:
        ProfileStore.open({"path": str(path)})
    assert str(key) in str(missing.value) and "$THREADLINE_STORE_KEY" in str(missing.value)
    assert "not found" in str(missing.value)

    wrong = "0" * 64
    key.write_text(wrong + "\n")
    before = folder_state(tmp_path)
    with pytest.raises(crypto.StoreKeyError, match="wrong key") as from_file:
        ProfileStore.open({"path": str(path)})
    monkeypatch.setenv(crypto.ENV, "f" * 64)
    with pytest.raises(crypto.StoreKeyError, match="wrong key") as from_env:
        ProfileStore.open({"path": str(path)})
    assert "$THREADLINE_STORE_KEY" in str(from_env.value)
    for err in (missing, from_file, from_env):
        assert real not in str(err.value) and real not in (err.value.hint or "")
    assert folder_state(tmp_path) == before, "a refused open changed or created a file"

    monkeypatch.setenv(crypto.ENV, real)  # the right key from the environment opens it
    with ProfileStore.open({"path": str(path)}) as store:
        assert len(profiles_of(store)) == 300


def test_a_key_that_is_too_short_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(crypto.ENV, "short")
    with pytest.raises(ConfigError, match="at least 32"):
        ProfileStore.open({"path": str(tmp_path / "p.duckdb")})
    assert not (tmp_path / "p.duckdb").exists()


def rotate_cli(path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "threadline", "profiles", "rotate-key", "--path", str(path), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_rotate_key_keeps_the_data_and_the_old_key_stops_working(tmp_path):
    path = tmp_path / "profiles.duckdb"
    with landed(path).store() as store:
        before = profiles_of(store)
    old = crypto.key_file(path).read_text()
    backup = copy_store(path, tmp_path / "backup.duckdb")

    out = rotate_cli(path)
    assert out.returncode == 0, out.stderr
    assert "re-encrypted" in out.stdout and old.strip() not in out.stdout + out.stderr
    new = crypto.key_file(path).read_text()
    assert new != old and stat.S_IMODE(crypto.key_file(path).stat().st_mode) == 0o600
    assert not crypto.next_key_file(path).exists() and not path.with_name(path.name + ".rotating").exists()
    with ProfileStore.open({"path": str(path)}) as store:
        assert profiles_of(store) == before
    assert traces_in(path) == []

    crypto.key_file(path).write_text(old)
    with pytest.raises(crypto.StoreKeyError, match="wrong key"):
        ProfileStore.open({"path": str(path)})
    with ProfileStore.open({"path": str(backup)}) as store:  # the backup stays under the key it was made with
        assert profiles_of(store) == before


def test_a_rotation_stopped_between_its_two_swaps_finishes_on_the_next_open(tmp_path):
    path = tmp_path / "profiles.duckdb"
    landed(path).store().close()
    old = crypto.key_file(path).read_text()
    assert rotate_cli(path).returncode == 0
    # the state a crash leaves after the new file is in place and before the key file is: new key still in .next
    crypto.key_file(path).rename(crypto.next_key_file(path))
    crypto.key_file(path).write_text(old)
    with ProfileStore.open({"path": str(path)}) as store:
        assert len(profiles_of(store)) == 300
    assert not crypto.next_key_file(path).exists() and crypto.key_file(path).read_text() != old


def test_an_unencrypted_store_still_opens_and_rotate_key_encrypts_it(tmp_path):
    path = tmp_path / "profiles.duckdb"
    with landed(path, encryption="off").store() as store:
        before = profiles_of(store)
    assert not crypto.key_file(path).exists() and traces_in(path)
    with ProfileStore.open({"path": str(path)}) as store:  # the default (auto) opens it as it is
        assert profiles_of(store) == before

    out = rotate_cli(path)
    assert out.returncode == 0 and "encrypted; its key is in" in out.stdout, out.stderr
    assert traces_in(path) == []
    with ProfileStore.open({"path": str(path)}) as store:
        assert profiles_of(store) == before

    out = rotate_cli(path, "--decrypt")  # the opt-out for a store already encrypted
    assert out.returncode == 0 and "decrypted" in out.stdout, out.stderr
    assert traces_in(path) and not crypto.key_file(path).exists()


def test_a_store_keyed_by_the_environment_rotates_to_the_new_variable(tmp_path, monkeypatch):
    first, second = "a1" * 32, "b2" * 32
    monkeypatch.setenv(crypto.ENV, first)
    path = tmp_path / "profiles.duckdb"
    with landed(path).store() as store:
        before = profiles_of(store)
    assert not crypto.key_file(path).exists(), "a key from the environment is never written down"

    out = rotate_cli(path)
    assert out.returncode != 0 and crypto.NEW_ENV in out.stderr
    out = rotate_cli(path, env={crypto.NEW_ENV: second})
    assert out.returncode == 0 and crypto.NEW_ENV in out.stdout, out.stderr
    with pytest.raises(crypto.StoreKeyError, match="wrong key"):
        ProfileStore.open({"path": str(path)})
    monkeypatch.setenv(crypto.ENV, second)
    with ProfileStore.open({"path": str(path)}) as store:
        assert profiles_of(store) == before


def test_forget_compacts_an_encrypted_store_into_an_encrypted_file(tmp_path):
    path = tmp_path / "profiles.duckdb"
    with landed(path).store() as store:
        result = api.forget(store, email="marisol.quennell7@tidewater-mail.example")
        assert result.compacted.startswith("file rewritten")
        assert len(profiles_of(store)) == 299
    assert traces_in(path) == []
    with crypto.connect_file(path, read_only=True) as con:  # the direct reader tests and tools use
        assert con.execute("SELECT COUNT(*) FROM tl_profiles").fetchone()[0] == 299


def test_httpfs_is_loaded_from_the_installed_wheel_and_never_fetched():
    extension = crypto.httpfs_file()
    assert extension is not None and extension.is_file(), "duckdb-extension-httpfs for this DuckDB is a dependency"
    assert f"v{duckdb.__version__}" in extension.parts
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    assert crypto.secure_crypto(con)
    assert con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone() == (True,)


def test_without_httpfs_a_new_store_is_refused_and_nothing_is_created(tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, "httpfs_file", lambda: None)  # a DuckDB other than the pinned one
    path = tmp_path / "profiles.duckdb"
    with pytest.raises(crypto.CryptoUnavailableError, match="httpfs") as err:
        ProfileStore.open({"path": str(path)})
    assert f"duckdb-extension-httpfs=={duckdb.__version__}" in err.value.hint and "encryption: off" in err.value.hint
    assert list(tmp_path.iterdir()) == []
    with ProfileStore.open({"path": str(path), "encryption": "off"}) as store:  # the documented opt-out
        assert not store.engine.encrypted
    assert not crypto.key_file(path).exists()


def test_the_opt_out_written_in_yaml_makes_a_plain_store(tmp_path):
    import yaml

    path = tmp_path / "profiles.duckdb"
    config = yaml.safe_load(f"path: {path}\nencryption: off\n")  # YAML 1.1 reads the bare word as false
    with ProfileStore.open(config) as store:
        assert not store.engine.encrypted
    assert not crypto.key_file(path).exists()
    duckdb.connect(str(path)).close()  # a plain file: DuckDB opens it without a key


def test_duckdb_itself_refuses_the_file_without_its_key_and_with_another(tmp_path):
    path = tmp_path / "profiles.duckdb"
    landed(path).store().close()
    con = duckdb.connect()
    with pytest.raises(duckdb.Error, match="without a key"):
        con.execute(f"ATTACH '{path}' AS stolen (READ_ONLY)")
    crypto.secure_crypto(con)
    with pytest.raises(duckdb.Error, match="(?i)wrong encryption key"):
        con.execute(f"ATTACH '{path}' AS stolen (ENCRYPTION_KEY '{'0' * 64}', READ_ONLY)")
    real = crypto.key_file(path).read_text().strip()
    con.execute(f"ATTACH '{path}' AS opened (ENCRYPTION_KEY '{real}', READ_ONLY)")  # the control: the key opens it
    emails = con.execute("SELECT COUNT(*) FROM opened.tl_record_values WHERE value LIKE '%tidewater-mail%'").fetchone()[0]
    assert emails > 0


def test_rotate_key_names_what_it_cannot_do(tmp_path):
    out = rotate_cli(tmp_path / "missing.duckdb")
    assert out.returncode != 0 and "no profile store" in out.stderr
    assert not (tmp_path / "missing.duckdb").exists()
    out = subprocess.run([sys.executable, "-m", "threadline", "profiles", "rotate-key", "--dsn", "postgresql://x@127.0.0.1/y"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "Postgres" in out.stderr


def test_the_key_is_never_in_an_error_about_the_store(tmp_path):
    path = tmp_path / "profiles.duckdb"
    landed(path).store().close()
    real = crypto.key_file(path).read_text().strip()
    crypto.key_file(path).write_text("1" * 64)
    with pytest.raises(FatalError) as err:
        ProfileStore.open({"path": str(path)})
    assert real not in str(err.value) and "1" * 64 not in str(err.value)


def test_one_process_opens_an_encrypted_store_twice_and_lets_it_go(tmp_path):
    """As the destination's shared store and a command's store do: one attachment, shared;
    the file is free for another process once both are closed."""
    path = tmp_path / "profiles.duckdb"
    landed(path).store().close()
    first = ProfileStore.open({"path": str(path)})
    second = ProfileStore.open({"path": str(path)})
    first.engine.run(["CREATE TABLE tl_probe AS SELECT 42 AS answer"])
    assert second.engine.scalar("SELECT answer FROM tl_probe") == 42
    first.close()
    assert second.engine.scalar("SELECT COUNT(*) FROM tl_profiles") == 300
    second.close()
    second.close()  # closing twice releases once
    other = subprocess.run([sys.executable, "-c", f"from threadline_profiles.engines.duckdb_crypto import connect_file; "
                            f"print(connect_file(__import__('pathlib').Path({str(path)!r})).execute('SELECT answer FROM tl_probe').fetchone()[0])"],
                           capture_output=True, text=True, env=os.environ)
    assert other.stdout.strip() == "42", other.stderr
