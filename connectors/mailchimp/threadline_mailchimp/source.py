"""The `mailchimp` source: audiences, members (with consent status) and member activity from
the Mailchimp Marketing API 3.0.

Streams are `RestStream` declarations; the only unusual parts are written as hooks:
members live under each audience (`/lists/{id}/members`), so the source walks the audiences
and reads each one's members with the same declaration; member fields are nested
(`merge_fields.FNAME`), so pages are parsed by column paths (`columns.py`); and
`since_last_changed` is documented as "changed after", so the cursor is sent one second
early to keep the engine's inclusive contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
from threadline.http import (
    BasicAuth,
    HttpClient,
    OffsetPaginator,
    RestStream,
    RetryPolicy,
    schema_from_mapping,
)
from threadline.http.actions import MalformedJson
from threadline.http.client import expect_json_response
from threadline.http.records import ParsedPage, RecordsPathMissing

from threadline.http.columns import Getter, to_batch

CURSOR_KEY = "cursor"  # the engine's key for the saved cursor in a stream's state
THROTTLED_WITHOUT_A_TIME = 60.0  # seconds to suggest when a 429 came without Retry-After
_KEY_SHAPE = re.compile(r"^[0-9a-zA-Z]+-([a-z]+[0-9]+)$")

LISTS_SCHEMA = schema_from_mapping({
    "id": "string", "web_id": "int64", "name": "string", "date_created": "timestamp", "double_optin": "bool",
    "visibility": "string", "permission_reminder": "string", "from_email": "string",
    "member_count": "int64", "unsubscribe_count": "int64", "cleaned_count": "int64",
})
LISTS_COLUMNS: dict[str, Getter] = {
    "from_email": "campaign_defaults.from_email", "member_count": "stats.member_count",
    "unsubscribe_count": "stats.unsubscribe_count", "cleaned_count": "stats.cleaned_count",
}

MEMBERS_SCHEMA = schema_from_mapping({
    "list_id": "string", "id": "string", "email_address": "string", "unique_email_id": "string",
    "contact_id": "string", "full_name": "string", "first_name": "string", "last_name": "string",
    "phone": "string", "country_code": "string", "language": "string",
    "status": "string", "unsubscribe_reason": "string", "last_changed": "timestamp",
    "timestamp_signup": "timestamp", "timestamp_opt": "timestamp", "ip_opt": "string",
    "consents_to_one_to_one_messaging": "bool", "email_type": "string",
    "tags": "list<string>", "member_rating": "int64", "vip": "bool", "source": "string", "merge_fields": "json",
})
MEMBERS_COLUMNS: dict[str, Getter] = {
    "first_name": lambda r: _text(r, "FNAME"), "last_name": lambda r: _text(r, "LNAME"),
    "phone": lambda r: _text(r, "PHONE"), "country_code": lambda r: (r.get("location") or {}).get("country_code") or None,
    "language": lambda r: r.get("language") or None,
    "tags": lambda r: [t.get("name") for t in r.get("tags") or [] if isinstance(t, dict)],
}

ACTIVITY_SCHEMA = schema_from_mapping({
    "list_id": "string", "email_id": "string", "action": "string", "timestamp": "timestamp",
    "campaign_id": "string", "title": "string", "type": "string", "url": "string",
})


def _text(record: dict[str, Any], merge_tag: str) -> str | None:
    value = (record.get("merge_fields") or {}).get(merge_tag)
    return value if value not in ("", None) else None


class MailchimpConfig(Spec):
    api_key: str = Field(description="A Mailchimp API key, `<key>-<dc>`; its suffix names the data centre. "
                                     "Use ${MAILCHIMP_API_KEY} in the job file.")
    base_url: str | None = Field(None, description="Override of https://<dc>.api.mailchimp.com/3.0 (the sandbox's URL + /3.0).")
    list_ids: list[str] = Field(default_factory=list, description="Read only these audiences (default: every one).")
    page_size: int = Field(500, ge=1, le=1000, description="Records per page (`count`; Mailchimp allows up to 1000).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(
        300.0, gt=0, description="Longest this run waits out a rate limit or retries; a longer window stops the "
                                 "stream cleanly with its state saved and the time to resume.")



@dataclass
class MailchimpPages(RestStream):
    """A Mailchimp collection endpoint: nested fields by column path, `since_last_changed` sent
    one second early ("after" in the docs, inclusive for the engine), body-level ids copied in."""

    columns: dict[str, Getter] = field(default_factory=dict)  # column → path or function (default: its key)
    copy_from_body: tuple[str, ...] = ()  # body-level values every record carries (`list_id`)

    def format_cursor(self, value: Any) -> str:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return (moment.astimezone(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        return super().format_cursor(value)

    def parse_page(self, response: requests.Response) -> ParsedPage:
        expect_json_response(response)
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise MalformedJson(f"the response is not valid JSON ({exc})") from None
        records = body.get(self.records_path) if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise RecordsPathMissing(f"no {self.records_path!r} list in the answer (keys: {', '.join(body) if isinstance(body, dict) else '-'})")
        extra = {k: body.get(k) for k in self.copy_from_body}
        if extra:
            records = [{**r, **extra} for r in records]
        assert isinstance(self.schema, pa.Schema)
        batch = to_batch(records, self.schema, self.columns)
        return ParsedPage(batch, {k: v for k, v in body.items() if k != self.records_path}, response)


class MailchimpSource(Source[MailchimpConfig]):
    """Audiences, members and member activity from the Mailchimp Marketing API."""

    name = "mailchimp"
    spec = MailchimpConfig

    # ------------------------------------------------------------------ client and declarations

    def api_root(self, config: MailchimpConfig) -> str:
        if config.base_url:
            return config.base_url
        match = _KEY_SHAPE.match(config.api_key.strip())
        if not match:
            raise ConfigError(
                "the API key has no data-centre suffix (a Mailchimp key looks like 0123…cdef-us21)", field="api_key",
                where=self.name, hint="copy the whole key from Mailchimp: Profile → Extras → API keys",
            )
        return f"https://{match.group(1)}.api.mailchimp.com/3.0"

    def client(self, config: MailchimpConfig) -> HttpClient:
        return HttpClient(
            self.api_root(config),
            auth=BasicAuth("threadline", config.api_key, field="api_key"),
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
            connector=self.name,
        )

    def _pages(self, name: str, path: str, config: MailchimpConfig, **options: Any) -> MailchimpPages:
        return MailchimpPages(
            name=name, path=path, paginator=OffsetPaginator(
                limit=config.page_size, offset_param="offset", limit_param="count", total_path="total_items"),
            **options,
        )

    def lists_stream(self, config: MailchimpConfig) -> MailchimpPages:
        return self._pages("lists", "/lists", config, records_path="lists", schema=LISTS_SCHEMA, primary_key=("id",),
                           columns=LISTS_COLUMNS, description="Audiences (lists).")

    def members_stream(self, config: MailchimpConfig, list_id: str = "{list_id}") -> MailchimpPages:
        return self._pages(
            "members", f"/lists/{list_id}/members", config, records_path="members", schema=MEMBERS_SCHEMA,
            primary_key=("list_id", "id"), cursor_field="last_changed", cursor_param="since_last_changed",
            cursor_sorted=False,  # sorted within an audience, not across audiences
            params={"sort_field": "last_changed", "sort_dir": "ASC"},
            columns=MEMBERS_COLUMNS, description="Members of every audience, with their consent status.",
        )

    def activity_stream(self, config: MailchimpConfig, list_id: str = "{list_id}", member: str = "{hash}") -> MailchimpPages:
        return MailchimpPages(
            name="member_activity", path=f"/lists/{list_id}/members/{member}/activity", records_path="activity",
            schema=ACTIVITY_SCHEMA, primary_key=("list_id", "email_id", "action", "timestamp"),
            copy_from_body=("list_id", "email_id"),
            description="The last 50 events of each member (opens, clicks, bounces, sends).",
        )

    # ------------------------------------------------------------------ the contract

    def discover(self, config: MailchimpConfig) -> Catalog:
        return Catalog(tuple(s.to_stream() for s in (
            self.members_stream(config), self.lists_stream(config), self.activity_stream(config))))

    def check(self, config: MailchimpConfig) -> None:
        client = self.client(config)
        client.retry = RetryPolicy(max_attempts=2, backoff_base=0.2, max_retry_time=10)
        try:
            stream = self.lists_stream(config)
            probe = ReadRequest(stream=stream.to_stream(), sync_mode=SyncMode.FULL_REFRESH)
            with _explained(config, client):
                list(stream.read(client, probe))
                for list_id in config.list_ids:
                    members = self.members_stream(config, list_id)
                    with _deleted_list(list_id, None, field="list_ids"):
                        next(members.read(client, ReadRequest(members.to_stream(), SyncMode.FULL_REFRESH)), None)
        except FatalError as exc:
            if "answered 404" not in exc.message:
                raise
            raise ConfigError(
                f"the API root answered 404: {exc.message}", field="base_url", where=exc.where,
                hint="base_url must be the API root, ending in /3.0 (leave it unset for the vendor's own)",
            ) from None
        except TransientError as exc:
            raise ConfigError(exc.message, field="base_url", where=exc.where,
                              hint="check base_url (or the key's data centre) and that the API is reachable") from None
        finally:
            client.close()

    def read(self, config: MailchimpConfig, request: ReadRequest) -> Iterator[Message]:
        readers = {"lists": self._read_lists, "members": self._read_members, "member_activity": self._read_activity}
        reader = readers.get(request.stream.name)
        if reader is None:
            raise ConfigError(f"no stream named {request.stream.name!r}", hint=f"declared: {', '.join(readers)}")
        # The saved cursor goes into every checkpoint: the engine stores a checkpoint's state as
        # it is, and this source's members are not in cursor order across audiences.
        carried = {CURSOR_KEY: request.state[CURSOR_KEY]} if CURSOR_KEY in request.state else {}
        client = self.client(config)
        try:
            with _explained(config, client):
                for message in reader(config, client, request):
                    yield Checkpoint(message.stream, carried) if isinstance(message, Checkpoint) else message
        except TransientError as exc:
            yield from stop_for_rate_limit(exc, vendor="Mailchimp", stream=request.stream.name, connector=self.name,
                                           state=carried, max_wait=config.max_rate_limit_wait,
                                           wait_for_bare_429=THROTTLED_WITHOUT_A_TIME)
        finally:
            client.close()

    # ------------------------------------------------------------------ readers

    def _audiences(self, config: MailchimpConfig, client: HttpClient) -> list[tuple[str, str | None]]:
        if config.list_ids:
            return [(list_id, None) for list_id in config.list_ids]
        stream = self.lists_stream(config)
        found: list[tuple[str, str | None]] = []
        for message in stream.read(client, ReadRequest(stream.to_stream(), SyncMode.FULL_REFRESH)):
            if isinstance(message, Batch):
                found += zip(message.records.column("id").to_pylist(), message.records.column("name").to_pylist())
        return found

    def _read_lists(self, config: MailchimpConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        yield from self.lists_stream(config).read(client, request)

    def _read_members(self, config: MailchimpConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        for list_id, name in self._audiences(config, client):
            with _deleted_list(list_id, name):
                yield from self.members_stream(config, list_id).read(client, request)

    def _read_activity(self, config: MailchimpConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        for list_id, name in self._audiences(config, client):
            members = self.members_stream(config, list_id)
            members.params = {"fields": "members.id,total_items"}
            with _deleted_list(list_id, name):
                for message in members.read(client, ReadRequest(members.to_stream(), SyncMode.FULL_REFRESH)):
                    if not isinstance(message, Batch):
                        continue
                    pages = []
                    for member in message.records.column("id").to_pylist():
                        feed = self.activity_stream(config, list_id, member)
                        page = client.request("GET", feed.path, stream=feed.name, parse=feed.parse_page)
                        if page is not None and page.records.num_rows:
                            pages.append(page.records)
                    if pages:
                        yield Batch("member_activity", pa.Table.from_batches(pages).combine_chunks().to_batches()[0])
                        yield Checkpoint("member_activity", {})


class _explained:
    """Turns a refused key into a ConfigError that says what Mailchimp means by it."""

    def __init__(self, config: MailchimpConfig, client: HttpClient) -> None:
        self.config, self.client = config, client

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if not isinstance(exc, ConfigError) or "datacenter" not in exc.message.lower():
            return False
        match = _KEY_SHAPE.match(self.config.api_key.strip())
        suffix = f"-{match.group(1)}" if match else "no data-centre suffix"
        raise ConfigError(
            f"Mailchimp refused the API key (401 API Key Invalid): the key is wrong or revoked, or it belongs to "
            f"another data centre than {self.client.base_url} (the key ends in {suffix})",
            field="api_key", where=exc.where,
            hint="copy the key again from Mailchimp (Profile → Extras → API keys); leave base_url unset so the "
                 "data centre is taken from the key's suffix",
        ) from None


class _deleted_list:
    """A 404 under /lists/{id} means the audience was deleted: say which one."""

    def __init__(self, list_id: str, name: str | None, field: str = "") -> None:
        self.list_id, self.name, self.field = list_id, name, field  # field: report on this config field

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if not isinstance(exc, FatalError) or "answered 404" not in exc.message:
            return False
        label = f"{self.list_id!r} ({self.name})" if self.name else repr(self.list_id)
        message = (f"audience (list) {label} was not found — answered 404 Resource Not Found; it was deleted in "
                   f"Mailchimp or the id is wrong. Request: {exc.message}")
        hint = "remove the id from list_ids, or re-run the sync: deleted audiences are not listed again"
        if self.field:
            raise ConfigError(message, field=self.field, where=exc.where, hint=hint) from None
        raise FatalError(message, where=exc.where, hint=hint) from None
