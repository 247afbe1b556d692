"""The `zendesk` source: users, tickets, satisfaction ratings and user identities from Zendesk
Support, declared on the HTTP kit.

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
- User identities (every email and phone of a user, not just the primary ones) fan out over
  the users export, 100 users a request (`users/show_many` with identities sideloaded); the
  users export's cursor is their resume point.
- Deleted users arrive with `active = false`, deleted tickets with `status = "deleted"`.
- Nested and custom fields (`user_fields`, `custom_fields`, `via`) are JSON columns, and
  whatever top-level field Zendesk adds is kept in `extra` (JSON), never dropped. A record
  whose `tags` is not a list goes to quarantine (Rejected); other ill-typed values are handed
  to the engine as text so it quarantines just those rows, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from threadline.contracts import Checkpoint, Message, ReadRequest, Spec
from threadline.http import (
    BodyCursorPaginator, FromParent, HttpClient, PageInfo, PageRequest, RestSource, RestStream, SinglePage,
    schema_from_mapping,
)
from threadline.http.paginators import lookup
from threadline.http.stream import RESUME_KEY
from threadline_zendesk.client import zendesk_client

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


@dataclass
class ExportCursor(BodyCursorPaginator):
    """An incremental export's `after_cursor`, followed until `end_of_stream`. A cursor request
    carries only the cursor (and the page size): it replaces `start_time`. Its position is the
    last cursor seen, the end included: the next incremental sync starts there."""

    cursor_path: str = AFTER_CURSOR
    allow_empty_pages: bool = True  # an export window may hold nothing while the stream goes on

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        token = lookup(page.body, self.cursor_path)
        if token:
            self._last = token
        if lookup(page.body, "end_of_stream") or not self._follow(token, "export cursor"):
            self.has_next = False
            return
        self.resume(request, token)

    def resume(self, request: PageRequest, position: Any) -> None:
        request.params = {k: v for k, v in request.params.items() if k != "start_time"}
        request.params[self.cursor_param] = position

    def position(self) -> Any:
        return self.__dict__.get("_last")


@dataclass
class ExportPages(RestStream):
    """An incremental export: starts at `start_time` (the engine's cursor or `start_date`), or at
    the stored `after_cursor`, which every checkpoint keeps (see the module docstring)."""

    start_date: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    def request_params(self, request: ReadRequest, partition: Mapping[str, Any] | None = None) -> dict[str, Any]:
        start = request.cursor_start if request.cursor_start is not None else self.start_date
        return {**self.params, "start_time": _epoch(start)}

    def resume_from(self, request: ReadRequest) -> dict[str, Any] | None:
        # Incremental: the cursor of the last sync. Full refresh: the engine hands state back only
        # to resume an interrupted one, and the cursor resumes it exactly.
        stored = request.state.get(AFTER_CURSOR)
        return {self.paginator.position_key: stored} if stored else None

    def read(self, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        last = request.state.get(AFTER_CURSOR)
        for message in super().read(client, request):
            if isinstance(message, Checkpoint):
                position = message.state.get(RESUME_KEY) or {}
                last = position.get(self.paginator.position_key) or last
                message = Checkpoint(self.name, {AFTER_CURSOR: last} if last else {})
            yield message


@dataclass
class RatingPages(RestStream):
    """Satisfaction ratings filtered by `start_time`: the engine's cursor, or `start_date`."""

    start_date: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    def request_params(self, request: ReadRequest, partition: Mapping[str, Any] | None = None) -> dict[str, Any]:
        start = request.cursor_start if self.incremental(request) else self.start_date
        return {**self.params, "start_time": _epoch(start)}


class ZendeskSource(RestSource[ZendeskConfig]):
    """Users, tickets and satisfaction ratings from Zendesk Support."""

    name = "zendesk"
    spec = ZendeskConfig
    vendor = "Zendesk"
    wait_setting = "max_retry_time"

    def client(self, config: ZendeskConfig) -> HttpClient:
        return zendesk_client(config, self.name)

    def export(self, config: ZendeskConfig, kind: str, schema: Any, description: str) -> ExportPages:
        extra = {"exclude_deleted": "true"} if kind == "tickets" and config.exclude_deleted else {}
        return ExportPages(
            name=kind, path=EXPORTS[kind], records_path=kind, schema=schema, primary_key=("id",),
            cursor_field="updated_at", cursor_sorted=True, other_fields="extra", resumable=True,
            params={"per_page": config.per_page, **extra}, paginator=ExportCursor(cursor_param="cursor"),
            start_date=config.start_date, description=description,
        )

    def streams(self, config: ZendeskConfig) -> list[RestStream]:
        users = self.export(config, "users", USERS_SCHEMA, "End users and agents; deleted users have active = false.")
        return [
            users,
            self.export(config, "tickets", TICKETS_SCHEMA, "Tickets; deleted tickets have status = 'deleted'."),
            RatingPages(
                name="satisfaction_ratings", path=RATINGS_PATH, records_path="satisfaction_ratings",
                schema=RATINGS_SCHEMA, primary_key=("id",), cursor_field="updated_at", other_fields="extra",
                params={"page[size]": config.ratings_page_size}, start_date=config.start_date,
                paginator=BodyCursorPaginator(cursor_path="meta.after_cursor", cursor_param="page[after]",
                                              has_more_path="meta.has_more"),
                description="CSAT ratings of solved tickets (good, bad, offered).",
            ),
            RestStream(
                name="user_identities", path=SHOW_MANY_PATH, records_path="identities", schema=IDENTITIES_SCHEMA,
                primary_key=("id",), cursor_field="updated_at", other_fields="extra", paginator=SinglePage(),
                params={"include": "identities"},
                partitions=FromParent(stream=users, keys_from={"ids": "id"}, batch=100, follow=True, noun="users"),
                description="Every email and phone of each user (the primary one and the others), for users changed "
                            "since the cursor.",
            ),
        ]

    def probes(self, config: ZendeskConfig) -> list[RestStream]:
        return self.streams(config)[:3]


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
