"""Zendesk under threadline's source contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any, ClassVar

from threadline.testing import SourceContract
from threadline_zendesk import ZendeskSource
from threadline_zendesk.sandbox import ZendeskSandbox
from threadline_zendesk.source import (
    IDENTITIES_SCHEMA,
    RATINGS_SCHEMA,
    TICKETS_SCHEMA,
    USERS_SCHEMA,
)

SCHEMAS = {"users": USERS_SCHEMA, "tickets": TICKETS_SCHEMA, "satisfaction_ratings": RATINGS_SCHEMA,
           "user_identities": IDENTITIES_SCHEMA}


def expected(stream: str, item: dict[str, Any]) -> dict[str, Any]:
    """An item as the stream delivers it: declared fields, the rest under `extra`."""
    names = set(SCHEMAS[stream].names)
    extra = {k: v for k, v in item.items() if k not in names}
    return {**{k: v for k, v in item.items() if k in names}, "extra": extra or None}


def config_for(sandbox: ZendeskSandbox, **overrides: Any) -> dict[str, Any]:
    return {"base_url": sandbox.base_url, "email": sandbox.EMAIL, "api_token": sandbox.API_TOKEN, "per_page": 60,
            "ratings_page_size": 25, "requests_per_minute": None, "backoff_base": 0.01, "max_retry_time": 5, **overrides}


class TestZendeskContract(SourceContract):
    source = ZendeskSource
    sandbox = ZendeskSandbox
    sandbox_options: ClassVar[dict[str, Any]] = {"users": 200, "tickets": 240, "ratings": 70, "export_rate_limit": 10_000, "rate_limit": 10_000}
    bad_config: ClassVar[dict[str, Any]] = {"base_url": "http://127.0.0.1:9", "api_token": "not-the-token"}
    credential_field = "api_token"
    data_path = "/api/v2/"

    def config(self, sandbox):
        return config_for(sandbox)

    def expected_records(self, sandbox):
        return {"users": [expected("users", u) for u in sandbox.users],
                "tickets": [expected("tickets", t) for t in sandbox.tickets],
                "satisfaction_ratings": [expected("satisfaction_ratings", r) for r in sandbox.ratings],
                "user_identities": [expected("user_identities", i) for i in sandbox.identities]}

    def change(self, sandbox):
        users = sandbox.add_users(2) + sandbox.update_users([sandbox.users[5]["id"], sandbox.users[9]["id"]])
        tickets = sandbox.add_tickets(3) + sandbox.update_tickets([4, 8])
        ratings = sandbox.add_ratings(2)
        tickets = [t for t in sandbox.tickets if t["id"] in {x["id"] for x in tickets} | {r["ticket_id"] for r in ratings}]
        identities = [i for u in users for i in sandbox.identities_of(u)]  # read again with their users
        return {"users": [expected("users", u) for u in users], "tickets": [expected("tickets", t) for t in tickets],
                "satisfaction_ratings": [expected("satisfaction_ratings", r) for r in ratings],
                "user_identities": [expected("user_identities", i) for i in identities]}
