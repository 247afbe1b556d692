"""A small customers source over the core sandbox kit's `CustomersSandbox`, written with plain
`requests`, used to test the contract suite itself — plus three deliberately broken twins
the suite must catch:

- `ExclusiveCursorSource` reads records *after* the cursor (`>`), not from it (`>=`);
- `IgnoresCursorSource` never sends the cursor, so every incremental sync reads everything;
- `NoRetryOn503Source` gives up on a 503 instead of retrying it.

`ToyCrmContract` is the suite's settings for all of them: a test class sets only `source`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import requests
from pydantic import Field

from threadline.sandbox import CustomersSandbox
from threadline.testing import SourceContract
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
    TransientError,
)

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("email", pa.string()),
    ("first_name", pa.string()),
    ("last_name", pa.string()),
    ("lifetime_value", pa.decimal128(18, 2)),
    ("updated_at", pa.timestamp("us", tz="UTC")),
])
# as the API sends them: the engine types the text to SCHEMA
WIRE = pa.schema([pa.field(f.name, pa.int64() if f.name == "id" else pa.string()) for f in SCHEMA])


class ToyCrmConfig(Spec):
    base_url: str = Field(description="the API's base URL, e.g. the sandbox's")
    api_key: str = Field(description="sent as the X-API-Key header")
    page_size: int = Field(100, ge=1, description="records per page")
    retry_wait: float = Field(1.0, ge=0, description="seconds before the first retry; doubles each time")
    max_attempts: int = Field(5, ge=1, description="tries per request before giving up")


class ToyCrmSource(Source[ToyCrmConfig]):
    """Customers, paged by offset, incremental on `updated_at` (inclusive), checkpoint per page."""

    name = "toy_crm"
    spec = ToyCrmConfig
    retry_statuses = frozenset({429, 500, 502, 503, 504})

    def check(self, config: ToyCrmConfig) -> None:
        self._get(config, "customers", {"limit": 1}, checking=True)

    def discover(self, config: ToyCrmConfig) -> Catalog:
        return Catalog((Stream("customers", SCHEMA, primary_key=("id",), cursor_field="updated_at",
                               sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)),))

    def read(self, config: ToyCrmConfig, request: ReadRequest) -> Iterator[Message]:
        name = request.stream.name
        params: dict[str, Any] = {"limit": config.page_size}
        since = self.since(request)
        if since is not None:
            params["updated_since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        offset = 0
        while True:
            body = self._get(config, name, {**params, "offset": offset})
            rows = body["data"]
            if rows:
                yield Batch(name, pa.RecordBatch.from_pylist(rows, schema=WIRE))
            yield Checkpoint(name, {})
            if not body.get("next"):
                return
            offset += len(rows)

    def since(self, request: ReadRequest) -> datetime | None:
        return request.cursor_start if request.sync_mode is SyncMode.INCREMENTAL else None

    def _get(self, config: ToyCrmConfig, stream: str, params: dict[str, Any], checking: bool = False) -> dict[str, Any]:
        url = f"{config.base_url.rstrip('/')}/{stream}"
        wait = config.retry_wait
        for attempt in range(1, config.max_attempts + 1):
            last = attempt == config.max_attempts
            try:
                response = requests.get(url, params=params, headers={"X-API-Key": config.api_key}, timeout=(5, 30))
            except requests.RequestException as exc:
                if checking:
                    raise ConfigError(f"cannot reach {config.base_url}: {type(exc).__name__}", field="base_url") from None
                if last:
                    raise TransientError(f"toy_crm: GET /{stream} failed {attempt} times: {exc}") from None
                time.sleep(wait)
                wait *= 2
                continue
            if response.status_code == 401:
                raise ConfigError("the API key was refused (401)", field="api_key", hint="check api_key")
            if response.status_code in self.retry_statuses and not last:
                time.sleep(float(response.headers.get("Retry-After") or wait))
                wait *= 2
                continue
            if response.status_code != 200:
                raise FatalError(f"toy_crm: GET /{stream} (stream {stream}) answered {response.status_code}: "
                                 f"{response.text[:200]}")
            try:
                return response.json()
            except ValueError:
                raise FatalError(f"toy_crm: GET /{stream} (stream {stream}) answered 200 with something that is "
                                 f"not JSON: {response.text[:80]!r}") from None
        raise AssertionError("unreachable")


class ExclusiveCursorSource(ToyCrmSource):
    """BROKEN: reads records strictly after the cursor, losing those that share its value."""

    name = "toy_crm_exclusive_cursor"

    def since(self, request: ReadRequest) -> datetime | None:
        start = super().since(request)
        return start + timedelta(seconds=1) if start is not None else None


class IgnoresCursorSource(ToyCrmSource):
    """BROKEN: ignores ReadRequest.cursor_start, so incremental syncs read everything."""

    name = "toy_crm_ignores_cursor"

    def since(self, request: ReadRequest) -> datetime | None:
        return None


class NoRetryOn503Source(ToyCrmSource):
    """BROKEN: treats 503 Service Unavailable as final."""

    name = "toy_crm_no_retry_on_503"
    retry_statuses = frozenset({429, 500, 502, 504})


class ToyCrmContract(SourceContract):
    """The contract suite's settings for the toy sources (a test class adds `source = ...`)."""

    sandbox = CustomersSandbox
    sandbox_options = {"count": 40}  # 4 pages of 10; cursor values come in threes, so pages end on ties
    bad_config = {"base_url": "http://127.0.0.1:9", "api_key": "not-the-key"}
    credential_field = "api_key"
    data_path = "/customers"

    def config(self, sandbox):
        return {"base_url": sandbox.base_url, "api_key": sandbox.API_KEY, "page_size": 10, "retry_wait": 0.01}

    def expected_records(self, sandbox):
        return {"customers": sandbox.customers}

    def change(self, sandbox):
        return {"customers": sandbox.add_customers(3) + sandbox.update_customers([2, 5])}
