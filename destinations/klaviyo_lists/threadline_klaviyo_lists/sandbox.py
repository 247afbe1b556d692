"""The Klaviyo sandbox of `threadline-klaviyo`, with the list writes that audiences use
(`threadline sandbox klaviyo_lists`). Everything the read side serves is still served, so one
sandbox feeds the `klaviyo` source and takes the `klaviyo_lists` pushes.

Added, as Klaviyo documents it (JSON:API, `revision` header, `Klaviyo-API-Key` auth; profile
lookups by `any(email,[...])` / `equals(email,...)` are the read side's filters):

    POST   /api/lists/{id}/relationships/profiles    {"data": [{"type": "profile", "id": ...}, ...]}  → 204
    DELETE /api/lists/{id}/relationships/profiles    same body                                        → 204

Enforced:
- "This endpoint accepts a maximum of 1000 profiles per call" (Add Profile To List, Remove
  Profile From List): more is a 400 JSON:API error pointing at /data (the wording is this
  sandbox's);
- every item is `{"type": "profile", "id": <an existing profile>}`: otherwise 400 pointing at
  `/data/<i>/type` or `/data/<i>/id`;
- a list that does not exist answers 404 `not_found`;
- `throttle(n, retry_after)`: the next n requests answer Klaviyo's 429 `throttled` with a
  `Retry-After` header (and without the RateLimit-* headers, as Klaviyo documents for 429s);
  the base's `rate_limit=(calls, seconds)` still throttles by window.

`contacts` (constructor) adds profiles with these addresses (on no list), so tests and demos
push people Klaviyo already holds; `delete_profile(email)` removes one. Besides the three
seeded lists there is an empty one, `AUDIENCE_LIST_ID` ("Audience sync").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from threadline.sandbox import Reply, SandboxError, SandboxRequest
from threadline_klaviyo.sandbox import KlaviyoSandbox, errors, iso

RELATIONSHIP_LIMIT = 1000


class KlaviyoListsSandbox(KlaviyoSandbox):
    """The Klaviyo sandbox plus list membership writes (see the module docstring)."""

    name = "klaviyo_lists"
    AUDIENCE_LIST_ID = "Tq7AuD"

    def __init__(self, *, seed: int = 0, port: int = 0, people: int = 1500, contacts: Iterable[str] = (),
                 rate_limit: tuple[int, float] | None = None) -> None:
        self.contacts = [c.strip().lower() for c in contacts]
        self._throttled: tuple[int, int] = (0, 1)
        super().__init__(seed=seed, port=port, people=people, rate_limit=rate_limit)

    # ------------------------------------------------------------------ data

    @property
    def newsletter(self) -> str:
        return self.list_ids[0]

    def seed_data(self) -> None:
        super().seed_data()
        self._throttled = (0, 1)
        self._lists[self.AUDIENCE_LIST_ID] = {"type": "list", "id": self.AUDIENCE_LIST_ID, "attributes": {
            "name": "Audience sync", "created": iso(self._clock), "updated": iso(self._clock),
            "opt_in_process": "single_opt_in"}}
        self._members[self.AUDIENCE_LIST_ID] = {}
        when = self._tick()
        for number, email in enumerate(self.contacts, start=1):
            self._make_profile(self._rng, 100_000 + number, email, None, "Contact", "Person", when)

    def _by_email(self) -> dict[str, str]:
        return {str(p["attributes"]["email"]).lower(): pid for pid, p in self._profiles.items() if p["attributes"]["email"]}

    # ------------------------------------------------------------------ what tests use

    def list_emails(self, list_id: str) -> set[str]:
        """Addresses (lower-case) of every profile on a list that has one."""
        with self._lock:
            return {str(self._profiles[pid]["attributes"]["email"]).lower() for pid in self._members[list_id]
                    if self._profiles[pid]["attributes"]["email"]}

    def profile_id(self, email: str) -> str | None:
        with self._lock:
            return self._by_email().get(email.strip().lower())

    def delete_profile(self, email: str) -> None:
        """The profile is deleted in Klaviyo (a data-privacy request, say): lookups no longer find it."""
        with self._lock:
            self._cache.clear()
            pid = self._by_email().get(email.strip().lower())
            if pid is not None:
                self._profiles.pop(pid)
                self._by_updated = None
                for members in self._members.values():
                    members.pop(pid, None)

    def throttle(self, times: int, retry_after: int = 1) -> None:
        """The next `times` requests answer 429 `throttled` with `Retry-After: retry_after`."""
        with self._lock:
            self._throttled = (times, retry_after)

    def control_throttle(self, body: dict[str, Any]) -> dict[str, Any]:
        self.throttle(int(body.get("times", 1)), int(body.get("retry_after", 1)))
        return {"throttled": self._throttled[0]}

    # ------------------------------------------------------------------ the API

    _WRITE_ROUTES: ClassVar[list[tuple[str, re.Pattern[str], str]]] = [
        ("POST", re.compile(r"^/api/lists/([^/]+)/relationships/profiles/?$"), "_add_to_list"),
        ("DELETE", re.compile(r"^/api/lists/([^/]+)/relationships/profiles/?$"), "_remove_from_list"),
    ]

    def _dispatch(self, req: SandboxRequest) -> Reply:
        with self._lock:
            times, wait = self._throttled
            if times > 0:
                self._throttled = (times - 1, wait)
                reply = errors(429, "throttled", "Request was throttled.",
                               f"Request was throttled. Expected available in {wait} second{'s' if wait != 1 else ''}.")
                reply.headers["Retry-After"] = str(wait)
                return reply
        handler, groups = self._write_route(req)
        if handler is None:
            return super()._dispatch(req)
        refused = self._authenticate(req) or self._throttle()
        if refused is not None:
            return refused
        try:
            with self._lock:
                return handler(req, *groups)
        except SandboxError as exc:
            return errors(exc.status, "invalid", "Invalid input.", exc.error, getattr(exc, "pointer", "/data"))

    def _write_route(self, req: SandboxRequest) -> tuple[Any, tuple[str, ...]]:
        for method, pattern, name in self._WRITE_ROUTES:
            match = pattern.match(req.path)
            if match and req.method == method:
                return getattr(self, name), match.groups()
        return None, ()

    def _missing_list(self, list_id: str) -> Reply | None:
        if list_id not in self._lists:
            return errors(404, "not_found", "Not found.", f"A list with id {list_id} does not exist.")
        return None

    def _members_body(self, req: SandboxRequest) -> list[str]:
        body = req.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            raise SandboxError(400, "'data' must be a non-empty array of profile identifiers.")
        if len(data) > RELATIONSHIP_LIMIT:
            raise SandboxError(400, f"At most {RELATIONSHIP_LIMIT} profiles may be given per request; got {len(data)}.")
        ids = []
        for i, item in enumerate(data):
            if not isinstance(item, dict) or item.get("type") != "profile":
                raise _PointedError(f"/data/{i}/type", "The type of each item must be 'profile'.")
            if item.get("id") not in self._profiles:
                raise _PointedError(f"/data/{i}/id", f"Profile {item.get('id')!r} does not exist.")
            ids.append(item["id"])
        return ids

    def _add_to_list(self, req: SandboxRequest, list_id: str) -> Reply:
        missing = self._missing_list(list_id)
        if missing is not None:
            return missing
        when = iso(self._tick())
        for pid in self._members_body(req):
            self._members[list_id].setdefault(pid, when)
        self._cache.clear()
        return Reply(204, b"", {})

    def _remove_from_list(self, req: SandboxRequest, list_id: str) -> Reply:
        missing = self._missing_list(list_id)
        if missing is not None:
            return missing
        for pid in self._members_body(req):
            self._members[list_id].pop(pid, None)
        self._cache.clear()
        return Reply(204, b"", {})


class _PointedError(SandboxError):
    """A 400 about one item of the body: JSON:API's `source.pointer` says which."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(400, detail)
        self.pointer = pointer
