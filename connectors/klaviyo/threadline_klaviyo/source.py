"""The `klaviyo` source: profiles (with email and SMS consent), lists, list memberships and
events from Klaviyo's revision-dated JSON:API, declared on the HTTP kit.

Streams page by `links.next`. Records keep their fields under `attributes` and their links
under `relationships`: columns are paths into them, read in bulk. The incremental filter is a
JSON:API expression (`filter=greater-than(updated,<time>)`, the operators Klaviyo allows on
each field); memberships fan out over the
lists (`/lists/{list_id}/profiles`); an event's metric name comes from the page's `included`
metrics (the one hook written here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from threadline.contracts import Spec
from threadline.http import (
    Column, Fixed, FromParent, HttpClient, NextUrlPaginator, ParsedPage, RestSource, RestStream, schema_from_mapping,
)
from threadline_klaviyo.client import BASE_URL_HINT, DEFAULT_REVISION, klaviyo_client

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+00:00"

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
PROFILES_COLUMNS = {
    **{name: f"attributes.{name}" for name in (
        "email", "phone_number", "external_id", "first_name", "last_name", "locale", "created", "updated",
        "last_event_date", "properties")},
    "organization": Column("attributes.organization", blank_is_null=True),
    **{name: f"attributes.location.{name}" for name in ("city", "country", "zip", "timezone")},
    "email_consent": f"{_EMAIL}.consent", "email_consent_timestamp": f"{_EMAIL}.consent_timestamp",
    "email_can_receive_marketing": f"{_EMAIL}.can_receive_email_marketing",
    "email_suppression_reason": f"{_EMAIL}.suppression[0].reason",
    "sms_consent": f"{_SMS}.consent", "sms_consent_timestamp": f"{_SMS}.consent_timestamp",
}

LISTS_SCHEMA = schema_from_mapping({
    "id": "string", "name": "string", "created": "timestamp", "updated": "timestamp", "opt_in_process": "string",
})
LISTS_COLUMNS = {n: f"attributes.{n}" for n in ("name", "created", "updated", "opt_in_process")}

MEMBERSHIPS_SCHEMA = schema_from_mapping({
    "list_id": "string", "profile_id": "string", "email": "string", "phone_number": "string",
    "external_id": "string", "joined_group_at": "timestamp",
})
MEMBERSHIPS_COLUMNS = {
    "profile_id": "id", "email": "attributes.email", "phone_number": "attributes.phone_number",
    "external_id": "attributes.external_id", "joined_group_at": "attributes.joined_group_at",
}

EVENTS_SCHEMA = schema_from_mapping({
    "id": "string", "profile_id": "string", "metric_id": "string", "metric_name": "string",
    "datetime": "timestamp", "timestamp": "int64", "uuid": "string", "value": "float64", "campaign_name": "string",
    "event_properties": "json",
})
EVENTS_COLUMNS = {
    "profile_id": "relationships.profile.data.id", "metric_id": "relationships.metric.data.id",
    "datetime": "attributes.datetime", "timestamp": "attributes.timestamp", "uuid": "attributes.uuid",
    "value": "attributes.event_properties.$value", "event_properties": "attributes.event_properties",
    # the campaign an email event belongs to (Opened Email, Clicked Email): for campaign results
    "campaign_name": "attributes.event_properties.Campaign Name",
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
class EventPages(RestStream):
    """Events: the metric's name comes from the page's `included` metrics (a JSON:API sideload)."""

    def parse_page(self, response: Any) -> ParsedPage:
        page = super().parse_page(response)
        metrics = [m for m in page.body.get("included") or [] if isinstance(m, dict) and m.get("type") == "metric"]
        ids = pa.array([m.get("id") for m in metrics], pa.string())
        names = pa.array([(m.get("attributes") or {}).get("name") for m in metrics], pa.string())
        records = page.records
        index = records.schema.get_field_index("metric_name")
        found = pc.take(names, pc.index_in(records.column("metric_id"), value_set=ids))
        page.records = records.set_column(index, "metric_name", found)
        return page


def _filtered(field: str, operator: str = "greater-or-equal") -> dict[str, Any]:
    """An incremental filter on `field`, as Klaviyo's JSON:API expression. Klaviyo allows each
    field its own operators: where `greater-or-equal` is not one (profiles' `updated` takes only
    greater-than / less-than), the cursor goes one second early to stay inclusive."""
    return {"cursor_field": field, "cursor_param": "filter", "cursor_template": f"{operator}({field},{{}})",
            "cursor_format": TIME_FORMAT, "cursor_exclusive": operator == "greater-than"}


class KlaviyoSource(RestSource[KlaviyoConfig]):
    """Profiles, lists, list memberships and events from the Klaviyo API."""

    name = "klaviyo"
    spec = KlaviyoConfig
    vendor = "Klaviyo"
    base_url_hint = BASE_URL_HINT

    def client(self, config: KlaviyoConfig) -> HttpClient:
        return klaviyo_client(config, self.name)

    def streams(self, config: KlaviyoConfig) -> list[RestStream]:
        pages = NextUrlPaginator("links.next")
        lists = RestStream(name="lists", path="/lists", schema=LISTS_SCHEMA, columns=LISTS_COLUMNS, primary_key=("id",),
                           paginator=pages, description="Lists.")
        return [
            RestStream(
                name="profiles", path="/profiles", schema=PROFILES_SCHEMA, columns=PROFILES_COLUMNS,
                primary_key=("id",), cursor_sorted=True, paginator=pages, **_filtered("updated", "greater-than"),
                params={"page[size]": config.page_size, "sort": "updated", "additional-fields[profile]": "subscriptions"},
                description="Profiles with identifiers and email/SMS consent.",
            ),
            lists,
            RestStream(
                name="list_memberships", path="/lists/{list_id}/profiles", schema=MEMBERSHIPS_SCHEMA,
                columns=MEMBERSHIPS_COLUMNS, primary_key=("list_id", "profile_id"), paginator=pages,
                **_filtered("joined_group_at"),  # in join order within a list, not across lists: unsorted
                params={"page[size]": config.page_size, "sort": "joined_group_at",
                        "fields[profile]": "email,phone_number,external_id,joined_group_at"},
                partitions=(Fixed(items=[{"list_id": i} for i in config.list_ids], field="list_ids", noun="list")
                            if config.list_ids else
                            FromParent(stream=lists, keys_from={"list_id": "id"}, label="name", noun="list")),
                description="Who is on which list, since when.",
            ),
            EventPages(
                name="events", path="/events", schema=EVENTS_SCHEMA, columns=EVENTS_COLUMNS, primary_key=("id",),
                cursor_sorted=True, paginator=pages, params={"sort": "datetime", "include": "metric"},
                **_filtered("datetime"),
                description="Events (Opened Email, Clicked Email, Placed Order, ...) with their metric's name.",
            ),
        ]

    def probes(self, config: KlaviyoConfig) -> list[RestStream]:
        """Profiles, lists and events; memberships only of the lists the config names."""
        return [s for s in self.streams(config) if s.name != "list_memberships" or config.list_ids]
