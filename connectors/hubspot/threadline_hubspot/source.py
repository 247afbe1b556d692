"""The `hubspot` source: contacts, companies, deals and their associations from HubSpot's CRM API v3.

- Full refresh reads the list endpoints (`GET /crm/v3/objects/{type}`, `after` cursors from
  `paging.next.after`), live records then archived ones (`archived=true`).
- Incremental reads the search endpoint, filtered `lastmodifieddate >= cursor` and sorted
  ascending, then the archived records archived since the cursor (search never returns them).
  Search answers at most 10,000 results per query; rather than page with `after` into that
  cap, every page is its own query whose window starts at the last modification time read
  (ids already read at that instant are skipped). The window is split at every page, so no
  query comes near the cap, and records modified mid-read cannot shift an offset and be
  skipped. When one instant holds more records than a page, that instant is read in id order.
- Properties arrive as strings; the declared columns get real Arrow types (timestamps,
  decimals, integers, booleans) and `properties` keeps every property as JSON, custom ones too.
- HubSpot's 429 carries no Retry-After; the window (`X-HubSpot-RateLimit-Interval-Milliseconds`)
  is waited out instead, and a request budget keeps under the 10-second limit to begin with.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
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
    Stream,
    SyncMode,
)
from threadline.http.source import checking
from threadline.http import (
    BearerAuth,
    HttpClient,
    RequestBudget,
    RetryPolicy,
    schema_from_mapping,
)
from threadline.http.client import expect_json_response
from threadline.http.schema import is_json_field

OBJECT_TYPES = ("contacts", "companies", "deals")
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


class HubspotConfig(Spec):
    access_token: str = Field(description="A private app access token (pat-...) with the crm.objects.contacts.read, "
                                          "crm.objects.companies.read and crm.objects.deals.read scopes. Use "
                                          "${HUBSPOT_ACCESS_TOKEN} in the job file.")
    base_url: str = Field("https://api.hubapi.com", description="The API root (the sandbox's URL in tests).")
    page_size: int = Field(100, ge=1, le=100, description="Records per list page (HubSpot allows 1 to 100).")
    search_page_size: int = Field(200, ge=1, le=200, description="Records per search page (HubSpot allows 1 to 200).")
    all_properties: bool = Field(True, description="Ask for every property the account defines (read from "
                                                   "/crm/v3/properties), custom ones included; otherwise only the typed columns.")
    requests_per_10_seconds: int | None = Field(
        100, ge=1, description="Request budget per rolling 10 seconds (HubSpot: 100 for most private apps, 190 on "
                               "Professional/Enterprise); null for none.")
    search_requests_per_second: float | None = Field(
        4.0, gt=0, description="Budget for the search endpoint, which HubSpot limits on its own (about 5 a second "
                               "per token); null for none.")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_retry_time: float = Field(300.0, gt=0, description="Longest one request is retried or waited for (429 windows "
                                                           "included) before the stream stops with its state saved.")


def _hubspot_wait(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """HubSpot's 429 says which window was hit but not when to retry: wait the window out."""
    if response.status_code == 429 and "Retry-After" not in response.headers:
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        policy = ""
        try:
            policy = response.json().get("policyName", "")
        except ValueError:
            pass
        if policy == "DAILY":
            now = datetime.now(UTC)
            seconds = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)  # resets at midnight
            response.headers["Retry-After"] = str(seconds)
        elif interval and interval.isdigit():
            response.headers["Retry-After"] = f"{int(interval) / 1000:g}"
    return response


class HubspotSource(Source[HubspotConfig]):
    """Contacts, companies, deals and associations from HubSpot."""

    name = "hubspot"
    spec = HubspotConfig

    def client(self, config: HubspotConfig) -> HttpClient:
        budget = RequestBudget(config.requests_per_10_seconds, 10.0) if config.requests_per_10_seconds else None
        client = HttpClient(
            config.base_url, auth=BearerAuth(config.access_token, field="access_token"), connector=self.name,
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_retry_time), budget=budget,
        )
        client.session.hooks["response"].append(_hubspot_wait)
        return client

    # ------------------------------------------------------------------ the contract

    def discover(self, config: HubspotConfig) -> Catalog:
        streams = [
            Stream(name=kind, schema=SCHEMAS[kind], primary_key=("id",), cursor_field="updated_at", cursor_sorted=True,
                   sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
                   description=f"HubSpot {kind}, archived ones included (archived = true).")
            for kind in OBJECT_TYPES
        ]
        streams.append(Stream(
            name="associations", schema=ASSOCIATIONS_SCHEMA,
            primary_key=("from_type", "from_id", "to_type", "to_id", "association_type"),
            description="Links between live records: contact→company, contact→deal, deal→company (full refresh; "
                        "write with replace so removed links go)."))
        return Catalog(tuple(streams))

    def check(self, config: HubspotConfig) -> None:
        with checking(self.client(config)) as client:
            for kind in OBJECT_TYPES:  # one request each: every scope the streams need
                with _explained(kind):
                    client.request("GET", f"/crm/v3/objects/{kind}", params={"limit": 1}, stream=kind)

    def read(self, config: HubspotConfig, request: ReadRequest) -> Iterator[Message]:
        name = request.stream.name
        if name not in (*OBJECT_TYPES, "associations"):
            raise ConfigError(f"no stream named {name!r}", hint=f"hubspot offers: {', '.join(OBJECT_TYPES)}, associations")
        client = self.client(config)
        try:
            with _explained(name):
                if name == "associations":
                    yield from self._read_associations(config, client, request)
                elif request.sync_mode is SyncMode.INCREMENTAL:
                    yield from self._read_incremental(config, client, name, request)
                else:
                    yield from self._read_full(config, client, name, request)
        finally:
            client.close()

    # ------------------------------------------------------------------ full refresh: list endpoints

    def _properties(self, config: HubspotConfig, client: HttpClient, kind: str) -> list[str]:
        names = [*TYPED[kind], MODIFIED[kind], "hs_object_id"]  # the last two drive the search windows
        if config.all_properties:
            body = client.request("GET", f"/crm/v3/properties/{kind}", stream=kind, parse=_json)
            names += [p["name"] for p in (body or {}).get("results", []) if p.get("name") not in names]
        return names

    def _pages(self, client: HttpClient, kind: str, params: dict[str, Any], stream: str,
               after: str | None = None) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """List pages of `kind` from `after`, each with the `after` of the page that follows (None: the last)."""
        seen: set[str] = set()
        while True:
            body = client.request("GET", f"/crm/v3/objects/{kind}", params={**params, **({"after": after} if after else {})},
                                  stream=stream, parse=_json) or {}
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            yield body.get("results") or [], after
            if not after:
                return
            if after in seen:
                raise FatalError(f"HubSpot returned the cursor {after!r} twice while listing {kind}",
                                 where=f"{self.name} / {stream}", hint="HubSpot's paging is looping; try again later")
            seen.add(after)

    def _read_phases(self, client: HttpClient, stream: str, phases: list[tuple[str, str, dict[str, Any]]],
                     state: dict[str, Any], rows: Any) -> Iterator[Message]:
        """A full refresh in phases (object type, params), each a list read. A list's `after` is
        a position in id order, not an offset, so checkpoints keep it: an interrupted full
        refresh resumes at the page after its last checkpoint (the engine hands that state back)."""
        names = [name for name, _, _ in phases]
        first = names.index(state["phase"]) if state.get("phase") in names else 0
        for n, (name, kind, params) in enumerate(phases[first:], start=first):
            start = state.get("after") if n == first else None
            for results, after in self._pages(client, kind, params, stream, start):
                batch = rows(kind, results)
                if batch.num_rows:
                    yield Batch(stream, batch)
                if after:
                    yield Checkpoint(stream, {"phase": name, "after": after})
                elif n + 1 < len(phases):
                    yield Checkpoint(stream, {"phase": names[n + 1], "after": None})

    def _read_full(self, config: HubspotConfig, client: HttpClient, kind: str,
                   request: ReadRequest) -> Iterator[Message]:
        properties = ",".join(self._properties(config, client, kind))
        phases = [(phase, kind, {"limit": config.page_size, "properties": properties, "archived": archived})
                  for phase, archived in (("live", "false"), ("archived", "true"))]
        yield from self._read_phases(client, kind, phases, request.state,
                                     lambda _, results: to_batch(results, SCHEMAS[kind]))

    def _read_associations(self, config: HubspotConfig, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        phases = [(kind, kind, {"limit": config.page_size, "properties": "hs_object_id", "associations": ",".join(targets)})
                  for kind, targets in ASSOCIATED.items()]

        def rows(kind: str, results: list[dict[str, Any]]) -> pa.RecordBatch:
            return pa.RecordBatch.from_pylist([
                {"from_type": kind, "from_id": r["id"], "to_type": to_type, "to_id": link["id"],
                 "association_type": link.get("type")}
                for r in results for to_type, block in (r.get("associations") or {}).items()
                for link in block.get("results", [])
            ], schema=ASSOCIATIONS_SCHEMA)

        yield from self._read_phases(client, "associations", phases, request.state, rows)

    # ------------------------------------------------------------------ incremental: search, then archived

    def _read_incremental(self, config: HubspotConfig, client: HttpClient, kind: str,
                          request: ReadRequest) -> Iterator[Message]:
        since: datetime | None = request.cursor_start
        archived_since = _archived_since(request.state, since)
        carried = {ARCHIVED_SINCE: archived_since.isoformat() if archived_since else None}
        properties = self._properties(config, client, kind)
        for results in self._search(config, client, kind, properties, since):
            yield Batch(kind, to_batch(results, SCHEMAS[kind]))
            yield Checkpoint(kind, carried)  # the engine adds the cursor: search pages come in its order
        # Archived records leave search; read them from the list, newest archive times only.
        for results, _ in self._pages(client, kind, {"limit": config.page_size, "archived": "true",
                                                    "properties": ",".join(properties)}, kind):
            fresh = [r for r in results if archived_since is None or _parse(r.get("archivedAt")) >= archived_since]
            if fresh:
                yield Batch(kind, to_batch(fresh, SCHEMAS[kind]))
        yield Checkpoint(kind, {})  # the archived phase is done: the next run starts from the cursor alone

    def _search(self, config: HubspotConfig, client: HttpClient, kind: str, properties: list[str],
                since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        """Pages of records modified at or after `since`, ascending, each page its own query."""
        modified = MODIFIED[kind]
        lower = _epoch_ms(since) if since else 0
        read_at_lower: set[str] = set()  # ids already yielded whose modification time is `lower`
        while True:
            body = self._search_page(config, client, kind, properties, [
                {"propertyName": modified, "operator": "GTE", "value": str(lower)}], modified)
            results = body.get("results") or []
            fresh = [r for r in results if r["id"] not in read_at_lower]
            if fresh:
                yield fresh
            if len(results) < config.search_page_size:
                return  # the window holds no more than this page
            last = _modified_ms(results[-1], modified)
            if last == lower:  # a whole page at one instant: read that instant in id order, then go on
                yield from self._search_instant(config, client, kind, properties, lower, read_at_lower)
                lower += 1
                read_at_lower = set()
                continue
            read_at_lower = {r["id"] for r in results if _modified_ms(r, modified) == last}
            lower = last

    def _search_instant(self, config: HubspotConfig, client: HttpClient, kind: str, properties: list[str],
                        instant: int, done: set[str]) -> Iterator[list[dict[str, Any]]]:
        last_id = 0
        while True:
            body = self._search_page(config, client, kind, properties, [
                {"propertyName": MODIFIED[kind], "operator": "EQ", "value": str(instant)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)}], "hs_object_id")
            results = body.get("results") or []
            fresh = [r for r in results if r["id"] not in done]
            if fresh:
                yield fresh
            if len(results) < config.search_page_size:
                return
            last_id = int(results[-1]["id"])

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

    def _search_page(self, config: HubspotConfig, client: HttpClient, kind: str, properties: list[str],
                     filters: list[dict[str, Any]], sort: str) -> dict[str, Any]:
        query = {"filterGroups": [{"filters": filters}], "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                 "properties": properties, "limit": config.search_page_size}
        budget = self._search_budget(config)
        if budget is not None:
            budget.acquire()
        return client.request("POST", f"/crm/v3/objects/{kind}/search", json=query, stream=kind, parse=_json) or {}


# ---------------------------------------------------------------------- records to Arrow


def to_batch(results: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """HubSpot objects as a batch of `schema`: top-level fields, typed properties, all properties as JSON.

    Property values are strings; each column is cast to its declared type in bulk, and a column
    holding a value that does not cast is handed over as text, so the engine quarantines only
    the rows at fault (with a reason) instead of the read failing."""
    columns = []
    for f in schema:
        if f.name == "properties":
            values: list[Any] = [json.dumps(r.get("properties") or {}, separators=(",", ":")) for r in results]
        elif f.name in ("id", "archived"):
            values = [r.get(f.name) for r in results]
        elif f.name in ("created_at", "updated_at", "archived_at"):
            key = {"created_at": "createdAt", "updated_at": "updatedAt", "archived_at": "archivedAt"}[f.name]
            values = [r.get(key) for r in results]
        else:
            values = [(r.get("properties") or {}).get(f.name) for r in results]
        columns.append(_typed(values, f))
    return pa.RecordBatch.from_arrays(columns, names=schema.names)


def _typed(values: list[Any], f: pa.Field) -> pa.Array:
    if is_json_field(f) or pa.types.is_string(f.type):
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string())
    if pa.types.is_boolean(f.type) and all(v is None or isinstance(v, bool) for v in values):
        return pa.array(values, pa.bool_())
    text = pa.array([None if v in (None, "") else v if isinstance(v, str) else json.dumps(v) for v in values], pa.string())
    try:
        return text.cast(f.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return text  # the engine casts again and quarantines the rows that do not fit, with reasons


def _json(response: requests.Response) -> Any:
    expect_json_response(response)
    try:
        return json.loads(response.content)  # the stdlib's C decoder: requests may pick a slower simplejson
    except ValueError:
        from threadline.http.actions import MalformedJson

        raise MalformedJson("the response is not valid JSON") from None


def _parse(text: str | None) -> datetime:
    if not text:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(text)


def _modified_ms(record: dict[str, Any], prop: str) -> int:
    """The record's last-modified time as the search filters it (the property, else updatedAt)."""
    return _epoch_ms(_parse((record.get("properties") or {}).get(prop) or record.get("updatedAt")))


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


class _explained:
    """A 403 for missing scopes names the scope the stream needs; 401s say what to do."""

    def __init__(self, stream: str) -> None:
        kinds = OBJECT_TYPES if stream == "associations" else (stream,)
        self.scopes = ", ".join(f"crm.objects.{kind}.read" for kind in kinds)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if not isinstance(exc, ConfigError) or exc.field != "access_token":
            return False
        if "answered 403" in exc.message:  # HubSpot answers 403 only for missing scopes (MISSING_SCOPES)
            raise ConfigError(
                f"the private app token lacks a scope this stream needs ({self.scopes}): {exc.message}",
                field="access_token",
                where=exc.where, hint="in HubSpot: Settings → Integrations → Private Apps → Scopes; add the CRM "
                "read scopes for contacts, companies and deals, then use the new token") from None
        if "answered 401" in exc.message:
            raise ConfigError(
                f"HubSpot refused the access token (expired, rotated or revoked): {exc.message}", field="access_token",
                where=exc.where, hint="copy the private app's current token into HUBSPOT_ACCESS_TOKEN (HubSpot "
                "Settings → Integrations → Private Apps → Auth)") from None
        return False
