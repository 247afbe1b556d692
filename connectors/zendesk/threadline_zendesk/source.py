"""The `zendesk` source: users, tickets and satisfaction ratings from Zendesk Support.

- Users and tickets come from the cursor-based incremental exports
  (`/api/v2/incremental/{users,tickets}/cursor.json`): the first request sends `start_time`,
  every later one the `after_cursor` of the page before, until `end_of_stream`. The export's
  cursor is the resumption point Zendesk recommends keeping, so every checkpoint stores it
  (`after_cursor`): a killed sync resumes after the last committed page, and the next
  incremental sync asks for exactly what changed since. Without a stored cursor (first sync,
  or a full refresh) the read starts at `start_time` = the engine's cursor or `start_date`.
- Satisfaction ratings come from their list endpoint (cursor pagination, `page[after]`),
  filtered by `start_time` on `updated_at`; they come in id order, not cursor order, so the
  engine saves their cursor only when the stream ends.
- An interrupted full refresh of users or tickets resumes from its last `after_cursor` too.
- User identities (every email and phone of a user, not just the primary ones) are read for
  the users of each export page, 100 at a time (`users/show_many` with identities sideloaded).
- Deleted users arrive with `active = false`, deleted tickets with `status = "deleted"`.
- Nested and custom fields (`user_fields`, `custom_fields`, `via`) are JSON columns, and
  whatever top-level field Zendesk adds is kept in `extra` (JSON), never dropped. A record
  whose `tags` is not a list goes to quarantine (Rejected), other ill-typed values are handed
  to the engine as text so it quarantines just those rows, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import requests
from pydantic import Field, model_validator
from threadline.contracts import (
    Batch,
    Catalog,
    Checkpoint,
    ConfigError,
    FatalError,
    Message,
    ReadRequest,
    Rejected,
    Source,
    Spec,
    Stream,
    SyncMode,
)
from threadline.http.source import checking
from threadline.http import (
    BasicAuth,
    BearerAuth,
    HttpClient,
    RequestBudget,
    RetryPolicy,
    schema_from_mapping,
)
from threadline.http.actions import MalformedJson
from threadline.http.client import expect_json_response
from threadline.http.schema import is_json_field

AFTER_CURSOR = "after_cursor"  # state key: the export cursor after the last committed page

USERS_SCHEMA = schema_from_mapping({
    "id": "int64", "name": "string", "email": "string", "phone": "string", "shared_phone_number": "bool",
    "external_id": "string", "alias": "string", "role": "string", "organization_id": "int64", "locale": "string",
    "time_zone": "string", "iana_time_zone": "string", "active": "bool", "verified": "bool", "suspended": "bool",
    "tags": "list<string>", "user_fields": "json", "details": "string", "notes": "string",
    "created_at": "timestamp", "updated_at": "timestamp", "last_login_at": "timestamp", "url": "string", "extra": "json",
})
TICKETS_SCHEMA = schema_from_mapping({
    "id": "int64", "external_id": "string", "type": "string", "subject": "string", "description": "string",
    "priority": "string", "status": "string", "recipient": "string", "requester_id": "int64", "submitter_id": "int64",
    "assignee_id": "int64", "organization_id": "int64", "group_id": "int64", "brand_id": "int64",
    "collaborator_ids": "list<int64>", "follower_ids": "list<int64>", "has_incidents": "bool", "is_public": "bool",
    "due_at": "timestamp", "tags": "list<string>", "custom_fields": "json", "via": "json", "satisfaction_rating": "json",
    "created_at": "timestamp", "updated_at": "timestamp", "generated_timestamp": "int64", "url": "string", "extra": "json",
})
RATINGS_SCHEMA = schema_from_mapping({
    "id": "int64", "ticket_id": "int64", "requester_id": "int64", "assignee_id": "int64", "group_id": "int64",
    "score": "string", "comment": "string", "reason": "string", "reason_id": "int64",
    "created_at": "timestamp", "updated_at": "timestamp", "url": "string", "extra": "json",
})
IDENTITIES_SCHEMA = schema_from_mapping({
    "id": "int64", "user_id": "int64", "type": "string", "value": "string", "primary": "bool", "verified": "bool",
    "created_at": "timestamp", "updated_at": "timestamp", "url": "string", "extra": "json",
})
SHOW_MANY_PATH = "/api/v2/users/show_many.json"
EXPORTS = {"users": "/api/v2/incremental/users/cursor.json", "tickets": "/api/v2/incremental/tickets/cursor.json"}
RATINGS_PATH = "/api/v2/satisfaction_ratings"


class ZendeskConfig(Spec):
    base_url: str = Field(description="Your Zendesk, e.g. https://acme.zendesk.com (the sandbox's URL in tests).")
    email: str | None = Field(None, description="The admin's email, for API token auth (sent as `{email}/token`).")
    api_token: str | None = Field(None, description="An API token (Admin Center → Apps and integrations → Zendesk API); "
                                                    "use ${ZENDESK_API_TOKEN}. With `email`.")
    oauth_token: str | None = Field(None, description="An OAuth access token with the `read` scope, instead of email "
                                                      "and api_token; use ${ZENDESK_OAUTH_TOKEN}.")
    start_date: datetime = Field(datetime(2000, 1, 1, tzinfo=UTC),
                                 description="Where the first sync starts (ISO 8601); later syncs resume from their cursor.")
    per_page: int = Field(1000, ge=1, le=1000, description="Users or tickets per export page (Zendesk allows 1 to 1000).")
    ratings_page_size: int = Field(100, ge=1, le=100, description="Satisfaction ratings per page (1 to 100).")
    exclude_deleted: bool = Field(False, description="Leave deleted tickets out of the ticket export.")
    requests_per_minute: int | None = Field(
        10, ge=1, description="Request budget per minute: Zendesk allows 10 export requests a minute (30 with the "
                              "High Volume add-on); null for none.")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_retry_time: float = Field(300.0, gt=0, description="Longest one request is retried or waits out 429s before "
                                                           "the stream stops with its state saved.")

    @model_validator(mode="after")
    def _one_credential(self) -> ZendeskConfig:
        if not self.oauth_token and not (self.email and self.api_token):
            raise ValueError("give either email and api_token (API token auth) or oauth_token (OAuth)")
        return self


class ZendeskSource(Source[ZendeskConfig]):
    """Users, tickets and satisfaction ratings from Zendesk Support."""

    name = "zendesk"
    spec = ZendeskConfig

    def client(self, config: ZendeskConfig) -> HttpClient:
        if config.oauth_token:
            auth: Any = BearerAuth(config.oauth_token, field="oauth_token")
        else:
            auth = BasicAuth(f"{config.email}/token", config.api_token or "", field="api_token")
        budget = RequestBudget(config.requests_per_minute, 60.0) if config.requests_per_minute else None
        return HttpClient(config.base_url, auth=auth, connector=self.name, budget=budget,
                          retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_retry_time))

    def discover(self, config: ZendeskConfig) -> Catalog:
        both = (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
        return Catalog((
            Stream("users", USERS_SCHEMA, ("id",), "updated_at", True, both,
                   "End users and agents; deleted users have active = false."),
            Stream("tickets", TICKETS_SCHEMA, ("id",), "updated_at", True, both,
                   "Tickets; deleted tickets have status = 'deleted'."),
            Stream("satisfaction_ratings", RATINGS_SCHEMA, ("id",), "updated_at", False, both,
                   "CSAT ratings of solved tickets (good, bad, offered)."),
            Stream("user_identities", IDENTITIES_SCHEMA, ("id",), "updated_at", False, both,
                   "Every email and phone of each user (the primary one and the others), for users changed "
                   "since the cursor."),
        ))

    def check(self, config: ZendeskConfig) -> None:
        start = _epoch(config.start_date)
        with checking(self.client(config)) as client, _explained(config):
            for path in EXPORTS.values():
                client.request("GET", path, params={"start_time": start, "per_page": 1}, stream="check", parse=_json)
            client.request("GET", RATINGS_PATH, params={"page[size]": 1}, stream="check", parse=_json)

    def read(self, config: ZendeskConfig, request: ReadRequest) -> Iterator[Message]:
        name = request.stream.name
        readers = {"users": self._read_export, "tickets": self._read_export, "satisfaction_ratings": self._read_ratings,
                   "user_identities": self._read_identities}
        if name not in readers:
            raise ConfigError(f"no stream named {name!r}", hint=f"zendesk offers: {', '.join(readers)}")
        client = self.client(config)
        try:
            with _explained(config):
                yield from readers[name](config, client, request)
        finally:
            client.close()

    # ------------------------------------------------------------------ incremental exports

    def _read_export(self, config: ZendeskConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        name = request.stream.name
        for records, cursor in self._export_pages(config, client, request, name):
            if records:
                yield from _messages(name, records, request.stream.schema)
            if cursor:  # the place to resume from, even after an empty page
                yield Checkpoint(name, {AFTER_CURSOR: cursor})

    def _export_pages(self, config: ZendeskConfig, client: HttpClient, request: ReadRequest,
                      kind: str) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Pages of the `kind` export with the cursor after each: from the stored cursor, else
        from start_time, until end_of_stream."""
        name = request.stream.name
        # Incremental: the cursor of the last sync. Full refresh: the engine hands state back
        # only to resume an interrupted one, and the cursor resumes it exactly.
        stored = request.state.get(AFTER_CURSOR)
        if stored:
            params: dict[str, Any] = {"cursor": stored, "per_page": config.per_page}
        else:
            start = request.cursor_start if request.cursor_start is not None else config.start_date
            params = {"start_time": _epoch(start), "per_page": config.per_page}
        extra = {"exclude_deleted": "true"} if kind == "tickets" and config.exclude_deleted else {}
        followed = {stored} if stored else set()
        while True:
            body = client.request("GET", EXPORTS[kind], params={**params, **extra}, stream=name, parse=_json) or {}
            records = body.get(kind)
            if not isinstance(records, list):
                raise FatalError(f"the {kind} export answered without a {kind!r} list (keys: {', '.join(body)})",
                                 where=f"{self.name} / {name}", hint="check base_url points at your Zendesk")
            cursor = body.get("after_cursor")
            yield records, cursor
            if body.get("end_of_stream") or not cursor:
                return
            if cursor in followed:
                raise FatalError(f"the {kind} export returned the cursor {cursor!r} a second time without end_of_stream",
                                 where=f"{self.name} / {name}", hint="Zendesk's export is looping; try again later")
            followed.add(cursor)
            params = {"cursor": cursor, "per_page": config.per_page}

    # ------------------------------------------------------------------ user identities

    def _read_identities(self, config: ZendeskConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        """The identities of the users each export page holds (100 users a request: show_many
        with identities sideloaded); the user export's cursor is the stream's resume point."""
        name = request.stream.name
        for users, cursor in self._export_pages(config, client, request, "users"):
            ids = [u["id"] for u in users if isinstance(u, dict) and u.get("id") is not None]
            for start in range(0, len(ids), 100):
                body = client.request("GET", SHOW_MANY_PATH, stream=name, parse=_json, params={
                    "ids": ",".join(str(i) for i in ids[start:start + 100]), "include": "identities"}) or {}
                identities = body.get("identities")
                if not isinstance(identities, list):
                    raise FatalError(f"show_many answered without sideloaded 'identities' (keys: {', '.join(body)})",
                                     where=f"{self.name} / {name}", hint="check base_url points at your Zendesk")
                if identities:
                    yield from _messages(name, identities, request.stream.schema)
            if cursor:
                yield Checkpoint(name, {AFTER_CURSOR: cursor})

    # ------------------------------------------------------------------ satisfaction ratings

    def _read_ratings(self, config: ZendeskConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        name = request.stream.name
        params: dict[str, Any] = {"page[size]": config.ratings_page_size}
        start = request.cursor_start if request.sync_mode is SyncMode.INCREMENTAL else None
        params["start_time"] = _epoch(start if start is not None else config.start_date)
        followed: set[str] = set()
        while True:
            body = client.request("GET", RATINGS_PATH, params=params, stream=name, parse=_json) or {}
            records = body.get("satisfaction_ratings")
            if not isinstance(records, list):
                raise FatalError(f"the ratings list answered without 'satisfaction_ratings' (keys: {', '.join(body)})",
                                 where=f"{self.name} / {name}", hint="check base_url points at your Zendesk")
            if records:
                yield from _messages(name, records, request.stream.schema)
                yield Checkpoint(name, {})  # unsorted: the engine keeps the cursor it started from
            meta = body.get("meta") or {}
            after = meta.get("after_cursor")
            if not meta.get("has_more") or not after:
                return
            if after in followed:
                raise FatalError(f"the ratings list returned the cursor {after!r} twice", where=f"{self.name} / {name}")
            followed.add(after)
            params = {**params, "page[after]": after}


# ---------------------------------------------------------------------- records to Arrow


def _messages(stream: str, records: list[dict[str, Any]], schema: pa.Schema) -> Iterator[Message]:
    batch, rejected = to_batch(records, schema)
    if rejected:
        yield Rejected(stream, [r for r, _ in rejected], "; ".join(sorted({why for _, why in rejected})))
    if batch.num_rows:
        yield Batch(stream, batch)


def to_batch(records: list[dict[str, Any]], schema: pa.Schema) -> tuple[pa.RecordBatch, list[tuple[dict, str]]]:
    """Records as a batch of `schema` (undeclared fields as JSON in `extra`), and the records
    that cannot be rows at all (a list column holding something else), with the reason."""
    declared = set(schema.names)
    rejected: list[tuple[dict, str]] = []
    for f in schema:
        if pa.types.is_list(f.type):
            for r in records:
                value = r.get(f.name)
                if value is not None and not isinstance(value, list):
                    rejected.append((r, f"{f.name}: expected a list, got {type(value).__name__}"))
    if rejected:
        bad = {id(r) for r, _ in rejected}
        records = [r for r in records if id(r) not in bad]
    columns = []
    for f in schema:
        if f.name == "extra":
            values: list[Any] = [{k: v for k, v in r.items() if k not in declared} for r in records]
            columns.append(pa.array([json.dumps(v, separators=(",", ":")) if v else None for v in values], pa.string()))
            continue
        columns.append(_typed([r.get(f.name) for r in records], f))
    return pa.RecordBatch.from_arrays(columns, names=schema.names), rejected


def _typed(values: list[Any], f: pa.Field) -> pa.Array:
    if is_json_field(f):
        return pa.array([None if v is None else json.dumps(v, separators=(",", ":")) for v in values], pa.string())
    if pa.types.is_string(f.type):
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string())
    if pa.types.is_timestamp(f.type):
        text = pa.array([None if v in (None, "") else v if isinstance(v, str) else json.dumps(v) for v in values],
                        pa.string())
        try:
            return text.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return text  # the engine quarantines the rows that do not parse, with the reason
    try:
        return pa.array(values, type=f.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        if pa.types.is_list(f.type):  # lists of odd items: items as text
            return pa.array([None if v is None else [x if isinstance(x, str) else json.dumps(x) for x in v]
                             for v in values], pa.list_(pa.string()))
        return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values], pa.string())


def _json(response: requests.Response) -> Any:
    expect_json_response(response)
    try:
        return json.loads(response.content)  # the stdlib's C decoder: requests may pick a slower simplejson
    except ValueError:
        raise MalformedJson("the response is not valid JSON") from None


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


class _explained:
    """Zendesk's 401 and 403 in the user's terms: which credential, and what it lacks."""

    def __init__(self, config: ZendeskConfig) -> None:
        self.config = config

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if not isinstance(exc, ConfigError) or exc.field not in ("api_token", "oauth_token"):
            return False
        if "answered 403" in exc.message:
            raise ConfigError(
                f"Zendesk refused access: {exc.message}", field=exc.field, where=exc.where,
                hint="the incremental exports need an admin: use an admin's email and API token, or an OAuth token "
                     "with the `read` scope") from None
        raise ConfigError(
            f"Zendesk refused the credentials (wrong, expired or revoked): {exc.message}", field=exc.field,
            where=exc.where, hint="check email and api_token (or oauth_token) in the job file and the environment "
                                  "variables they come from; a deleted or deactivated API token must be replaced") from None
