"""The `hubspot` source: contacts, companies, deals and their associations from HubSpot's CRM
API v3, declared on the HTTP kit.

- Paths are those of `api_version`: HubSpot's date-based versions (`/crm/objects/2026-09/{type}`)
  or the legacy v3 ones (`/crm/v3/objects/{type}`).
- Full refresh reads the list endpoints (`GET .../objects/{type}`, `after` cursors from
  `paging.next.after`), live records then archived ones (`archived=true`). A list's `after` is
  a position in id order, not an offset, so the stream is resumable: an interrupted full
  refresh resumes at the page after its last checkpoint.
- Incremental reads the search endpoint (`POST .../search`, a JSON body), filtered
  `lastmodifieddate >= cursor` and sorted ascending, then the archived records archived since
  the cursor (search never returns them). Search answers at most 10,000 results per query;
  rather than page with `after` into that cap, every page is its own query whose window starts
  at the last modification time read (ids already read at that instant are skipped): the
  `SearchWindows` paginator. The window moves at every page, so no query comes near the cap,
  and records modified mid-read cannot shift an offset and be skipped. When one instant holds
  more records than a page, that instant is read in id order.
- Properties arrive as strings; the declared columns get real Arrow types (timestamps,
  decimals, integers, booleans), cast in bulk, and `properties` keeps every property as JSON,
  custom ones too.
- HubSpot's 429 carries no Retry-After; the window (`X-HubSpot-RateLimit-Interval-Milliseconds`)
  is waited out instead (client.py), and a request budget keeps under the 10-second limit to
  begin with. A window longer than `max_retry_time` pauses the stream.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import requests
from pydantic import Field

from threadline.contracts import Batch, Checkpoint, Message, ReadRequest, Spec, SyncMode
from threadline.http import (
    BodyCursorPaginator, Column, Fixed, HttpClient, PageInfo, PageParser, PageRequest, Paginator, ParsedPage,
    RequestBudget, RestSource, RestStream, schema_from_mapping,
)
from threadline.http.client import expect_json_response
from threadline.http.records import SMALL_PAGE_BYTES
from threadline.http.actions import MalformedJson
from threadline_hubspot.client import hubspot_client

OBJECT_TYPES = ("contacts", "companies", "deals")
# HubSpot's newest date-based version when checked (2026-12-06): its migration guide names 2026-09;
# the legacy /crm/v3 paths are supported until September 2027.
CURRENT_API_VERSION = "2026-09"
MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}
_BUDGETS_LOCK = threading.Lock()
ARCHIVED_SINCE = "archived_since"  # state key: the archived phase of an incremental read still to do from here

_COMMON = {"id": "string", "created_at": "timestamp", "updated_at": "timestamp", "archived": "bool",
           "archived_at": "timestamp"}
# Typed columns from `properties` (same names); everything else stays in the `properties` JSON column.
TYPED: dict[str, dict[str, str]] = {
    "contacts": {
        "email": "string", "hs_additional_emails": "string", "firstname": "string", "lastname": "string",
        "phone": "string", "mobilephone": "string", "company": "string", "address": "string", "city": "string",
        "zip": "string", "country": "string", "jobtitle": "string", "lifecyclestage": "string",
        "hs_email_optout": "bool", "hs_analytics_num_visits": "int64",
    },
    "companies": {
        "name": "string", "domain": "string", "phone": "string", "city": "string", "country": "string",
        "industry": "string", "numberofemployees": "int64", "annualrevenue": "decimal(20,2)",
    },
    "deals": {
        "dealname": "string", "amount": "decimal(20,2)", "deal_currency_code": "string", "dealstage": "string",
        "pipeline": "string", "closedate": "timestamp",
    },
}
SCHEMAS = {kind: schema_from_mapping({**_COMMON, **TYPED[kind], "properties": "json"}, where=f"hubspot.{kind}")
           for kind in OBJECT_TYPES}
ASSOCIATIONS_SCHEMA = schema_from_mapping({
    "from_type": "string", "from_id": "string", "to_type": "string", "to_id": "string", "association_type": "string",
})
ASSOCIATED = {"contacts": ("companies", "deals"), "deals": ("companies",)}  # read from these objects' lists


def crm_path(api_version: str, api: str, rest: str) -> str:
    """An endpoint's path in an API version: /crm/objects/2026-09/contacts, or legacy /crm/v3/objects/contacts."""
    return f"/crm/v3/{api}/{rest}" if api_version == "v3" else f"/crm/{api}/{api_version}/{rest}"


def object_columns(kind: str) -> dict[str, Any]:
    """Where each column of `kind` is in a HubSpot object (property values are strings)."""
    return {"created_at": "createdAt", "updated_at": "updatedAt", "archived_at": "archivedAt",
            **{name: Column(f"properties.{name}", text=True) for name in TYPED[kind]}}


class HubspotConfig(Spec):
    access_token: str = Field(description="A private app access token (pat-...) with the crm.objects.contacts.read, "
                                          "crm.objects.companies.read and crm.objects.deals.read scopes. Use "
                                          "${HUBSPOT_ACCESS_TOKEN} in the job file.")
    base_url: str = Field("https://api.hubapi.com", description="The API root (the sandbox's URL in tests).")
    api_version: str = Field(CURRENT_API_VERSION, pattern=r"^(v3|\d{4}-(03|09))$", description=(
        "HubSpot's date-based API version (YYYY-03 or YYYY-09), or v3 for the legacy paths (/crm/v3/...), "
        "which HubSpot supports until September 2027."))
    page_size: int = Field(100, ge=1, le=100, description="Records per list page (HubSpot allows 1 to 100).")
    search_page_size: int = Field(200, ge=1, le=200, description="Records per search page (HubSpot allows 1 to 200).")
    all_properties: bool = Field(True, description="Ask for every property the account defines (read from "
                                                   "the properties endpoint), custom ones included; otherwise only the typed columns.")
    requests_per_10_seconds: int | None = Field(
        100, ge=1, description="Request budget per rolling 10 seconds (HubSpot: 100 for most private apps, 190 on "
                               "Professional/Enterprise); null for none.")
    search_requests_per_second: float | None = Field(
        4.0, gt=0, description="Budget for the search endpoint, which HubSpot limits on its own (about 5 a second "
                               "per token); null for none.")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_retry_time: float = Field(300.0, gt=0, description="Longest one request is retried or waited for (429 windows "
                                                           "included) before the stream stops with its state saved.")


# ---------------------------------------------------------------------- the search window


@dataclass
class SearchWindows(Paginator):
    """Each page is its own search query, `modified >= lower` ascending; `lower` moves to the
    last modification time read, and ids already read at that instant are skipped. A page
    ending where it began (one instant fills it) reads that instant in id order."""

    modified: str = "lastmodifieddate"
    size: int = 200
    position_key: str = "window"

    def first(self, request: PageRequest) -> None:
        self._lower = int(request.json["filterGroups"][0]["filters"][0]["value"])  # type: ignore[index]
        self._skip: set[str] = set()
        self._instant: int | None = None
        self._window(request)

    def select(self, records: pa.RecordBatch) -> pa.RecordBatch:
        if not self._skip or not records.num_rows:
            return records
        return records.filter(pc.invert(pc.is_in(records.column("id"), value_set=pa.array(sorted(self._skip)))))

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        records = page.records
        assert records is not None
        full = page.count >= self.size
        if self._instant is not None:  # reading one instant in id order
            if full:
                self._query(request, [self._filter(self.modified, "EQ", self._instant),
                                      self._filter("hs_object_id", "GT", records.column("id")[-1].as_py())], "hs_object_id")
                return
            self._lower, self._instant, self._skip = self._instant + 1, None, set()
            self._window(request)
            return
        if not full:
            self.has_next = False  # the window holds no more than this page
            return
        stamps = _modified_ms(records)
        last = stamps[-1].as_py()
        if last == self._lower:  # a whole page at one instant
            self._instant = last
            self._query(request, [self._filter(self.modified, "EQ", last), self._filter("hs_object_id", "GT", 0)],
                        "hs_object_id")
            return
        at_last = records.filter(pc.equal(stamps, last)).column("id").to_pylist()
        self._lower, self._skip = last, set(at_last)
        self._window(request)

    def _window(self, request: PageRequest) -> None:
        self._query(request, [self._filter(self.modified, "GTE", self._lower)], self.modified)

    @staticmethod
    def _filter(prop: str, op: str, value: Any) -> dict[str, str]:
        return {"propertyName": prop, "operator": op, "value": str(value)}

    @staticmethod
    def _query(request: PageRequest, filters: list[dict[str, str]], sort: str) -> None:
        request.put("filterGroups", [{"filters": filters}], "body")
        request.put("sorts", [{"propertyName": sort, "direction": "ASCENDING"}], "body")


def _modified_ms(records: pa.RecordBatch) -> pa.Array:
    """Each record's last-modified time as the search filters it (the property, else updatedAt)."""
    modified = pc.cast(records.column("_modified"), pa.timestamp("ms", tz="UTC"))
    updated = pc.cast(records.column("updated_at"), pa.timestamp("ms", tz="UTC"))
    return pc.cast(pc.coalesce(modified, updated), pa.int64())


# ---------------------------------------------------------------------- streams


@dataclass
class HubspotObjects(RestStream):
    """Contacts, companies or deals: list pages for a full refresh, search windows then the
    archived list for an incremental read (see the module docstring)."""

    kind: str = "contacts"
    api_version: str = CURRENT_API_VERSION
    all_properties: bool = True
    search_page_size: int = 200
    search_budget: RequestBudget | None = None

    def read(self, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        properties = self.properties(client)
        lists = dataclasses.replace(self, params={**self.params, "properties": ",".join(properties)})
        if request.sync_mode is not SyncMode.INCREMENTAL:
            yield from RestStream.read(lists, client, request)
            return
        since: datetime | None = request.cursor_start
        archived_since = _archived_since(request.state, since)
        carried = {ARCHIVED_SINCE: archived_since.isoformat() if archived_since else None}
        search = SearchPages(
            name=self.name, path=crm_path(self.api_version, "objects", f"{self.kind}/search"), method="POST",
            records_path="results",
            schema=self.schema, columns={**self.columns, "_modified": Column(f"properties.{MODIFIED[self.kind]}")},
            body={"properties": properties, "limit": self.search_page_size},
            paginator=SearchWindows(modified=MODIFIED[self.kind], size=self.search_page_size),
        )
        for message in search.read(client.also_limited_by(self.search_budget), request):
            # the engine adds the cursor: search pages come in its order
            yield Checkpoint(self.name, carried) if isinstance(message, Checkpoint) else message
        # Archived records leave search; read them from the list, newest archive times only.
        archived = dataclasses.replace(lists, resumable=False, partitions=Fixed(items=[{"archived": "true"}], fill=False))
        for message in RestStream.read(archived, client, ReadRequest(request.stream, SyncMode.FULL_REFRESH)):
            if isinstance(message, Batch):
                fresh = message.records
                if archived_since is not None:
                    fresh = fresh.filter(pc.greater_equal(fresh.column("archived_at"),
                                                          pa.scalar(archived_since, fresh.schema.field("archived_at").type)))
                if fresh.num_rows:
                    yield Batch(self.name, fresh)
        yield Checkpoint(self.name, {})  # the archived phase is done: the next run starts from the cursor alone

    def properties(self, client: HttpClient) -> list[str]:
        names = [*TYPED[self.kind], MODIFIED[self.kind], "hs_object_id"]  # the last two drive the search windows
        if self.all_properties:
            body = client.request("GET", crm_path(self.api_version, "properties", self.kind), stream=self.name,
                                  parse=_json)
            names += [p["name"] for p in (body or {}).get("results", []) if p.get("name") not in names]
        return names


@dataclass
class SearchPages(RestStream):
    """A search: the window starts at the engine's cursor (epoch milliseconds), or at 0."""

    def request_body(self, request: ReadRequest, partition: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        since = request.cursor_start
        lower = _epoch_ms(since) if since is not None else 0
        return {**(self.body or {}), "filterGroups": [{"filters": [{"value": str(lower)}]}]}


@dataclass
class AssociationPages(RestStream):
    """Links of each listed record (`associations` asked inline), one row per link.

    A page's links are read as each target's list of {id, type} items (`_links`) and exploded
    with a few Arrow kernels a target. A page whose links do not read as such lists (a value
    of another type, records the careful parse would reject) is read item by item instead
    (`_items`: ids and types as lists of text, a value that is not a list as no links)."""

    targets: tuple[str, ...] = ("companies", "deals")
    _links: PageParser | None = field(default=None, repr=False)
    _items: PageParser | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        link = pa.list_(pa.struct([("id", pa.string()), ("type", pa.string())]))
        self._links = PageParser(pa.schema([("id", pa.string()), *((t, link) for t in self.targets)]), "results",
                                 {t: f"associations.{t}.results" for t in self.targets})
        raw = {"id": "string", **{f"{t}_{part}": "list<string>" for t in self.targets for part in ("id", "type")}}
        paths = {f"{t}_{part}": f"associations.{t}.results[].{part}" for t in self.targets for part in ("id", "type")}
        self._items = PageParser(schema_from_mapping(raw), "results", paths)

    def shares_parse(self, size: int) -> bool:
        """Its pages are parsed by the kit's parser: a small one from the guess's parse."""
        return size < SMALL_PAGE_BYTES

    def parse_page(self, response: requests.Response) -> ParsedPage:
        assert self._links is not None and self._items is not None
        raw = self._links(response)
        records, links = raw.records, []
        if not raw.rejected and records.schema == self._links.schema:
            for to_type in self.targets:
                lists = records.column(to_type)
                to_id, kind = pc.list_flatten(lists).flatten()  # a null item: a link with null id and type
                links.append((to_type, pc.list_parent_indices(lists), to_id, kind))
        else:
            raw = self._items(response)
            records = raw.records
            for to_type in self.targets:
                ids = records.column(f"{to_type}_id")
                links.append((to_type, pc.list_parent_indices(ids), pc.list_flatten(ids),
                              pc.list_flatten(records.column(f"{to_type}_type"))))
        pieces = [pa.RecordBatch.from_arrays([
            pa.nulls(len(to_id), pa.string()),  # from_type: the partition's kind, filled by the stream
            pc.take(records.column("id"), parents), pa.repeat(pa.scalar(to_type, pa.string()), len(to_id)), to_id, kind,
        ], schema=ASSOCIATIONS_SCHEMA) for to_type, parents, to_id, kind in links]
        return ParsedPage(pa.concat_batches(pieces), raw.body, response, count=records.num_rows)


class HubspotSource(RestSource[HubspotConfig]):
    """Contacts, companies, deals and associations from HubSpot."""

    name = "hubspot"
    spec = HubspotConfig
    vendor = "HubSpot"
    wait_setting = "max_retry_time"

    def client(self, config: HubspotConfig) -> HttpClient:
        return hubspot_client(config, self.name)

    def streams(self, config: HubspotConfig) -> list[RestStream]:
        pages = BodyCursorPaginator(cursor_path="paging.next.after", cursor_param="after")
        phases = Fixed(items=[{"archived": "false"}, {"archived": "true"}], fill=False)
        streams: list[RestStream] = [
            HubspotObjects(
                name=kind, path=crm_path(config.api_version, "objects", kind), records_path="results",
                schema=SCHEMAS[kind], api_version=config.api_version,
                columns=object_columns(kind), primary_key=("id",), cursor_field="updated_at", cursor_sorted=True,
                params={"limit": config.page_size}, paginator=pages, partitions=phases, resumable=True,
                kind=kind, all_properties=config.all_properties, search_page_size=config.search_page_size,
                search_budget=self._search_budget(config),
                description=f"HubSpot {kind}, archived ones included (archived = true).",
            )
            for kind in OBJECT_TYPES
        ]
        streams.append(AssociationPages(
            name="associations", path=crm_path(config.api_version, "objects", "{kind}"), records_path="results",
            schema=ASSOCIATIONS_SCHEMA,
            primary_key=("from_type", "from_id", "to_type", "to_id", "association_type"), paginator=pages,
            params={"limit": config.page_size, "properties": "hs_object_id"}, resumable=True,
            partitions=Fixed(items=[{"kind": kind, "associations": ",".join(targets)} for kind, targets in ASSOCIATED.items()],
                             columns={"from_type": "kind"}, fill=False),
            description="Links between live records: contact→company, contact→deal, deal→company (full refresh; "
                        "write with replace so removed links go).",
        ))
        return streams

    def _search_budget(self, config: HubspotConfig) -> RequestBudget | None:
        """One search budget per source object: HubSpot counts the searches of every stream together."""
        rate = config.search_requests_per_second
        if not rate:
            return None
        with _BUDGETS_LOCK:
            budgets = self.__dict__.setdefault("_search_budgets", {})
            if rate not in budgets:
                budgets[rate] = RequestBudget(int(rate), 1.0) if rate >= 1 else RequestBudget(1, 1 / rate)
            return budgets[rate]


# ---------------------------------------------------------------------- helpers


def _json(response: requests.Response) -> Any:
    expect_json_response(response)
    try:
        return json.loads(response.content)  # the stdlib's C decoder: requests may pick a slower simplejson
    except ValueError:
        raise MalformedJson("the response is not valid JSON") from None


def _parse(text: str | None) -> datetime:
    if not text:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(text)


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _archived_since(state: dict[str, Any], since: datetime | None) -> datetime | None:
    """Where the archived phase starts: the cursor, or earlier when a previous run stopped
    before its own archived phase (None: every archived record)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if ARCHIVED_SINCE not in state:
        return since
    saved = state[ARCHIVED_SINCE]
    if saved is None or since is None:
        return None
    return min(_parse(saved), since)
