"""The store's secret: the key of its tombstones and of the addresses its push ledgers keep.

A tombstone is HMAC-SHA256 of `<field>:<normalized value>` under this secret, so nobody
holding a copy of the store (a backup, a dump) can find who was forgotten by hashing a
country's phone numbers or a list of addresses: without the secret a tombstone is noise.
Push ledgers of platforms that find people by address (Klaviyo) keep it encrypted with a key
derived from the same secret (`ledger_cipher`).

Where it is, first found wins:

1. the environment variable `THREADLINE_STORE_SECRET` (at least 32 characters), for stores
   shared by several machines (Postgres) or kept in a secret manager;
2. a file beside the store: `<store file>.secret` for DuckDB (`profiles.duckdb.secret`),
   `store.secret` in the report folder for Postgres. It is made the first time a person is
   forgotten (32 random bytes, hex, readable by its owner only).

The store remembers a fingerprint of the secret (`tl_meta`), never the secret. Losing the
secret means the tombstones can no longer be matched: a later sync could bring the forgotten
people back, so a build or `forget` with another or a missing secret stops with an error
instead of carrying on. Keep the file in the same backups as the store, and never in the same
place as a copy of the store you hand to someone.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from threadline.contracts import ConfigError, FatalError

from threadline_profiles.engines.base import lit

if TYPE_CHECKING:
    from threadline_profiles.config import ProfilesConfig
    from threadline_profiles.store import ProfileStore

ENV = "THREADLINE_STORE_SECRET"
MIN_LENGTH = 32
FINGERPRINT_KEY = "secret_fingerprint"


class StoreSecretError(FatalError):
    """The store's secret is missing or is not the one its tombstones were made with."""


@dataclass(frozen=True)
class StoreSecret:
    key: bytes
    where: str  # the file or the variable it came from, for messages (never the value)

    def derive(self, purpose: str) -> bytes:
        """A key for one purpose (tombstones, ledger encryption), so one use never weakens another."""
        return hmac.new(self.key, purpose.encode(), hashlib.sha256).digest()

    @property
    def fingerprint(self) -> str:
        return self.derive("fingerprint").hex()[:24]


def secret_file(config: ProfilesConfig) -> Path:
    """Where a store keeps its secret when the environment does not give one."""
    if config.engine == "duckdb":
        return config.path.with_name(config.path.name + ".secret")
    return config.reports_path() / "store.secret"


def store_secret(store: ProfileStore, create: bool = False) -> StoreSecret | None:
    """The store's secret, checked against the fingerprint the store keeps. None when there is
    none yet and `create` is false; made (and its fingerprint saved) when `create` is true."""
    secret = _from_environment() or _from_file(secret_file(store.config))
    saved = _saved_fingerprint(store)
    if secret is None and saved is not None:
        raise StoreSecretError(
            f"the profile store's secret is missing (looked for ${ENV} and {secret_file(store.config)}); "
            "its tombstones cannot be matched without it, so forgotten people could come back",
            hint="restore the file from the backup of the store's folder, or set THREADLINE_STORE_SECRET to it. "
                 "If it is lost for good: delete the rows of tl_tombstones and the 'secret_fingerprint' row of "
                 "tl_meta, then forget each person again from your record of erasure requests")
    if secret is None:
        if not create:
            return None
        secret = _create_file(secret_file(store.config))
    if saved is None:
        store.engine.run([f"DELETE FROM tl_meta WHERE key = {lit(FINGERPRINT_KEY)}",
                          f"INSERT INTO tl_meta VALUES ({lit(FINGERPRINT_KEY)}, {lit(secret.fingerprint)})"])
    elif saved != secret.fingerprint:
        raise StoreSecretError(
            f"the store's secret ({secret.where}) is not the one its tombstones were made with",
            hint=f"use the secret this store was made with (the file {secret_file(store.config)} "
                 f"from its backup, or the ${ENV} it was given)")
    return secret


def _from_environment() -> StoreSecret | None:
    value = os.environ.get(ENV, "")
    if not value:
        return None
    if len(value) < MIN_LENGTH:
        raise ConfigError(f"${ENV} is {len(value)} characters long; a store secret needs at least {MIN_LENGTH}",
                          hint='make one with: python3 -c "import secrets; print(secrets.token_hex(32))"')
    from threadline.secrets import register_secret

    register_secret(value)
    return StoreSecret(value.encode(), f"${ENV}")


def _from_file(path: Path) -> StoreSecret | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if len(text) < MIN_LENGTH:
        raise StoreSecretError(f"the store secret file {path} is damaged (too short)",
                               hint="restore it from the backup of the store's folder")
    return StoreSecret(text.encode(), str(path))


def _create_file(path: Path) -> StoreSecret:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by another process meanwhile: use theirs
        found = _from_file(path)
        assert found is not None
        return found
    with os.fdopen(fd, "w") as out:
        out.write(random.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    found = _from_file(path)
    assert found is not None
    return found


def _saved_fingerprint(store: ProfileStore) -> str | None:
    if not store.engine.table_exists("tl_meta"):
        store.ensure_catalog()
    value = store.engine.scalar(f"SELECT value FROM tl_meta WHERE key = {lit(FINGERPRINT_KEY)}")
    return str(value) if value else None
