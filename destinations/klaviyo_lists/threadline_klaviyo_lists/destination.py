"""The `klaviyo_lists` destination: a profile-store audience as the membership of a Klaviyo list.

Klaviyo's list endpoints take profile ids (`POST` / `DELETE /api/lists/{id}/relationships/profiles`,
at most 1000 a call), so each batch first finds the profiles by address (`GET /api/profiles`
with `filter=any(email,[...])`, 100 addresses a lookup) and then adds or removes them in one
call. A push never creates a profile and never changes consent: an address Klaviyo has no
profile for is reported as rejected. The client, the revision header and the error wording come
from the `klaviyo` source (threadline-klaviyo), so read and write behave alike.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from pydantic import Field
from threadline.activation import prepare_members
from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    AudienceWriter,
    ConfigError,
    FatalError,
    PushMode,
    PushReport,
    PushResult,
    RowRejection,
    Spec,
)
from threadline.http import HttpClient
from threadline.http.source import checking
from threadline_klaviyo.client import BASE_URL_HINT, DEFAULT_REVISION, klaviyo_client

BATCH_LIMIT = 1000  # profiles per add/remove call: Klaviyo's maximum
LOOKUP_LIMIT = 100  # addresses per profile lookup: one page of GET /profiles (page[size] ≤ 100)
PAGE_LIMIT = 100  # list members per page when a mirror reads the list back
NO_EMAIL = "no email address (Klaviyo lists are matched by email here)"
NO_PROFILE = "Klaviyo has no profile with this email (a push never creates profiles)"


class KlaviyoListsConfig(Spec):
    api_key: str = Field(description="A private API key (pk_...) with lists:write and profiles:read; use ${KLAVIYO_API_KEY}.")
    base_url: str = Field("https://a.klaviyo.com/api", description="The API root (the sandbox's URL + /api in tests).")
    revision: str = Field(DEFAULT_REVISION, description="The API revision sent in the `revision` header (YYYY-MM-DD).")
    list_id: str = Field(description="The Klaviyo list the audience's members are put on, as in GET /api/lists.")
    requests_per_second: float | None = Field(
        None, gt=0, description="Cap on requests per second (Klaviyo allows 10/s, 150/min on list membership calls).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(300.0, gt=0, description="Longest a push waits out 429s (Retry-After) and retries "
                                                                "for one request.")


class KlaviyoLists(AudienceDestination[KlaviyoListsConfig]):
    """Audiences as Klaviyo list memberships (see the module docstring)."""

    name = "klaviyo_lists"
    spec = KlaviyoListsConfig
    channel = "email"
    max_batch_rows = BATCH_LIMIT
    min_members = 0  # a list may hold any number of profiles
    modes = (PushMode.DIFF, PushMode.MIRROR)
    applies_each_batch = True  # each add/remove call is applied when it returns (204)
    plain_columns = ("email",)  # profiles are found by address
    ledger_encrypted = ("email",)  # so the push ledger keeps it, encrypted, until the member is removed

    def client(self, config: KlaviyoListsConfig) -> HttpClient:
        return klaviyo_client(config, self.name)  # the source's key, revision, budget and error rules

    def check(self, config: KlaviyoListsConfig) -> None:
        with checking(self.client(config), base_url_hint=BASE_URL_HINT) as client:
            client.request("GET", "/lists", params={"fields[list]": "name"})
            with _missing_list(config, field="list_id"):
                client.request("GET", f"/lists/{config.list_id}", params={"fields[list]": "name"})

    def prepare(self, config: KlaviyoListsConfig, members: pa.Table) -> pa.Table:
        return prepare_members(members, "SELECT member_id, email_norm(email) AS email FROM members")

    def open_audience(self, config: KlaviyoListsConfig, target: AudienceTarget) -> AudienceWriter:
        return KlaviyoListWriter(config, target, self.client(config))


class KlaviyoListWriter(AudienceWriter):
    """One push onto one Klaviyo list."""

    def __init__(self, config: KlaviyoListsConfig, target: AudienceTarget, client: HttpClient) -> None:
        self.config, self.target, self.client = config, target, client
        self.path = f"/lists/{config.list_id}/relationships/profiles"
        self.report = PushReport(details={"list_id": config.list_id})
        self.kept: set[str] = set()  # profile ids this mirror push put on the list

    def add(self, rows: pa.Table) -> PushResult:
        found, result = self._profiles(rows)
        with self._explained():
            self._change("POST", list(found))
        result.accepted = sum(len(members) for members in found.values())
        if self.target.mode is PushMode.MIRROR:
            self.kept.update(found)
        return self._tally(rows, result)

    def remove(self, rows: pa.Table) -> PushResult:
        found, result = self._profiles(rows)
        with self._explained():
            self._change("DELETE", list(found))
        # A member Klaviyo has no profile for is on no list: the removal is done, not pending.
        gone = len(result.rejected)
        if gone:
            self.report.details["removes_without_profile"] = self.report.details.get("removes_without_profile", 0) + gone
        return self._tally(rows, PushResult(accepted=rows.num_rows))

    def finish(self) -> PushReport:
        try:
            with self._explained():
                if self.target.mode is PushMode.MIRROR:
                    self.report.details["mirror_removed"] = self._remove_others()
                listed = _json(self.client.request("GET", f"/lists/{self.config.list_id}",
                                                   params={"additional-fields[list]": "profile_count"}))
            # Klaviyo's own count of the list. Only a mirrored list holds nothing but this audience,
            # so only there is it the platform's match estimate; a list pushed as diffs also holds
            # whoever joined it another way (a sign-up form), and the count would read as a match
            # rate above 100%. Either way the count is in the report's details.
            count = ((listed.get("data") or {}).get("attributes") or {}).get("profile_count")
            self.report.details["list_profiles"] = count
            if self.target.mode is PushMode.MIRROR:
                self.report.match_estimate = count
            return self.report
        finally:
            self.client.close()

    def abort(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ requests

    def _profiles(self, rows: pa.Table) -> tuple[dict[str, list[str]], PushResult]:
        """Profile id → member ids, found by address; members without one are rejected."""
        ids = rows.column("member_id").to_pylist()
        emails = rows.column("email").to_pylist()
        result = PushResult(rejected=[RowRejection(m, NO_EMAIL) for m, e in zip(ids, emails) if not e])
        by_email: dict[str, list[str]] = defaultdict(list)
        for member_id, email in zip(ids, emails):
            if email:
                by_email[email].append(member_id)
        addresses = list(by_email)
        found: dict[str, list[str]] = defaultdict(list)
        with self._explained():
            for start in range(0, len(addresses), LOOKUP_LIMIT):
                chunk = addresses[start:start + LOOKUP_LIMIT]
                for profile_id, email in self._lookup(chunk):
                    found[profile_id] += by_email.pop(email, [])
        result.rejected += [RowRejection(m, NO_PROFILE) for members in by_email.values() for m in members]
        return found, result

    def _lookup(self, emails: list[str]) -> Iterator[tuple[str, str]]:
        params: dict[str, Any] | None = {"filter": f"any(email,{json.dumps(emails)})", "page[size]": LOOKUP_LIMIT,
                                         "fields[profile]": "email"}
        url = "/profiles"
        while url:
            page = _json(self.client.request("GET", url, params=params))
            for profile in page.get("data") or []:
                email = str((profile.get("attributes") or {}).get("email") or "").strip().lower()
                if email:
                    yield profile["id"], email
            url, params = (page.get("links") or {}).get("next"), None  # the next link carries the query

    def _change(self, method: str, profile_ids: list[str]) -> None:
        for start in range(0, len(profile_ids), BATCH_LIMIT):
            chunk = profile_ids[start:start + BATCH_LIMIT]
            self.client.request(method, self.path, json={"data": [{"type": "profile", "id": p} for p in chunk]},
                                headers={"Content-Type": "application/vnd.api+json"})

    def _remove_others(self) -> int:
        """Mirror: take off the list every profile this push did not put on it."""
        others: list[str] = []
        url: str | None = self.path
        params: dict[str, Any] | None = {"page[size]": PAGE_LIMIT}
        while url:
            page = _json(self.client.request("GET", url, params=params))
            others += [p["id"] for p in page.get("data") or [] if p.get("id") not in self.kept]
            url, params = (page.get("links") or {}).get("next"), None
        self._change("DELETE", others)
        return len(others)

    def _tally(self, rows: pa.Table, result: PushResult) -> PushResult:
        self.report.sent += rows.num_rows
        self.report.accepted += result.accepted
        self.report.rejected += len(result.rejected)
        return result

    @contextmanager
    def _explained(self) -> Iterator[None]:
        with _missing_list(self.config):
            yield


def _json(response: Any) -> dict[str, Any]:
    if response is None or not response.content:
        return {}
    body = response.json()
    return body if isinstance(body, dict) else {}


@contextmanager
def _missing_list(config: KlaviyoListsConfig, field: str = "") -> Iterator[None]:
    """A 404 under /lists/{id} is a deleted list: say which, and on which field."""
    try:
        yield
    except FatalError as exc:
        if exc.status != 404:
            raise
        message = (f"list {config.list_id!r} was not found — Klaviyo answered 404; it was deleted or the id is wrong. "
                   f"Request: {exc.message}")
        hint = "check the list id in Klaviyo (Lists & Segments → the list → Settings shows its id)"
        if field:
            raise ConfigError(message, field=field, where=exc.where, hint=hint) from None
        raise FatalError(message, where=exc.where, hint=hint) from None
