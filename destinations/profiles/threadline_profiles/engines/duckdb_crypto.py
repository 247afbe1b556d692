"""Encryption at rest of a DuckDB profile store: the whole database file (and its WAL and
spill files) encrypted by DuckDB itself, AES-256-GCM per block, with a key from the
environment or from a key file beside the store.

Why the whole file and not fields: resolution compares identifiers in SQL (fuzzy emails,
name similarity, incremental equality), which encrypted field tokens cannot do; the file
encryption keeps every stage as it is and covers every table, the WAL and the work tables.

Where the key is, first found wins:

1. `$THREADLINE_STORE_KEY` (at least 32 characters), for keys kept in a secret manager;
2. `<store file>.key` beside the store (`profiles.duckdb.key`), made when a new encrypted
   store is created: 32 random bytes, hex, readable by its owner only.

A key file beside the store protects every copy of the store file made without it (a
backup, a file handed over, a disk image of another folder); against someone who can read
the folder, keep the key in the environment instead.

DuckDB writes an encrypted file only with a cryptographically secure source for its AES-GCM
nonces, which its `httpfs` extension (OpenSSL) brings; without it DuckDB can read an encrypted
store but not write one. httpfs comes as a Python wheel, `duckdb-extension-httpfs`, pinned to
exactly the DuckDB version it was built for (destinations/profiles/pyproject.toml); it is loaded
from that wheel's file (`LOAD '<path>'`), never downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets as random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from threadline.contracts import ConfigError, FatalError
from threadline.state import fsync_folder

from threadline_profiles.engines.base import lit

logger = logging.getLogger(__name__)

ENV = "THREADLINE_STORE_KEY"
NEW_ENV = "THREADLINE_STORE_NEW_KEY"  # the next key, for `rotate-key` of a store keyed by the environment
MIN_LENGTH = 32
CATALOG = "tl_store"  # the name an encrypted store is attached under (a plain one is named after its file)
HTTPFS_WHEEL = "duckdb-extension-httpfs"


class StoreKeyError(FatalError):
    """An encrypted store's key is missing or is not the key of the store."""


class CryptoUnavailableError(FatalError):
    """DuckDB cannot write an encrypted file here: its httpfs extension (OpenSSL) does not load."""


@dataclass(frozen=True)
class StoreKey:
    value: str
    where: str  # the variable or file it came from, for messages (never the value)


def key_file(path: Path) -> Path:
    return path.with_name(path.name + ".key")


def next_key_file(path: Path) -> Path:
    """The new key of a rotation, until the rotated file is in place."""
    return path.with_name(path.name + ".key.next")


def where_looked(path: Path) -> str:
    return f"${ENV} and the file {key_file(path)}"


def install_hint() -> str:
    return (f"install the httpfs extension built for this DuckDB: pip install "
            f"'duckdb=={duckdb.__version__}' '{HTTPFS_WHEEL}=={duckdb.__version__}' "
            "(the two versions must be equal)")


def httpfs_file() -> Path | None:
    """The httpfs extension file for this DuckDB version in the installed
    `duckdb-extension-httpfs` wheel, or None when it is not installed or built for another version."""
    spec = importlib.util.find_spec("duckdb_extension_httpfs")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = Path(folder) / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
        if found.is_file():
            return found
    return None


def secure_crypto(con: duckdb.DuckDBPyConnection) -> bool:
    """Load httpfs (OpenSSL) into `con` from the wheel's file, so that it can write encrypted
    files; False when the wheel for this DuckDB version is missing or does not load."""
    extension = httpfs_file()
    if extension is None:
        return False
    try:
        con.execute(f"LOAD {lit(str(extension))}")
        return True
    except duckdb.Error as exc:
        logger.warning("DuckDB's httpfs extension %s does not load: %s", extension, exc)
        return False


def _memory_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory connection that never fetches an extension (an encrypted store is attached to it)."""
    return duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})


# ---------------------------------------------------------------- keys


def _checked(value: str, where: str) -> StoreKey:
    if len(value) < MIN_LENGTH:
        raise ConfigError(f"the store key in {where} is {len(value)} characters long; it needs at least {MIN_LENGTH}",
                          hint='make one with: python3 -c "import secrets; print(secrets.token_hex(32))"')
    from threadline.secrets import register_secret

    register_secret(value)  # masked in every message from here on
    return StoreKey(value, where)


def _key_from_env(name: str) -> StoreKey | None:
    value = os.environ.get(name, "")
    return _checked(value, f"${name}") if value else None


def _key_from_file(path: Path) -> StoreKey | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return _checked(text, str(path))


def find_key(path: Path) -> StoreKey | None:
    """The store's key: the environment first, then the key file beside the store."""
    return _key_from_env(ENV) or _key_from_file(key_file(path))


def write_key_file(path: Path) -> StoreKey:
    """A new random key in `path`, readable by its owner only (made so, never chmod-ed after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(random.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    fsync_folder(path.parent)
    found = _key_from_file(path)
    assert found is not None
    return found


def _fallback(path: Path, primary: StoreKey | None) -> StoreKey | None:
    """The new key of a rotation that stopped between swapping the file and the key."""
    if primary is not None and primary.where == f"${ENV}":
        return _key_from_env(NEW_ENV)
    return _key_from_file(next_key_file(path))


# ---------------------------------------------------------------- opening


def attach_sql(path: Path, alias: str, key: StoreKey | None) -> str:
    option = f" (ENCRYPTION_KEY {lit(key.value)})" if key else ""
    return f"ATTACH {lit(str(path))} AS {alias}{option}"


# One attached database per store file and process, shared by every connection to it (as
# DuckDB shares one instance among `duckdb.connect` calls to the same file): DuckDB refuses to
# attach a file twice in one process. path -> [root connection, key value, users].
_instances: dict[str, list[Any]] = {}
_instances_lock = threading.Lock()


def _attached(path: Path, key: StoreKey) -> duckdb.DuckDBPyConnection:
    """A connection to the store attached under its key and made the default; release it with
    `release(path)` after closing it."""
    name = str(path.resolve())
    with _instances_lock:
        entry = _instances.get(name)
        if entry is None:
            entry = _instances[name] = [_root(path, key), key.value, 0]
        elif entry[1] != key.value:  # already open here: the key is still checked
            raise duckdb.InvalidInputException("Wrong encryption key used to open the database file")
        con = entry[0].cursor()
        con.execute(f"USE {CATALOG}")
        entry[2] += 1
        return con


def _root(path: Path, key: StoreKey, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A new in-memory connection with the store attached (as `CATALOG`, also made the default)."""
    root = _memory_connection()
    try:
        if not secure_crypto(root) and not read_only:
            raise CryptoUnavailableError(
                f"the profile store {path} is encrypted and DuckDB {duckdb.__version__} here cannot write "
                f"encrypted files: its httpfs extension ({HTTPFS_WHEEL}) is not installed for this version",
                hint=install_hint())
        sql = attach_sql(path, CATALOG, key)
        root.execute(sql[:-1] + ", READ_ONLY)" if read_only else sql)
        root.execute(f"USE {CATALOG}")
        # Spilled blocks of big joins hold personal data too: encrypted, beside the store as before.
        root.execute(f"SET temp_directory = {lit(str(path) + '.tmp')}")
        root.execute("SET temp_file_encryption = true")
    except BaseException:
        root.close()
        raise
    return root


def attached_here(path: Path) -> bool:
    """Whether this process has the store open encrypted already (DuckDB would refuse a plain
    open of the same file)."""
    with _instances_lock:
        return str(path.resolve()) in _instances


def release(path: Path) -> None:
    """One user of an encrypted store's connection is done; the last one detaches the file."""
    name = str(path.resolve())
    with _instances_lock:
        entry = _instances.get(name)
        if entry is None:
            return
        entry[2] -= 1
        if entry[2] <= 0:
            del _instances[name]
            entry[0].close()


def open_encrypted(path: Path) -> tuple[duckdb.DuckDBPyConnection, StoreKey]:
    """Open an existing encrypted store. A missing or wrong key is an error naming where the
    key was looked for; nothing is ever created in its place."""
    primary = find_key(path)
    fallback = _fallback(path, primary)
    candidates = [k for k in (primary, fallback) if k is not None]
    if not candidates:
        raise StoreKeyError(
            f"the profile store {path} is encrypted and its key was not found (looked for {where_looked(path)})",
            hint=f"set ${ENV} to the store's key, or put its key file back from the backup of the store's folder")
    for key in candidates:
        try:
            con = _attached(path, key)
        except duckdb.InvalidInputException as exc:
            if "encryption key" not in str(exc).lower():
                raise
            continue
        if key is fallback and key.where == str(next_key_file(path)):
            os.replace(next_key_file(path), key_file(path))  # finish the interrupted rotation
            fsync_folder(path.parent)
            logger.warning("finished an interrupted key rotation of %s: its key is now %s", path, key_file(path))
            key = StoreKey(key.value, str(key_file(path)))
        return con, key
    raise StoreKeyError(
        f"the key from {candidates[0].where} does not open the profile store {path} (wrong key)",
        hint=f"use the key this store was encrypted with ({where_looked(path)}); nothing was opened or created")


def create_encrypted(path: Path) -> tuple[duckdb.DuckDBPyConnection, StoreKey]:
    """A new encrypted store at `path` (which does not exist), with the key from the
    environment or a new key file. Refused when DuckDB cannot encrypt here: nothing is
    created, not even the key file."""
    probe = _memory_connection()
    try:
        available = secure_crypto(probe)
    finally:
        probe.close()
    if not available:
        raise CryptoUnavailableError(
            f"cannot create the encrypted profile store {path}: DuckDB {duckdb.__version__} here cannot write "
            f"encrypted files (its httpfs extension, {HTTPFS_WHEEL}, is not installed for this version)",
            hint=f"{install_hint()}; or set `encryption: off` in the profiles destination to store it unencrypted")
    key = find_key(path) or write_key_file(key_file(path))
    return _attached(path, key), key


def connect_file(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to an existing store file, encrypted or not, for tests, benches and
    tools that read a store directly. Reading an encrypted store needs its key but no httpfs."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.CatalogException as exc:
        if "encrypted" not in str(exc):
            raise
    key = find_key(path)
    if key is None:
        raise StoreKeyError(f"the profile store {path} is encrypted and its key was not found "
                            f"(looked for {where_looked(path)})")
    return _root(path, key, read_only)  # its own, closed with it (not shared like a store's)


# ---------------------------------------------------------------- rotation


def rotate(con: duckdb.DuckDBPyConnection, path: Path, current: StoreKey | None, decrypt: bool = False) -> str:
    """Copy the open store into a new file under a new key (or none, with `decrypt`) and
    swap it in. The new key is kept in `<store>.key.next` until the new file is in place, so
    a crash at any point leaves a store that opens: the old file with the old key, or the new
    file with the next key (`open_encrypted` then finishes the swap). Closes `con`."""
    if not decrypt and not secure_crypto(con):  # before any key is made
        raise CryptoUnavailableError(f"DuckDB {duckdb.__version__} here cannot write encrypted files "
                                     f"({HTTPFS_WHEEL} is not installed for this version)", hint=install_hint())
    env_key = _key_from_env(ENV)
    new: StoreKey | None = None
    next_file = next_key_file(path)
    if not decrypt:
        if env_key is not None and current is not None:  # keyed by the environment: the next key comes from it too
            new = _key_from_env(NEW_ENV)
            if new is None:
                raise ConfigError(f"the store's key comes from ${ENV}; give the new one in ${NEW_ENV}",
                                  hint=f"after the rotation, set ${ENV} to it (and unset ${NEW_ENV})")
        elif env_key is not None:  # a plain store, to be encrypted with the environment's key
            new = env_key
        else:
            next_file.unlink(missing_ok=True)  # a rotation that stopped before its swap
            new = write_key_file(next_file)
    fresh = path.with_name(path.name + ".rotating")
    fresh.unlink(missing_ok=True)
    database = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    con.execute("CHECKPOINT")
    con.execute(attach_sql(fresh, "tl_rotated", new))
    try:
        con.execute(f'COPY FROM DATABASE "{database}" TO tl_rotated')
    finally:
        con.execute("DETACH tl_rotated")
    con.close()
    release(path)  # an encrypted store's attached file is closed with its last connection
    with open(fresh, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(fresh, path)
    fsync_folder(path.parent)
    verb = "encrypted" if current is None else "re-encrypted"
    if new is not None and new.where == str(next_file):
        os.replace(next_file, key_file(path))
        fsync_folder(path.parent)
        return f"{path} {verb}; its key is in {key_file(path)}" + (" (the old key no longer opens it)" if current else "")
    if new is None:
        key_file(path).unlink(missing_ok=True)
        return f"{path} decrypted: it is stored unencrypted now"
    if current is None:
        return f"{path} encrypted with the key in ${ENV}"
    return f"{path} re-encrypted with the key in ${NEW_ENV}: set ${ENV} to it now (the old key no longer opens it)"
