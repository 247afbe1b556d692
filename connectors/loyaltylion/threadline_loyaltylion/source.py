"""The `loyaltylion` source: loyalty customers (points balances, tiers) and points transactions
from the LoyaltyLion Admin API v2.

Both streams are `RestStream` declarations with the kit's cursor paginator (`cursor.next`,
sent back as `?cursor=`); what is unusual is written around them:

- Records are nested (`loyalty_tier_membership.loyalty_tier.name`, `customer.merchant_id`), so
  pages are flattened by column paths (columns.py).
- Results come newest first (by id), not in cursor order, so the engine saves the cursor only
  at the end of a stream; this source copies the saved cursor into every checkpoint, since the
  engine stores a checkpoint's state as it is.
- `since_id` means "after this id" and the engine's cursor is inclusive, so the transactions
  cursor is sent one lower.
- A rate-limit wait longer than `max_rate_limit_wait` stops the stream cleanly, with the
  cursor saved and the time to resume.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests
from pydantic import Field

from threadline.contracts import (
    Catalog, Checkpoint, ConfigError, Message, ReadRequest, Source, Spec, TransientError,
)
from threadline.http.pause import stop_for_rate_limit
from threadline.http.source import checking, read_first_page
from threadline.http import BearerAuth, BodyCursorPaginator, HttpClient, RequestBudget, RestStream, RetryPolicy, schema_from_mapping
from threadline.http.actions import MalformedJson
from threadline.http.client import expect_json_response
from threadline.http.records import ParsedPage, RecordsPathMissing
from threadline_loyaltylion.columns import raw_type, to_batch

CURSOR_KEY = "cursor"  # the engine's key for the saved cursor in a stream's state

CUSTOMERS_SCHEMA = schema_from_mapping({
    "id": "int64", "merchant_id": "string", "email": "string", "phone": "string",
    "first_name": "string", "last_name": "string",
    "points_approved": "int64", "points_pending": "int64", "points_spent": "int64", "rewards_claimed": "int64",
    "tier_id": "int64", "tier_name": "string", "tier_number": "int64", "tier_started_at": "timestamp",
    "tier_expires_at": "timestamp", "tier_manual": "bool",
    "enrolled": "bool", "enrolled_at": "timestamp", "guest": "bool", "blocked": "bool",
    "referral_id": "string", "referred_by_id": "int64", "referred_by_merchant_id": "string",
    "insights_segment": "string", "birthday": "date", "linked_merchant_ids": "list<string>",
    "properties": "json", "created_at": "timestamp", "updated_at": "timestamp",
})
CUSTOMER_PATHS = {
    "phone": "properties.phone", "first_name": "properties.first_name", "last_name": "properties.last_name",
    "tier_id": "loyalty_tier_membership.loyalty_tier.id", "tier_name": "loyalty_tier_membership.loyalty_tier.name",
    "tier_number": "loyalty_tier_membership.loyalty_tier.number",
    "tier_started_at": "loyalty_tier_membership.started_at", "tier_expires_at": "loyalty_tier_membership.expires_at",
    "tier_manual": "loyalty_tier_membership.manual",
    "referred_by_id": "referred_by.id", "referred_by_merchant_id": "referred_by.merchant_id",
}

TRANSACTIONS_SCHEMA = schema_from_mapping({
    "id": "int64", "customer_id": "int64", "customer_merchant_id": "string", "customer_email": "string",
    "points": "int64", "status": "string", "resource": "string", "resource_id": "string",
    "merchant_order_id": "string", "created_at": "timestamp",
})
TRANSACTION_PATHS = {
    "customer_id": "customer.id", "customer_merchant_id": "customer.merchant_id", "customer_email": "customer.email",
}


class LoyaltylionConfig(Spec):
    api_key: str = Field(description="A LoyaltyLion API key (`pat_…`, scope read_customers), sent as a Bearer token. "
                                     "Use ${LOYALTYLION_API_KEY} in the job file.")
    base_url: str = Field("https://api.loyaltylion.com/v2", description="The API root; the sandbox's URL + /v2 in tests.")
    page_size: int = Field(500, ge=1, le=500, description="Records per page (`limit`, 1 to 500).")
    requests_per_second: int = Field(20, ge=1, description="Requests per second this connector sends at most "
                                                           "(LoyaltyLion allows 20 per key).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(
        300.0, gt=0, description="Longest this run waits out a rate limit or retries; a longer wait stops the "
                                 "stream cleanly with its state saved and the time to resume.")



class LoyaltyPages(RestStream):
    """A LoyaltyLion collection: records at `records_path`, flattened by column `paths`."""

    paths: dict[str, str] = {}
    since_id_cursor: bool = False  # the cursor is an id sent as `since_id` (exclusive)

    def format_cursor(self, value: Any) -> str:
        if self.since_id_cursor:
            return str(int(value) - 1)  # "after this id"; the engine's cursor is inclusive
        return super().format_cursor(value)

    def parse_page(self, response: requests.Response) -> ParsedPage:
        expect_json_response(response)
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise MalformedJson(f"the response is not valid JSON ({exc})") from None
        records = body.get(self.records_path) if isinstance(body, dict) else None
        if not isinstance(records, list):
            keys = ", ".join(body) if isinstance(body, dict) else "-"
            raise RecordsPathMissing(f"no {self.records_path!r} list in the answer (keys: {keys})")
        assert not isinstance(self.schema, dict)
        if not hasattr(self, "_raw"):
            self._raw = raw_type(self.schema, self.paths)
        batch = to_batch(records, self.schema, self.paths, self._raw)
        return ParsedPage(batch, {k: v for k, v in body.items() if k != self.records_path}, response)


class LoyaltylionSource(Source[LoyaltylionConfig]):
    """Loyalty customers and points transactions from LoyaltyLion."""

    name = "loyaltylion"
    spec = LoyaltylionConfig

    def client(self, config: LoyaltylionConfig) -> HttpClient:
        return HttpClient(
            config.base_url,
            auth=BearerAuth(config.api_key, field="api_key"),
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
            budget=RequestBudget(calls=config.requests_per_second, per_seconds=1.0),
            connector=self.name,
        )

    def streams(self, config: LoyaltylionConfig) -> list[LoyaltyPages]:
        paginator = BodyCursorPaginator(cursor_path="cursor.next", cursor_param="cursor")
        customers = LoyaltyPages(
            name="customers", path="/customers", records_path="customers", schema=CUSTOMERS_SCHEMA,
            primary_key=("id",), cursor_field="updated_at", cursor_param="updated_at_min", cursor_sorted=False,
            params={"limit": config.page_size}, paginator=paginator,
            description="Loyalty accounts: points balances, tier, enrolment, and the identifiers of the person.",
        )
        customers.paths = CUSTOMER_PATHS
        transactions = LoyaltyPages(
            name="transactions", path="/transactions", records_path="transactions", schema=TRANSACTIONS_SCHEMA,
            primary_key=("id",), cursor_field="id", cursor_param="since_id", cursor_sorted=False,
            params={"limit": config.page_size}, paginator=paginator,
            description="Points earned, spent, adjusted and expired, per loyalty account.",
        )
        transactions.paths = TRANSACTION_PATHS
        transactions.since_id_cursor = True
        return [customers, transactions]

    def discover(self, config: LoyaltylionConfig) -> Catalog:
        return Catalog(tuple(s.to_stream() for s in self.streams(config)))

    def check(self, config: LoyaltylionConfig) -> None:
        with checking(self.client(config)) as client:
            try:
                for stream in self.streams(config):
                    read_first_page(stream, client)
            except ConfigError as exc:
                if "403" in exc.message:
                    raise ConfigError(exc.message, field="api_key", where=exc.where,
                                      hint="the API key lacks a scope: give it read_customers in LoyaltyLion "
                                           "(Manage → API keys)") from None
                raise

    def read(self, config: LoyaltylionConfig, request: ReadRequest) -> Iterator[Message]:
        declared = {s.name: s for s in self.streams(config)}
        stream = declared.get(request.stream.name)
        if stream is None:
            raise ConfigError(f"no stream named {request.stream.name!r}", hint=f"declared: {', '.join(declared)}")
        # The saved cursor goes into every checkpoint: records are not in cursor order, so the
        # engine keeps the cursor only at the end, and stores each checkpoint's state as it is.
        carried = {CURSOR_KEY: request.state[CURSOR_KEY]} if CURSOR_KEY in request.state else {}
        client = self.client(config)
        try:
            for message in stream.read(client, request):
                yield Checkpoint(message.stream, carried) if isinstance(message, Checkpoint) else message
        except TransientError as exc:
            yield from stop_for_rate_limit(exc, vendor="LoyaltyLion", stream=request.stream.name, connector=self.name,
                                           state=carried, max_wait=config.max_rate_limit_wait)
        finally:
            client.close()
