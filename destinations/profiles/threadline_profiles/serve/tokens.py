"""API tokens for `threadline serve`: printed once when made, kept as a SHA-256 hash, revocable.

A token reads `tlk_<id>_<secret>`: the id (8 hex digits) names it in the audit log and in
`token revoke`; the secret is 32 random bytes. The store keeps only SHA-256 of the whole
token, so a copy of the store lets nobody call the API. A plain hash is enough here (unlike
the identifiers, which are keyed): 256 random bits cannot be guessed by hashing candidates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from threadline.contracts import ConfigError

from threadline_profiles.engines.base import lit

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

TABLE = "tl_api_tokens"
TABLES = [f"CREATE TABLE IF NOT EXISTS {TABLE} (token_id VARCHAR, name VARCHAR, role VARCHAR, token_hash VARCHAR, "
          "created_at VARCHAR, created_by VARCHAR, revoked_at VARCHAR)"]
ROLES = ("support", "marketer", "admin")
_TOKEN = re.compile(r"tlk_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class ApiToken:
    token_id: str
    name: str
    role: str
    created_at: str
    created_by: str
    revoked_at: str | None

    @property
    def who(self) -> str:
        """How the audit log names the caller."""
        return f"tok_{self.token_id}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def create_token(store: ProfileStore, role: str, name: str, created_by: str) -> tuple[ApiToken, str]:
    """A new token: its record, and the token itself (shown once, never stored)."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}", hint=f"one of {', '.join(ROLES)}")
    name = name.strip()
    if not re.fullmatch(r"[\w .@-]{1,64}", name):
        raise ConfigError("a token's name is 1 to 64 letters, digits, spaces or . _ - @",
                          hint="name it after who uses it: --name 'support desk'")
    store.engine.run(TABLES)
    token_id = secrets.token_hex(4)
    token = f"tlk_{token_id}_{secrets.token_urlsafe(32)}"
    record = ApiToken(token_id, name, role, _now(), created_by, None)
    with store.lock:
        store.engine.execute(f"INSERT INTO {TABLE} VALUES ({lit(token_id)}, {lit(name)}, {lit(role)}, {lit(_hash(token))}, "
                             f"{lit(record.created_at)}, {lit(created_by)}, NULL)")
    return record, token


def revoke_token(store: ProfileStore, token_id: str) -> ApiToken | None:
    """Revoke a token (by id, `tok_` optional); None when there is no such token."""
    store.engine.run(TABLES)
    token_id = token_id.removeprefix("tok_")
    found = [t for t in list_tokens(store) if t.token_id == token_id]
    if not found:
        return None
    with store.lock:
        store.engine.execute(f"UPDATE {TABLE} SET revoked_at = {lit(_now())} WHERE token_id = {lit(token_id)} "
                             "AND revoked_at IS NULL")
    return list_tokens_by_id(store, token_id)


def list_tokens(store: ProfileStore) -> list[ApiToken]:
    store.engine.run(TABLES)
    rows = store.engine.rows(f"SELECT token_id, name, role, created_at, created_by, revoked_at FROM {TABLE} ORDER BY created_at")
    return [ApiToken(**r) for r in rows]


def list_tokens_by_id(store: ProfileStore, token_id: str) -> ApiToken | None:
    return next((t for t in list_tokens(store) if t.token_id == token_id), None)


def authenticate(store: ProfileStore, presented: str) -> ApiToken | None:
    """The live token `presented` is, or None (malformed, unknown, revoked or wrong secret:
    the caller is told none of these apart)."""
    match = _TOKEN.fullmatch(presented)
    if not match:
        return None
    with store.lock:
        rows = store.engine.rows(f"SELECT token_id, name, role, created_at, created_by, revoked_at, token_hash FROM {TABLE} "
                                 f"WHERE token_id = {lit(match.group(1))}")
    if len(rows) != 1 or rows[0]["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(rows[0].pop("token_hash"), _hash(presented)):
        return None
    return ApiToken(**rows[0])
