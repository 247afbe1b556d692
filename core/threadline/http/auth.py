"""Authentication: bearer token, API key (header or query), basic, OAuth2 client credentials
and refresh token. Every credential is registered as a secret the moment it is known, so it
is masked in logs, errors and request dumps.

An `Auth` is a `requests` auth object (it signs each `requests.PreparedRequest` the transport sends) that may also `refresh()`:
the client calls `refresh()` once after a 401 and retries; a second 401 is a config error.
OAuth flows also refresh on their own shortly before the token expires.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from threadline.contracts import ConfigError
from threadline.http.transport import Transport, with_query
from threadline.secrets import redact, register_secret


class Auth(AuthBase):
    """Base of the auth schemes. `field` is the config field named in errors."""

    field: str = "auth"

    @property
    def can_refresh(self) -> bool:
        return False

    def refresh(self, session: Transport, timeout: Any) -> None:
        """Get fresh credentials (OAuth); the default has nothing to refresh."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class NoAuth(Auth):
    """For public APIs."""


class BearerAuth(Auth):
    """`Authorization: Bearer <token>` (a static token)."""

    def __init__(self, token: str, field: str = "auth.token") -> None:
        register_secret(token)
        self.token, self.field = token, field

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class ApiKeyAuth(Auth):
    """An API key in a header (`X-API-Key: <key>`) or a query parameter (`?api_key=<key>`)."""

    def __init__(self, key: str, name: str = "X-API-Key", location: str = "header", field: str = "auth.key") -> None:
        if location not in ("header", "query"):
            raise ConfigError(f"API key location must be 'header' or 'query', not {location!r}", field="auth.location")
        register_secret(key)
        self.key, self.name, self.location, self.field = key, name, location, field

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.location == "header":
            r.headers[self.name] = self.key
        else:
            r.url = with_query(r.url or "", {self.name: self.key})
        return r


class BasicAuth(Auth):
    """HTTP basic auth."""

    def __init__(self, username: str, password: str, field: str = "auth.password") -> None:
        register_secret(password)
        self._basic = HTTPBasicAuth(username, password)
        self.field = field
        # The encoded header carries the password too: mask it as well.
        register_secret(requests.auth._basic_auth_str(username, password).split(" ", 1)[1])

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return self._basic(r)


class OAuth2Auth(Auth):
    """OAuth2 token flows: client credentials, or a refresh token (with client id/secret if the
    server wants them). The access token is fetched on first use, refreshed `leeway` seconds
    before it expires, and once after a 401."""

    def __init__(
        self, token_url: str, *, client_id: str = "", client_secret: str = "", refresh_token: str = "",
        scope: str = "", leeway: float = 30.0, field: str = "auth",
    ) -> None:
        for secret in (client_secret, refresh_token):
            register_secret(secret)
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.refresh_token, self.scope, self.leeway, self.field = refresh_token, scope, leeway, field
        self.access_token = ""
        self.expires_at = 0.0
        self.refreshes = 0  # how many tokens were fetched (tests and progress output read it)
        self._lock = threading.Lock()
        self._session: Transport | None = None
        self._timeout: Any = (10, 30)

    @property
    def grant_type(self) -> str:
        return "refresh_token" if self.refresh_token else "client_credentials"

    @property
    def can_refresh(self) -> bool:
        return True

    def bind(self, session: Transport, timeout: Any) -> None:
        """The client hands over its session and timeouts for token requests."""
        self._session, self._timeout = session, timeout

    def refresh(self, session: Transport | None = None, timeout: Any = None) -> None:
        session = session or self._session or Transport()
        data = {"grant_type": self.grant_type}
        if self.refresh_token:
            data["refresh_token"] = self.refresh_token
        if self.scope:
            data["scope"] = self.scope
        auth = (self.client_id, self.client_secret) if self.client_id else None
        try:
            response = session.post(self.token_url, data=data, auth=auth, timeout=timeout or self._timeout)
        except requests.RequestException as exc:
            raise ConfigError(
                f"could not reach the OAuth token URL {redact(self.token_url)}: {redact(exc)}",
                field=f"{self.field}.token_url", hint="check the token URL and that the server is reachable",
            ) from None
        if response.status_code != 200:
            raise ConfigError(
                f"the OAuth token request ({self.grant_type}) was refused with {response.status_code}: "
                f"{redact(response.text[:200])}",
                field=self.field, hint="check the client id, client secret and refresh token",
            )
        body = response.json()
        token = body.get("access_token")
        if not token:
            raise ConfigError("the OAuth token response has no access_token", field=f"{self.field}.token_url")
        register_secret(token)
        if body.get("refresh_token"):
            register_secret(body["refresh_token"])
            if self.refresh_token:
                self.refresh_token = body["refresh_token"]  # rotating refresh tokens
        self.access_token = token
        self.expires_at = time.time() + float(body.get("expires_in") or 3600)
        self.refreshes += 1

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            if not self.access_token or time.time() >= self.expires_at - self.leeway:
                self.refresh()
        r.headers["Authorization"] = f"Bearer {self.access_token}"
        return r
