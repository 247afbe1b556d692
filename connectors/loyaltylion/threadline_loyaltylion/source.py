"""The `loyaltylion` source: loyalty customers (points balances, tiers) and points transactions
from the LoyaltyLion Admin API v2, declared on the HTTP kit.

- Records are nested (`loyalty_tier_membership.loyalty_tier.name`, `customer.merchant_id`):
  columns are paths into them, read in bulk.
- Pages follow `cursor.next`, sent back as `?cursor=`.
- Results come newest first (by id), not in cursor order, so the engine saves the cursor
  only at the end of a stream.
- `since_id` means "after this id" and the engine's cursor is inclusive, so the transactions
  cursor is sent one lower (`cursor_exclusive`).
- A rate-limit wait longer than `max_rate_limit_wait` pauses the stream (the kit's RestSource).
"""

from __future__ import annotations

from pydantic import Field

from threadline.contracts import Spec
from threadline.http import BodyCursorPaginator, HttpClient, RestSource, RestStream, schema_from_mapping
from threadline_loyaltylion.client import loyaltylion_client

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
_TIER = "loyalty_tier_membership"
CUSTOMER_COLUMNS = {
    "phone": "properties.phone", "first_name": "properties.first_name", "last_name": "properties.last_name",
    "tier_id": f"{_TIER}.loyalty_tier.id", "tier_name": f"{_TIER}.loyalty_tier.name",
    "tier_number": f"{_TIER}.loyalty_tier.number", "tier_started_at": f"{_TIER}.started_at",
    "tier_expires_at": f"{_TIER}.expires_at", "tier_manual": f"{_TIER}.manual",
    "referred_by_id": "referred_by.id", "referred_by_merchant_id": "referred_by.merchant_id",
}

TRANSACTIONS_SCHEMA = schema_from_mapping({
    "id": "int64", "customer_id": "int64", "customer_merchant_id": "string", "customer_email": "string",
    "points": "int64", "status": "string", "resource": "string", "resource_id": "string",
    "merchant_order_id": "string", "created_at": "timestamp",
})
TRANSACTION_COLUMNS = {
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


class LoyaltylionSource(RestSource[LoyaltylionConfig]):
    """Loyalty customers and points transactions from LoyaltyLion."""

    name = "loyaltylion"
    spec = LoyaltylionConfig
    vendor = "LoyaltyLion"
    wait_for_bare_429 = None  # LoyaltyLion always says how long (Retry-After)

    def client(self, config: LoyaltylionConfig) -> HttpClient:
        return loyaltylion_client(config, self.name)

    def streams(self, config: LoyaltylionConfig) -> list[RestStream]:
        paginator = BodyCursorPaginator(cursor_path="cursor.next", cursor_param="cursor")
        return [
            RestStream(
                name="customers", path="/customers", records_path="customers", schema=CUSTOMERS_SCHEMA,
                columns=CUSTOMER_COLUMNS, primary_key=("id",), cursor_field="updated_at", cursor_param="updated_at_min",
                params={"limit": config.page_size}, paginator=paginator,
                description="Loyalty accounts: points balances, tier, enrolment, and the identifiers of the person.",
            ),
            RestStream(
                name="transactions", path="/transactions", records_path="transactions", schema=TRANSACTIONS_SCHEMA,
                columns=TRANSACTION_COLUMNS, primary_key=("id",), cursor_field="id", cursor_param="since_id",
                cursor_exclusive=True, params={"limit": config.page_size}, paginator=paginator,
                description="Points earned, spent, adjusted and expired, per loyalty account.",
            ),
        ]
