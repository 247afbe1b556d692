"""A generic paginated JSON API of customers: the sandbox behind the declarative `rest` source.

    GET  /customers     the customers, sorted by (updated_at, id), filtered by
                        `updated_since` (inclusive, ISO 8601). One endpoint speaks every
                        common pagination style at once, so each paginator can be tried:
                          offset/limit          ?offset=0&limit=100
                          page number           ?page=1&per_page=100
                          cursor                ?cursor=<next_cursor from the body or header>
                        The body is {"data": [...], "total", "offset", "page", "total_pages",
                        "next_cursor", "next"}; the headers carry `Link: <...>; rel="next"` and
                        `X-Next-Cursor`. Pages are capped at `max_page_size` records.
    POST /oauth/token   OAuth2 client credentials or refresh token → a bearer token that
                        expires after `token_ttl` seconds.

Every data request must authenticate with one of: `Authorization: Bearer <token>`, an
`X-API-Key` header, an `api_key` query parameter, or HTTP basic `user:password`
(the values are the class constants below). `revoke_credentials()` makes them all fail.

The data is deterministic from the seed and can change between syncs, from Python
(`add_customers`, `update_customers`, `delete_customers`) or over HTTP
(POST /_sandbox/customers {"add": 3, "update": [1, 2], "delete": [5]}). Every change moves
the sandbox clock forward, so changed records get a newer `updated_at`. Seeded records share
`updated_at` values in groups of three: cursor boundaries land on ties, as in real APIs.
"""

from __future__ import annotations

import base64
import bisect
import json
import random
import secrets as _random_tokens
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode

from threadline.sandbox.server import Reply, Sandbox, SandboxError, SandboxRequest, route

_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
_FIRST = ["ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken", "margaret", "linus"]
_LAST = ["lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "allen", "thompson", "hamilton"]
_CITIES = [("London", "N1 9GU"), ("Paris", "75011"), ("Berlin", "10115"), ("Lisbon", "1100-148")]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class CustomersSandbox(Sandbox):
    """Seeded customers behind a paginated, authenticated JSON API (see the module docstring)."""

    name = "rest"

    TOKEN = "sandbox-token-0123456789"
    API_KEY = "sandbox-key-0123456789"
    USERNAME = "sandbox-user"
    PASSWORD = "sandbox-password-0123"
    CLIENT_ID = "sandbox-client"
    CLIENT_SECRET = "sandbox-client-secret-0123"
    REFRESH_TOKEN = "sandbox-refresh-0123456789"

    def __init__(
        self, *, seed: int = 0, count: int = 250, max_page_size: int = 1000,
        token_ttl: float = 3600, port: int = 0,
    ) -> None:
        self.count = count
        self.max_page_size = max_page_size
        self.token_ttl = token_ttl
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._by_id: dict[int, dict[str, Any]] = {}
        for i in range(1, self.count + 1):
            self._by_id[i] = self._make_customer(rng, i, _EPOCH + timedelta(minutes=(i - 1) // 3))
        self._clock = _EPOCH + timedelta(minutes=self.count // 3 + 1)
        self._rng = rng
        self._issued: dict[str, float] = {}  # access token → expiry (time.time())
        self._revoked = False
        self._reindex()

    def _make_customer(self, rng: random.Random, cid: int, updated: datetime) -> dict[str, Any]:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, postcode = rng.choice(_CITIES)
        return {
            "id": cid,
            "email": f"{first}.{last}{cid}@example.com",
            "first_name": first.title(),
            "last_name": last.title(),
            "phone": f"+4420{rng.randrange(10**7, 10**8)}",
            "lifetime_value": f"{rng.randrange(0, 10**6) / 100:.2f}",
            "address": {"city": city, "postcode": postcode},
            "tags": rng.sample(["vip", "newsletter", "churn-risk", "wholesale"], k=rng.randrange(0, 3)),
            "updated_at": _iso(updated),
        }

    def _reindex(self) -> None:
        """Keep customers sorted by (updated_at, id), with a parallel key list for bisect."""
        self._sorted = sorted(self._by_id.values(), key=lambda c: (c["updated_at"], c["id"]))
        self._keys = [c["updated_at"] for c in self._sorted]
        self._pages: dict[str, tuple[bytes, dict[str, str]]] = {}  # serialised pages, by query

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return _iso(self._clock)

    @property
    def customers(self) -> list[dict[str, Any]]:
        """Every customer now, sorted by (updated_at, id): what a full sync should return."""
        with self._lock:
            return [dict(c) for c in self._sorted]

    def add_customers(self, n: int) -> list[dict[str, Any]]:
        """Add `n` new customers (stamped with a new updated_at); returns them."""
        with self._lock:
            stamp = self._tick()
            start = max(self._by_id, default=0) + 1
            added = [self._make_customer(self._rng, cid, self._clock) for cid in range(start, start + n)]
            for customer in added:
                customer["updated_at"] = stamp
                self._by_id[customer["id"]] = customer
            self._reindex()
            return [dict(c) for c in added]

    def update_customers(self, ids: list[int]) -> list[dict[str, Any]]:
        """Change the email of customers `ids` and bump their updated_at; returns them."""
        with self._lock:
            stamp = self._tick()
            for cid in ids:
                customer = self._by_id.get(cid)
                if customer is None:
                    raise SandboxError(404, f"no customer {cid}")
                customer["email"] = f"updated.{cid}.{stamp[11:19].replace(':', '')}@example.com"
                customer["updated_at"] = stamp
            self._reindex()
            return [dict(self._by_id[cid]) for cid in ids]

    def delete_customers(self, ids: list[int]) -> list[int]:
        """Delete customers `ids` for good (an incremental sync cannot see this, as in most APIs)."""
        with self._lock:
            for cid in ids:
                self._by_id.pop(cid, None)
            self._reindex()
            return list(ids)

    def revoke_credentials(self) -> None:
        """From now on every credential is refused with 401 (a revoked key)."""
        with self._lock:
            self._revoked = True

    def control_customers(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "added": self.add_customers(int(body.get("add", 0))) if body.get("add") else [],
            "updated": self.update_customers(list(body.get("update", []))),
            "deleted": self.delete_customers(list(body.get("delete", []))),
        }

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    def secrets(self) -> list[str]:
        return [self.TOKEN, self.API_KEY, self.PASSWORD, self.CLIENT_SECRET, self.REFRESH_TOKEN, *self._issued]

    # ------------------------------------------------------------------ auth

    def _authenticate(self, req: SandboxRequest) -> None:
        if self._revoked:
            raise SandboxError(401, "credentials revoked", {"WWW-Authenticate": "Bearer"})
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer "):]
            if token == self.TOKEN:
                return
            expiry = self._issued.get(token)
            if expiry is not None and expiry > time.time():
                return
            raise SandboxError(401, "invalid or expired token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (user, password) == (self.USERNAME, self.PASSWORD):
                return
            raise SandboxError(401, "wrong username or password", {"WWW-Authenticate": "Basic"})
        if self.API_KEY in (req.headers.get("x-api-key"), req.param("api_key")):
            return
        raise SandboxError(401, "no credentials: send a bearer token, an API key or basic auth")

    @route("POST", "/oauth/token")
    def token(self, req: SandboxRequest) -> Reply:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        auth = req.headers.get("authorization", "")
        if auth.startswith("Basic "):
            form["client_id"], _, form["client_secret"] = base64.b64decode(auth[6:]).decode().partition(":")
        grant = form.get("grant_type")
        if self._revoked:
            return Reply.json({"error": "invalid_client"}, 401)
        if grant == "client_credentials":
            if (form.get("client_id"), form.get("client_secret")) != (self.CLIENT_ID, self.CLIENT_SECRET):
                return Reply.json({"error": "invalid_client"}, 401)
        elif grant == "refresh_token":
            if form.get("refresh_token") != self.REFRESH_TOKEN:
                return Reply.json({"error": "invalid_grant"}, 400)
        else:
            return Reply.json({"error": "unsupported_grant_type"}, 400)
        access = "issued-" + _random_tokens.token_hex(12)
        with self._lock:
            self._issued[access] = time.time() + self.token_ttl
        return Reply.json({
            "access_token": access, "token_type": "bearer", "expires_in": self.token_ttl,
            "refresh_token": self.REFRESH_TOKEN,
        })

    # ------------------------------------------------------------------ the data endpoint

    @route("GET", "/customers")
    def list_customers(self, req: SandboxRequest) -> Reply:
        self._authenticate(req)
        query = sorted((k, v[0]) for k, v in req.query.items() if k != "api_key")
        cache_key = urlencode(query)
        with self._lock:
            cached = self._pages.get(cache_key)
            if cached is None:
                body, headers = self._page(req)
                cached = self._pages[cache_key] = (json.dumps(body, separators=(",", ":")).encode(), headers)
        return Reply.raw_json(cached[0], headers=dict(cached[1]))

    def _page(self, req: SandboxRequest) -> tuple[dict[str, Any], dict[str, str]]:
        since = req.param("updated_since")
        start = bisect.bisect_left(self._keys, since) if since else 0
        rows = self._sorted[start:]
        page_style = "page" in req.query or "per_page" in req.query
        if page_style:
            size = min(req.int_param("per_page", 100), self.max_page_size)
            page = req.int_param("page", 1)
            offset = (page - 1) * size
        else:
            size = min(req.int_param("limit", 100), self.max_page_size)
            cursor = req.param("cursor")
            offset = _decode_cursor(cursor) if cursor else req.int_param("offset", 0)
            page = offset // size + 1 if size else 1
        if size < 1 or offset < 0:
            raise SandboxError(400, "page size must be >= 1 and offset >= 0")
        data = rows[offset:offset + size]
        more = offset + size < len(rows)
        next_cursor = _encode_cursor(offset + size) if more else None
        next_url = None
        if more:
            params = {k: v[0] for k, v in req.query.items() if k not in ("offset", "page", "cursor", "api_key")}
            if page_style:
                params["page"] = str(page + 1)
            elif "cursor" in req.query:
                params["cursor"] = next_cursor
            else:
                params["offset"] = str(offset + size)
            next_url = f"{req.base_url}{req.path}?{urlencode(params)}"
        headers = {"X-Total-Count": str(len(rows))}
        if next_url:
            headers["Link"] = f'<{next_url}>; rel="next"'
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        body = {
            "data": data, "total": len(rows), "offset": offset, "page": page,
            "total_pages": -(-len(rows) // size), "next_cursor": next_cursor, "next": next_url,
        }
        return body, headers


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("o:"))
    except ValueError:
        raise SandboxError(400, f"invalid cursor {cursor!r}") from None
