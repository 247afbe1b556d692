"""The `shopify` source: customers and orders (with their line items) from the Admin REST API.

Streams are `RestStream` declarations paged by the `Link: <...page_info=...>; rel="next"`
header (`LinkHeaderPaginator`); incremental reads send `updated_at_min` (inclusive). What is
particular to Shopify:

- Throttling is a leaky bucket that every answer describes (`X-Shopify-Shop-Api-Call-Limit:
  32/40`). `LeakyBucket` reads that header and, before the next call, waits until the bucket
  has drained below `bucket_headroom` free calls, so a full sync rarely meets a 429; a 429
  that comes anyway is waited out as its `Retry-After: 2.0` says (the kit's client does that).
- Nested values are kept as Arrow structs and lists of structs (addresses, consent, line items,
  the order's customer), money as decimal(18,2), timestamps as timestamps (UTC).
- Records come in id order, not updated_at order, so the cursor is saved at the end of a
  stream; every checkpoint carries the cursor the run started from, so a crash mid-stream
  resumes from there rather than from the beginning.
- Shopify answers a retired API version with the oldest supported one and says so only in
  `X-Shopify-API-Version`: an answer from another version than `api_version` is a config
  error naming `api_version`, not a silent change of schema.
- Without the `read_all_orders` scope Shopify shows only the last 60 days of orders, with no
  error. Before reading orders the connector asks which scopes the token has
  (`/admin/oauth/access_scopes.json`): without that one, an order stream stops with a config
  error naming `access_token`, unless `all_orders: false` says 60 days are enough (then it
  warns once).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import requests
from pydantic import Field
from threadline.contracts import (
    Checkpoint,
    ConfigError,
    Message,
    ReadRequest,
    Rejected,
    Spec,
    TransientError,
)
from threadline.http import (
    ApiKeyAuth,
    HttpClient,
    LinkHeaderPaginator,
    RequestBudget,
    RestSource,
    RestStream,
    RetryPolicy,
)
from threadline.http.records import PageParser, ParsedPage
from threadline.http.source import checking
from threadline.secrets import register_secret

log = logging.getLogger("threadline.shopify")

# The newest stable Admin API version, checked against Shopify's versioning page on 2026-12-06
# (supported then: 2026-01, 2026-04, 2026-07, 2026-10; each for twelve months).
API_VERSION = "2026-10"
ALL_ORDERS_SCOPE = "read_all_orders"
ORDER_STREAMS = ("orders", "order_line_items")
CURSOR_KEY = "cursor"  # the engine's key for the saved cursor in a stream's state
MONEY = pa.decimal128(18, 2)
TIME = pa.timestamp("us", tz="UTC")

ADDRESS = pa.struct([
    ("id", pa.int64()), ("first_name", pa.string()), ("last_name", pa.string()), ("company", pa.string()),
    ("address1", pa.string()), ("address2", pa.string()), ("city", pa.string()), ("province", pa.string()),
    ("province_code", pa.string()), ("country", pa.string()), ("country_code", pa.string()), ("zip", pa.string()),
    ("phone", pa.string()), ("name", pa.string()), ("default", pa.bool_()),
])
ORDER_ADDRESS = pa.struct([f for f in ADDRESS if f.name not in ("id", "default")])

CUSTOMERS_SCHEMA = pa.schema([
    ("id", pa.int64()), ("email", pa.string()), ("phone", pa.string()), ("first_name", pa.string()),
    ("last_name", pa.string()), ("state", pa.string()), ("verified_email", pa.bool_()), ("tags", pa.string()),
    ("note", pa.string()), ("currency", pa.string()), ("tax_exempt", pa.bool_()), ("created_at", TIME),
    ("updated_at", TIME), ("orders_count", pa.int64()), ("total_spent", MONEY), ("last_order_id", pa.int64()),
    ("last_order_name", pa.string()),
    ("email_marketing_state", pa.string()), ("email_marketing_opt_in_level", pa.string()),
    ("email_marketing_consent_updated_at", TIME), ("sms_marketing_state", pa.string()),
    ("sms_marketing_opt_in_level", pa.string()), ("sms_marketing_consent_updated_at", TIME),
    ("default_address", ADDRESS), ("addresses", pa.list_(ADDRESS)), ("admin_graphql_api_id", pa.string()),
])
LINE_ITEM = pa.struct([
    ("id", pa.int64()), ("product_id", pa.int64()), ("variant_id", pa.int64()), ("title", pa.string()),
    ("variant_title", pa.string()), ("sku", pa.string()), ("vendor", pa.string()), ("quantity", pa.int64()),
    ("price", MONEY), ("total_discount", MONEY), ("taxable", pa.bool_()), ("gift_card", pa.bool_()),
    ("fulfillment_status", pa.string()),
])
ORDERS_SCHEMA = pa.schema([
    ("id", pa.int64()), ("name", pa.string()), ("order_number", pa.int64()), ("email", pa.string()),
    ("contact_email", pa.string()), ("phone", pa.string()),
    ("customer", pa.struct([("id", pa.int64()), ("email", pa.string()), ("phone", pa.string()),
                            ("first_name", pa.string()), ("last_name", pa.string())])),
    ("created_at", TIME), ("updated_at", TIME), ("processed_at", TIME), ("cancelled_at", TIME),
    ("cancel_reason", pa.string()), ("closed_at", TIME), ("financial_status", pa.string()),
    ("fulfillment_status", pa.string()), ("currency", pa.string()), ("total_price", MONEY),
    ("subtotal_price", MONEY), ("total_tax", MONEY), ("total_discounts", MONEY), ("total_line_items_price", MONEY),
    ("tags", pa.string()), ("source_name", pa.string()), ("buyer_accepts_marketing", pa.bool_()), ("test", pa.bool_()),
    ("billing_address", ORDER_ADDRESS), ("shipping_address", ORDER_ADDRESS),
])
# One row per line item, with its order's id and updated_at (the stream's cursor).
LINE_ITEMS_SCHEMA = pa.schema([("order_id", pa.int64()), ("order_updated_at", TIME), *LINE_ITEM])
CONSENT = pa.struct([("state", pa.string()), ("opt_in_level", pa.string()), ("consent_updated_at", TIME)])
_CONSENTS = {"email_marketing": "email_marketing_consent", "sms_marketing": "sms_marketing_consent"}
# Customers as the page holds them: consent as objects, flattened by `flatten_consent`.
_CUSTOMERS_PAGE = pa.schema([f for f in CUSTOMERS_SCHEMA if not f.name.startswith(tuple(_CONSENTS))]
                            + [(key, CONSENT) for key in _CONSENTS.values()])
_LINE_ITEMS_PAGE = pa.schema([("id", pa.int64()), ("updated_at", TIME), ("line_items", pa.list_(LINE_ITEM))])

_CALL_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShopifyConfig(Spec):
    shop_url: str = Field(description="The shop's admin URL, https://your-shop.myshopify.com (the sandbox's URL in tests).")
    access_token: str = Field(description="An Admin API access token (shpat_...) with read_customers, read_orders and "
                                          "read_all_orders. Use ${SHOPIFY_ACCESS_TOKEN} in the job file.")
    api_version: str = Field(API_VERSION, pattern=r"^(\d{4}-(01|04|07|10)|unstable)$",
                             description="Admin API version: a quarterly release (YYYY-01, -04, -07, -10) Shopify still "
                                         "supports, or unstable.")
    all_orders: bool = Field(True, description="Read every order: a token without the read_all_orders scope (which "
                                               "sees only the last 60 days) is a config error. false: the last 60 days "
                                               "are enough, a warning is logged.")
    page_size: int = Field(250, ge=1, le=250, description="Records per page (`limit`; Shopify allows 1 to 250).")
    order_status: str = Field("any", pattern=r"^(any|open|closed|cancelled)$",
                              description="Which orders to read (`status`); `any` includes closed and cancelled ones.")
    bucket_headroom: int = Field(4, ge=0, description="Free calls to keep in the leaky bucket: before a call, wait "
                                                      "while fewer than this are free (X-Shopify-Shop-Api-Call-Limit).")
    leak_rate: float = Field(2.0, gt=0, description="Calls per second the bucket drains (2 on standard plans, 20 on Plus).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(300.0, gt=0, description="Longest a request is retried or rate limited before "
                                                                "the stream stops (its state saved) with a transient error.")


class LeakyBucket(RequestBudget):
    """Shopify's bucket as the last answer described it: `acquire()` waits until at least
    `headroom` calls are free, counting the leak since that answer."""

    def __init__(self, leak_rate: float, headroom: int) -> None:
        super().__init__(calls=1, per_seconds=1 / leak_rate)
        self.leak_rate, self.headroom = leak_rate, headroom
        self.used, self.size, self.seen_at = 0.0, 0, 0.0
        self.waits: list[float] = []  # each wait, in seconds (tests and progress read it)
        self._bucket_lock = threading.Lock()

    def observe(self, response: requests.Response) -> None:
        match = _CALL_LIMIT.match(response.headers.get("X-Shopify-Shop-Api-Call-Limit", ""))
        if match:
            with self._bucket_lock:
                self.used, self.size, self.seen_at = float(match.group(1)), int(match.group(2)), time.monotonic()

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        with self._bucket_lock:
            if not self.size:
                return 0.0
            used = max(0.0, self.used - (time.monotonic() - self.seen_at) * self.leak_rate)
            wait = (used + 1 - (self.size - self.headroom)) / self.leak_rate
            self.used, self.seen_at = used + 1, time.monotonic()  # this call fills one more
        if wait <= 0:
            return 0.0
        self.waits.append(wait)
        sleep(wait)
        return wait


class ShopifyParser(PageParser):
    """The kit's parser, with nested columns (addresses, consent, line items) made to fit their
    declared types when the fast path could not take the page: ISO times with offsets and money
    strings inside them are converted, fields Shopify added are dropped. A record whose nested
    value cannot fit is noted in `bad` (row → reason), for the stream to quarantine whole."""

    bad: dict[int, str]

    def __call__(self, response: requests.Response) -> ParsedPage:
        self.bad = {}
        return super().__call__(response)

    def _column(self, f: pa.Field, values: list[Any]) -> pa.Array:
        if not pa.types.is_nested(f.type):
            return super()._column(f, values)
        shaped = []
        for row, value in enumerate(values):
            try:
                shaped.append(conform(value, f.type))
            except (TypeError, ValueError, ArithmeticError) as exc:
                self.bad.setdefault(row, f"{f.name}: {exc}")
                shaped.append(None)
        return pa.array(shaped, type=f.type)


def conform(value: Any, kind: pa.DataType) -> Any:
    """A JSON value shaped for `pa.array(..., type=kind)`; raises if it cannot be."""
    if value is None:
        return None
    if pa.types.is_struct(kind):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__} {str(value)[:40]!r}")
        return {field.name: conform(value.get(field.name), field.type) for field in kind}
    if pa.types.is_list(kind):
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__} {str(value)[:40]!r}")
        return [conform(v, kind.value_type) for v in value]
    if pa.types.is_timestamp(kind) and isinstance(value, str):
        return datetime.fromisoformat(value) if value else None
    if pa.types.is_decimal(kind) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return Decimal(str(value)) if value != "" else None
    expected = {pa.types.is_integer: int, pa.types.is_boolean: bool, pa.types.is_string: str,
                pa.types.is_floating: (int, float)}
    for test, kinds in expected.items():
        if test(kind) and (not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool)):
            raise TypeError(f"expected {kind}, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def flatten_consent(page: pa.RecordBatch) -> pa.RecordBatch:
    """Customers' consent objects as top-level columns (email_marketing_state, ...)."""
    columns = {name: page.column(name) for name in page.schema.names if name not in _CONSENTS.values()}
    for prefix, key in _CONSENTS.items():
        for part in ("state", "opt_in_level", "consent_updated_at"):
            columns[f"{prefix}_{part}"] = pc.struct_field(page.column(key), part)
    return pa.RecordBatch.from_arrays([columns[n] for n in CUSTOMERS_SCHEMA.names], names=CUSTOMERS_SCHEMA.names)


def explode_line_items(page: pa.RecordBatch) -> pa.RecordBatch:
    """One row per line item, with its order's id and updated_at, in Arrow (no loop per record)."""
    items = page.column("line_items")
    parents = pc.list_parent_indices(items)
    flat = pc.list_flatten(items)
    columns = [page.column("id").take(parents), page.column("updated_at").take(parents),
               *(pc.struct_field(flat, f.name) for f in LINE_ITEM)]
    return pa.RecordBatch.from_arrays(columns, names=LINE_ITEMS_SCHEMA.names)


class ShopifyStream(RestStream):
    """A Shopify list endpoint: `updated_at_min` on the first page only (page_info carries it),
    and each answer's call-limit header reported to the bucket. A page is parsed as
    `page_schema` and then `shape`d into the stream's schema when the two differ."""

    owner: ShopifySource | None = None  # whose client's bucket hears of each answer
    page_schema: pa.Schema | None = None
    shape: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None
    api_version: str = API_VERSION  # the version asked for; an answer from another one is refused

    def parse_page(self, response: requests.Response) -> ParsedPage:
        bucket = self.owner._bucket if self.owner is not None else None
        if bucket is not None:
            bucket.observe(response)
        check_version(self.api_version, response, f"shopify / {self.name}")
        parser = self._shop_parser
        page = parser(response)
        records = page.records
        if parser.bad:  # quarantined whole, as Shopify sent them, rather than half-read
            raw = json.loads(response.content)[self.records_path]
            self._rejected += [Rejected(self.name, [raw[row]], reason) for row, reason in sorted(parser.bad.items())]
            keep = pa.array([row not in parser.bad for row in range(records.num_rows)])
            records = records.filter(keep)
        if self.shape is not None:
            records = self.shape(records)
        return ParsedPage(records, page.body, page.response)

    def read(self, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        self._rejected: list[Rejected] = []
        for message in super().read(client, request):
            if isinstance(message, Checkpoint):
                yield from self._flush()
            yield message
        yield from self._flush()

    def _flush(self) -> Iterator[Rejected]:
        rejected, self._rejected = self._rejected, []
        yield from rejected

    @property
    def _shop_parser(self) -> ShopifyParser:
        parser = self.__dict__.get("_shop_parser_cache")
        if parser is None:
            assert isinstance(self.schema, pa.Schema)
            parser = self.__dict__["_shop_parser_cache"] = ShopifyParser(self.page_schema or self.schema, self.records_path)
        return parser


class ShopifySource(RestSource[ShopifyConfig]):
    """Customers and orders from a Shopify store."""

    name = "shopify"
    spec = ShopifyConfig

    def __init__(self) -> None:
        self._bucket: LeakyBucket | None = None

    def client(self, config: ShopifyConfig) -> HttpClient:
        register_secret(config.access_token)
        # One bucket per shop, shared by the streams read at once: Shopify has one per app and store.
        if self._bucket is None or (self._bucket.leak_rate, self._bucket.headroom) != (config.leak_rate, config.bucket_headroom):
            self._bucket = LeakyBucket(config.leak_rate, config.bucket_headroom)
        return HttpClient(
            f"{config.shop_url.rstrip('/')}/admin/api/{config.api_version}",
            auth=ApiKeyAuth(config.access_token, name="X-Shopify-Access-Token", field="access_token"),
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
            budget=self._bucket, connector=self.name,
        )

    def streams(self, config: ShopifyConfig) -> list[RestStream]:
        common: dict[str, Any] = {"primary_key": ("id",), "cursor_field": "updated_at",
                                  "cursor_param": "updated_at_min", "paginator": LinkHeaderPaginator()}
        orders = {"limit": config.page_size, "status": config.order_status}
        customers = ShopifyStream(
            name="customers", path="/customers.json", records_path="customers", schema=CUSTOMERS_SCHEMA,
            params={"limit": config.page_size}, **common,
            description="Customers with emails, phones, addresses and marketing consent.")
        customers.page_schema, customers.shape = _CUSTOMERS_PAGE, flatten_consent
        line_items = ShopifyStream(
            name="order_line_items", path="/orders.json", records_path="orders", schema=LINE_ITEMS_SCHEMA,
            params={**orders, "fields": "id,updated_at,line_items"}, **{**common, "cursor_field": "order_updated_at"},
            description="Every order's line items, one row each, with the order's id and updated_at.")
        line_items.page_schema, line_items.shape = _LINE_ITEMS_PAGE, explode_line_items
        streams = [
            customers,
            ShopifyStream(name="orders", path="/orders.json", records_path="orders", schema=ORDERS_SCHEMA, params=orders,
                          description="Orders with customer, addresses and totals (money as decimals).", **common),
            line_items,
        ]
        for stream in streams:
            stream.owner, stream.api_version = self, config.api_version
        return list(streams)

    def access_scopes(self, config: ShopifyConfig, client: HttpClient) -> set[str] | None:
        """The scopes the token was granted (`/admin/oauth/access_scopes.json`, unversioned);
        None if the answer does not list them."""
        url = f"{config.shop_url.rstrip('/')}/admin/oauth/access_scopes.json"
        response = client.request("GET", url, stream="access_scopes")
        try:
            scopes = response.json()["access_scopes"] if response is not None else None
            return {str(s["handle"]) for s in scopes}
        except (ValueError, KeyError, TypeError):
            return None

    def require_all_orders(self, config: ShopifyConfig, client: HttpClient, stream: str) -> None:
        """Stop (or warn, with `all_orders: false`) when the token sees only 60 days of orders."""
        scopes = self.access_scopes(config, client)
        if scopes is None:
            log.warning("shopify / %s: the shop did not list the token's access scopes; if it lacks %s, orders older "
                        "than 60 days are left out", stream, ALL_ORDERS_SCOPE)
            return
        if ALL_ORDERS_SCOPE in scopes:
            return
        message = (f"the access token lacks the {ALL_ORDERS_SCOPE} scope, so Shopify shows only the orders of the "
                   "last 60 days (older ones are left out without an error)")
        if config.all_orders:
            raise ConfigError(message, field="access_token", where=f"shopify / {stream}",
                              hint=f"give the app the {ALL_ORDERS_SCOPE} access scope and use its new token, or set "
                                   "all_orders: false to read only the last 60 days")
        log.warning("shopify / %s: %s; all_orders is false, so only those are read", stream, message)

    def check(self, config: ShopifyConfig) -> None:
        try:
            super().check(config)
        except ConfigError as exc:
            if exc.field == "base_url":  # RestSource.check's name for the API root; here it is shop_url
                raise ConfigError(exc.message, field="shop_url", where=exc.where,
                                  hint="check shop_url (https://your-shop.myshopify.com) and that it is reachable") from None
            raise _scoped(exc) from None
        with checking(self.client(config), field="shop_url") as client:
            try:
                self.require_all_orders(config, client, "orders")
            except ConfigError as exc:
                raise _scoped(exc) from None

    def read(self, config: ShopifyConfig, request: ReadRequest) -> Iterator[Message]:
        carried = {CURSOR_KEY: request.state[CURSOR_KEY]} if CURSOR_KEY in request.state else {}
        try:
            if request.stream.name in ORDER_STREAMS:
                client = self.client(config)
                try:
                    self.require_all_orders(config, client, request.stream.name)
                finally:
                    client.close()
            for message in super().read(config, request):
                yield Checkpoint(message.stream, carried) if isinstance(message, Checkpoint) else message
        except ConfigError as exc:
            raise _scoped(exc) from None
        except TransientError as exc:
            if exc.retry_after is None:
                raise
            raise TransientError(
                f"{exc.message} — Shopify kept throttling for longer than max_rate_limit_wait "
                f"({config.max_rate_limit_wait:g}s)", where=exc.where, retry_after=exc.retry_after,
                hint="every page read so far is committed; run the sync again later (it resumes from the saved "
                "state), lower page_size or raise max_rate_limit_wait",
            ) from None


def check_version(asked: str, response: requests.Response, where: str) -> None:
    """Shopify serves a retired version with the oldest supported one, saying so only in
    X-Shopify-API-Version: refuse the answer rather than read another version's schema."""
    served = response.headers.get("X-Shopify-API-Version")
    if served and served != asked:
        raise ConfigError(
            f"Shopify no longer serves API version {asked}: it answered with {served}", field="api_version",
            where=where, hint=f"set api_version to a supported version ({API_VERSION} was current on 2026-12-06) "
                              "after checking its release notes")


def _scoped(exc: ConfigError) -> ConfigError:
    """A 403 naming a missing scope says so, on the token's field."""
    found = re.search(r"for (read_\w+) scope", exc.message)
    if not found:
        return exc
    return ConfigError(
        f"the access token lacks the {found.group(1)} scope: {exc.message}", field="access_token", where=exc.where,
        hint=f"give the app the {found.group(1)} access scope (Admin API) and use its new token",
    )
