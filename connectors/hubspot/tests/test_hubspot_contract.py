"""HubSpot under threadline's source contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any, ClassVar

from threadline.testing import SourceContract
from threadline_hubspot import HubspotSource
from threadline_hubspot.sandbox import HubspotSandbox
from threadline_hubspot.source import CURRENT_API_VERSION, TYPED


def expected(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """A record as the stream should deliver it (the sandbox serves the API's shape)."""
    props = record["properties"]
    return {"id": record["id"], "created_at": record["createdAt"], "updated_at": record["updatedAt"],
            "archived": record["archived"], "archived_at": record.get("archivedAt"),
            **{name: props.get(name) for name in TYPED[kind]}, "properties": props}


def config_for(sandbox: HubspotSandbox, **overrides: Any) -> dict[str, Any]:
    return {"base_url": sandbox.base_url, "access_token": sandbox.TOKEN, "page_size": 40, "search_page_size": 50,
            "requests_per_10_seconds": None, "search_requests_per_second": None, "backoff_base": 0.01, "max_retry_time": 5, **overrides}


class TestHubspotContract(SourceContract):
    source = HubspotSource
    sandbox = HubspotSandbox
    sandbox_options: ClassVar[dict[str, Any]] = {"contacts": 240, "companies": 40, "deals": 90, "archived_share": 0.05, "rate_limit": 10_000}
    bad_config: ClassVar[dict[str, Any]] = {"base_url": "http://127.0.0.1:9", "access_token": "pat-na1-not-a-token"}
    credential_field = "access_token"
    data_path = f"/crm/objects/{CURRENT_API_VERSION}/"

    def config(self, sandbox):
        return config_for(sandbox)

    def expected_records(self, sandbox):
        out = {kind: [expected(kind, r) for r in sandbox.records(kind)] for kind in ("contacts", "companies", "deals")}
        out["associations"] = sandbox.associations()
        return out

    def change(self, sandbox):
        contacts = sandbox.add("contacts", 3) + sandbox.update("contacts", ["1002", "1100"])
        deals = sandbox.update("deals", [r["id"] for r in sandbox.records("deals", archived=False)[:2]])
        return {"contacts": [expected("contacts", r) for r in contacts], "deals": [expected("deals", r) for r in deals],
                "companies": []}
