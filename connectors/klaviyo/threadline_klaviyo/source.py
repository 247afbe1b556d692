"""The `klaviyo` source: profiles (with email and SMS consent), lists, list memberships and
events from Klaviyo's revision-dated JSON:API.

Streams are `RestStream` declarations paged by `links.next` (`NextUrlPaginator`); what is
particular to Klaviyo is written as hooks: the incremental filter is a JSON:API expression
(`filter=greater-or-equal(updated,<time>)`), records keep their fields under `attributes`
and their links under `relationships` (parsed by column paths, `columns.py`), an event's
metric name comes from the page's `included` metrics, and memberships are read list by list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import requests
from pydantic import Field
from threadline.contracts import (
    Batch,
    Catalog,
    Checkpoint,
    ConfigError,
    FatalError,
    Message,
    ReadRequest,
    Source,
    Spec,
    SyncMode,
    TransientError,
)
from threadline.http.pause import stop_for_rate_limit
from threadline.http.source import checking, read_first_page
from threadline.http import (
    ApiKeyAuth,
    HttpClient,
    NextUrlPaginator,
    RequestBudget,
    RestStream,
    RetryPolicy,
    schema_from_mapping,
)
from threadline.http.actions import MalformedJson
from threadline.http.client import expect_json_response
from threadline.http.records import ParsedPage, RecordsPathMissing
from threadline.secrets import register_secret

from threadline.http.columns import Getter, get_path, to_batch

CURSOR_KEY = "cursor"  # the engine's key for the saved cursor in a stream's state
THROTTLED_WITHOUT_A_TIME = 60.0  # seconds to suggest when a 429 came without Retry-After
DEFAULT_REVISION = "2024-10-15"

PROFILES_SCHEMA = schema_from_mapping({
    "id": "string", "email": "string", "phone_number": "string", "external_id": "string",
    "first_name": "string", "last_name": "string", "organization": "string", "locale": "string",
    "city": "string", "country": "string", "zip": "string", "timezone": "string",
    "created": "timestamp", "updated": "timestamp", "last_event_date": "timestamp",
    "email_consent": "string", "email_consent_timestamp": "timestamp", "email_can_receive_marketing": "bool",
    "email_suppression_reason": "string", "sms_consent": "string", "sms_consent_timestamp": "timestamp",
    "properties": "json",
})
_EMAIL = "attributes.subscriptions.email.marketing"
_SMS = "attributes.subscriptions.sms.marketing"
PROFILES_COLUMNS: dict[str, Getter] = {
    **{name: f"attributes.{name}" for name in (
        "email", "phone_number", "external_id", "first_name", "last_name", "locale", "created", "updated",
        "last_event_date", "properties")},
    "organization": lambda r: get_path(r, "attributes.organization") or None,
    **{name: f"attributes.location.{name}" for name in ("city", "country", "zip", "timezone")},
    "email_consent": f"{_EMAIL}.consent", "email_consent_timestamp": f"{_EMAIL}.consent_timestamp",
    "email_can_receive_marketing": f"{_EMAIL}.can_receive_email_marketing",
    "email_suppression_reason": lambda r: next(
        (s.get("reason") for s in get_path(r, f"{_EMAIL}.suppression") or [] if isinstance(s, dict)), None),
    "sms_consent": f"{_SMS}.consent", "sms_consent_timestamp": f"{_SMS}.consent_timestamp",
}

LISTS_SCHEMA = schema_from_mapping({
    "id": "string", "name": "string", "created": "timestamp", "updated": "timestamp", "opt_in_process": "string",
})
LISTS_COLUMNS: dict[str, Getter] = {n: f"attributes.{n}" for n in ("name", "created", "updated", "opt_in_process")}

MEMBERSHIPS_SCHEMA = schema_from_mapping({
    "list_id": "string", "profile_id": "string", "email": "string", "phone_number": "string",
    "external_id": "string", "joined_group_at": "timestamp",
})
MEMBERSHIPS_COLUMNS: dict[str, Getter] = {
    "profile_id": "id", "email": "attributes.email", "phone_number": "attributes.phone_number",
    "external_id": "attributes.external_id", "joined_group_at": "attributes.joined_group_at",
}

EVENTS_SCHEMA = schema_from_mapping({
    "id": "string", "profile_id": "string", "metric_id": "string", "metric_name": "string",
    "datetime": "timestamp", "timestamp": "int64", "uuid": "string", "value": "float64", "event_properties": "json",
})
EVENTS_COLUMNS: dict[str, Getter] = {
    "profile_id": "relationships.profile.data.id", "metric_id": "relationships.metric.data.id",
    "datetime": "attributes.datetime", "timestamp": "attributes.timestamp", "uuid": "attributes.uuid",
    "value": "attributes.event_properties.$value", "event_properties": "attributes.event_properties",
}


class KlaviyoConfig(Spec):
    api_key: str = Field(description="A private API key (pk_...) with read scopes for profiles, lists, events and "
                                     "metrics. Use ${KLAVIYO_API_KEY} in the job file.")
    base_url: str = Field("https://a.klaviyo.com/api", description="The API root (the sandbox's URL + /api in tests).")
    revision: str = Field(DEFAULT_REVISION, description="The API revision sent in the `revision` header (YYYY-MM-DD).")
    list_ids: list[str] = Field(default_factory=list, description="Read memberships of only these lists (default: every list).")
    page_size: int = Field(100, ge=1, le=100, description="Profiles per page (`page[size]`; Klaviyo allows 1 to 100).")
    requests_per_second: float | None = Field(
        None, gt=0, description="Cap on requests per second (Klaviyo's burst limits are per endpoint, 3 to 350/s).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(
        300.0, gt=0, description="Longest this run waits out a 429 (Retry-After) or retries; a longer window stops "
                                 "the stream cleanly with its state saved and the time to resume.")



@dataclass
class KlaviyoPages(RestStream):
    """A Klaviyo collection: `filter=<op>(<cursor field>,<time>)`, records by column path,
    `included` metrics resolved to names, constant columns (a membership's `list_id`)."""

    columns: dict[str, Getter] = field(default_factory=dict)  # column → path or function (default: its key)
    filter_field: str | None = None  # the attribute the incremental filter compares
    constants: dict[str, Any] = field(default_factory=dict)  # columns with one value for the whole stream

    def request_params(self, request: ReadRequest) -> dict[str, Any]:
        params = dict(self.params)
        if request.sync_mode is SyncMode.INCREMENTAL and request.cursor_start is not None and self.filter_field:
            params["filter"] = f"greater-or-equal({self.filter_field},{self.format_cursor(request.cursor_start)})"
        return params

    def format_cursor(self, value: Any) -> str:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        return super().format_cursor(value)

    def parse_page(self, response: requests.Response) -> ParsedPage:
        expect_json_response(response)
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise MalformedJson(f"the response is not valid JSON ({exc})") from None
        records = body.get("data") if isinstance(body, dict) else None
        if not isinstance(records, list):
            keys = ", ".join(body) if isinstance(body, dict) else "-"
            raise RecordsPathMissing(f"no JSON:API 'data' list in the answer (keys: {keys})")
        columns = dict(self.columns)
        metrics = {m.get("id"): get_path(m, "attributes.name") for m in body.get("included") or []
                   if isinstance(m, dict) and m.get("type") == "metric"}
        if "metric_name" in self.schema.names:  # type: ignore[union-attr]
            columns["metric_name"] = lambda r: metrics.get(get_path(r, "relationships.metric.data.id"))
        for name, value in self.constants.items():
            columns[name] = lambda r, value=value: value
        assert isinstance(self.schema, pa.Schema)
        batch = to_batch(records, self.schema, columns)
        return ParsedPage(batch, {k: v for k, v in body.items() if k not in ("data", "included")}, response)


class KlaviyoSource(Source[KlaviyoConfig]):
    """Profiles, lists, list memberships and events from the Klaviyo API."""

    name = "klaviyo"
    spec = KlaviyoConfig

    def client(self, config: KlaviyoConfig) -> HttpClient:
        register_secret(config.api_key)
        budget = None
        if config.requests_per_second:
            rate = config.requests_per_second
            budget = RequestBudget(int(rate), 1.0) if rate >= 1 else RequestBudget(1, 1 / rate)
        return HttpClient(
            config.base_url,
            auth=ApiKeyAuth(f"Klaviyo-API-Key {config.api_key}", name="Authorization", field="api_key"),
            headers={"revision": config.revision, "accept": "application/vnd.api+json"},
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
            budget=budget, connector=self.name,
        )

    # ------------------------------------------------------------------ declarations

    def _pages(self, config: KlaviyoConfig, columns: dict[str, Getter], **options: Any) -> KlaviyoPages:
        return KlaviyoPages(records_path="data", paginator=NextUrlPaginator("links.next"), columns=columns, **options)

    def profiles_stream(self, config: KlaviyoConfig) -> KlaviyoPages:
        return self._pages(
            config, PROFILES_COLUMNS, name="profiles", path="/profiles", schema=PROFILES_SCHEMA, primary_key=("id",),
            cursor_field="updated", cursor_sorted=True,
            params={"page[size]": config.page_size, "sort": "updated", "additional-fields[profile]": "subscriptions"},
            filter_field="updated", description="Profiles with identifiers and email/SMS consent.",
        )

    def lists_stream(self, config: KlaviyoConfig) -> KlaviyoPages:
        return self._pages(config, LISTS_COLUMNS, name="lists", path="/lists", schema=LISTS_SCHEMA, primary_key=("id",),
                           description="Lists.")

    def memberships_stream(self, config: KlaviyoConfig, list_id: str = "{id}") -> KlaviyoPages:
        return self._pages(
            config, MEMBERSHIPS_COLUMNS, name="list_memberships", path=f"/lists/{list_id}/profiles",
            schema=MEMBERSHIPS_SCHEMA, primary_key=("list_id", "profile_id"), cursor_field="joined_group_at",
            cursor_sorted=False,  # in join order within a list, not across lists
            params={"page[size]": config.page_size, "sort": "joined_group_at",
                    "fields[profile]": "email,phone_number,external_id,joined_group_at"},
            filter_field="joined_group_at", constants={"list_id": list_id},
            description="Who is on which list, since when.",
        )

    def events_stream(self, config: KlaviyoConfig) -> KlaviyoPages:
        return self._pages(
            config, EVENTS_COLUMNS, name="events", path="/events", schema=EVENTS_SCHEMA, primary_key=("id",),
            cursor_field="datetime", cursor_sorted=True, params={"sort": "datetime", "include": "metric"},
            filter_field="datetime",
            description="Events (Opened Email, Clicked Email, Placed Order, ...) with their metric's name.",
        )

    # ------------------------------------------------------------------ the contract

    def discover(self, config: KlaviyoConfig) -> Catalog:
        return Catalog(tuple(s.to_stream() for s in (
            self.profiles_stream(config), self.lists_stream(config), self.memberships_stream(config),
            self.events_stream(config))))

    def check(self, config: KlaviyoConfig) -> None:
        with checking(self.client(config)) as client:
            try:
                with _explained(config):
                    for stream in (self.profiles_stream(config), self.lists_stream(config), self.events_stream(config)):
                        read_first_page(stream, client)
                    for list_id in config.list_ids:
                        with _deleted_list(list_id, None, field="list_ids"):
                            read_first_page(self.memberships_stream(config, list_id), client)
            except FatalError as exc:
                if "answered 404" not in exc.message:
                    raise
                raise ConfigError(
                    f"the API root answered 404: {exc.message}", field="base_url", where=exc.where,
                    hint="base_url must be the API root, ending in /api (leave it unset for the vendor's own)",
                ) from None

    def read(self, config: KlaviyoConfig, request: ReadRequest) -> Iterator[Message]:
        readers = {
            "profiles": lambda c: self.profiles_stream(config).read(c, request),
            "lists": lambda c: self.lists_stream(config).read(c, request),
            "list_memberships": lambda c: self._read_memberships(config, c, request),
            "events": lambda c: self.events_stream(config).read(c, request),
        }
        reader = readers.get(request.stream.name)
        if reader is None:
            raise ConfigError(f"no stream named {request.stream.name!r}", hint=f"declared: {', '.join(readers)}")
        sorted_cursor = request.stream.cursor_sorted
        # Unsorted streams: the saved cursor goes into every checkpoint, since the engine stores
        # a checkpoint's state as it is and only adds the cursor for sorted streams.
        carried = {CURSOR_KEY: request.state[CURSOR_KEY]} if CURSOR_KEY in request.state and not sorted_cursor else {}
        client = self.client(config)
        try:
            with _explained(config):
                for message in reader(client):
                    yield Checkpoint(message.stream, carried) if isinstance(message, Checkpoint) else message
        except TransientError as exc:
            yield from stop_for_rate_limit(exc, vendor="Klaviyo", stream=request.stream.name, connector=self.name,
                                           state=carried, max_wait=config.max_rate_limit_wait,
                                           wait_for_bare_429=THROTTLED_WITHOUT_A_TIME)
        finally:
            client.close()

    def _read_memberships(self, config: KlaviyoConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        if config.list_ids:
            lists: list[tuple[str, str | None]] = [(list_id, None) for list_id in config.list_ids]
        else:
            lists = []
            stream = self.lists_stream(config)
            for message in stream.read(client, ReadRequest(stream.to_stream(), SyncMode.FULL_REFRESH)):
                if isinstance(message, Batch):
                    lists += zip(message.records.column("id").to_pylist(), message.records.column("name").to_pylist())
        for list_id, name in lists:
            with _deleted_list(list_id, name):
                yield from self.memberships_stream(config, list_id).read(client, request)


class _explained:
    """A 400 about the revision header is the config's `revision` field, not a broken API."""

    def __init__(self, config: KlaviyoConfig) -> None:
        self.config = config

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, FatalError) and "answered 400" in exc.message and "revision" in exc.message.lower():
            raise ConfigError(
                f"Klaviyo refused the revision header {self.config.revision!r}: {exc.message}", field="revision",
                where=exc.where, hint="set revision to a date Klaviyo supports (YYYY-MM-DD, e.g. 2024-10-15)",
            ) from None
        return False


class _deleted_list:
    """A 404 under /lists/{id} means the list was deleted: say which one."""

    def __init__(self, list_id: str, name: str | None, field: str = "") -> None:
        self.list_id, self.name, self.field = list_id, name, field  # field: report on this config field

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if not isinstance(exc, FatalError) or "answered 404" not in exc.message:
            return False
        label = f"{self.list_id!r} ({self.name})" if self.name else repr(self.list_id)
        message = f"list {label} was not found — answered 404; it was deleted in Klaviyo or the id is wrong. Request: {exc.message}"
        hint = "remove the id from list_ids, or re-run the sync: deleted lists are not listed again"
        if self.field:
            raise ConfigError(message, field=self.field, where=exc.where, hint=hint) from None
        raise FatalError(message, where=exc.where, hint=hint) from None
