"""A profile store's key: where it is found, how a new one is made, how a rotation hands
over to the next one. Shared by the engines that encrypt a store (DuckDB's encrypted file,
`duckdb_crypto`; Postgres' sealed tables, `postgres_crypto`).

Where the key is, first found wins:

1. `$THREADLINE_STORE_KEY` (at least 32 characters), for keys kept in a secret manager;
2. the store's key file (`<store>.key`), made when a new encrypted store is created: 32
   random bytes, hex, readable by its owner only.

During a rotation the next key waits in `<store>.key.next` (or `$THREADLINE_STORE_NEW_KEY`),
so a crash at any point leaves a store some key opens.
"""

from __future__ import annotations

import os
import secrets as random
from dataclasses import dataclass
from pathlib import Path

from threadline.contracts import ConfigError, FatalError
from threadline.state import fsync_folder

ENV = "THREADLINE_STORE_KEY"
NEW_ENV = "THREADLINE_STORE_NEW_KEY"  # the next key, for `rotate-key` of a store keyed by the environment
MIN_LENGTH = 32


class StoreKeyError(FatalError):
    """An encrypted store's key is missing or is not the key of the store."""


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


def _checked(value: str, where: str) -> StoreKey:
    if len(value) < MIN_LENGTH:
        raise ConfigError(f"the store key in {where} is {len(value)} characters long; it needs at least {MIN_LENGTH}",
                          hint='make one with: python3 -c "import secrets; print(secrets.token_hex(32))"')
    from threadline.secrets import register_secret

    register_secret(value)  # masked in every message from here on
    return StoreKey(value, where)


def key_from_env(name: str) -> StoreKey | None:
    value = os.environ.get(name, "")
    return _checked(value, f"${name}") if value else None


def key_from_file(path: Path) -> StoreKey | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return _checked(text, str(path))


def find_key(path: Path) -> StoreKey | None:
    """The store's key: the environment first, then the key file beside the store."""
    return key_from_env(ENV) or key_from_file(key_file(path))


def write_key_file(path: Path) -> StoreKey:
    """A new random key in `path`, readable by its owner only (made so, never chmod-ed after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(random.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    fsync_folder(path.parent)
    found = key_from_file(path)
    assert found is not None
    return found


def fallback(path: Path, primary: StoreKey | None) -> StoreKey | None:
    """The new key of a rotation that stopped between swapping the file and the key."""
    if primary is not None and primary.where == f"${ENV}":
        return key_from_env(NEW_ENV)
    return key_from_file(next_key_file(path))
