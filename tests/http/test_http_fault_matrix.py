"""The HTTP fault matrix (issue 13): every paginator of the kit, through the real engine into
DuckDB with `write: replace`, against every fault the sandbox injects. Each case ends in
success after a retry (every record exactly once) or in a clear error with nothing lost (the
table the last good sync wrote is still there, not replaced by a partial read).

Bounded: 95 records, pages of 20, retries of a few milliseconds, loopback only. An offset
paginator told no total cannot tell an empty page from the end, so the matrix gives it the
total (as `total_path`), as a job should whenever the API reports one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from threadline.engine import run_job
from threadline.job import job_from_dict
from threadline.sandbox import CustomersSandbox
from threadline.sandbox.faults import Fault
from threadline.testing.harness import installed_destination, registry_of
from threadline_rest import RestApiSource

COUNT = 95
PAGINATORS: dict[str, dict[str, Any]] = {
    "offset": {"type": "offset", "limit": 20, "total_path": "total"},
    "page_number": {"type": "page_number", "page_size": 20, "total_pages_path": "total_pages"},
    "body_cursor": {"type": "cursor", "cursor_path": "next_cursor"},
    "header_cursor": {"type": "header_cursor", "header": "X-Next-Cursor"},
    "next_url": {"type": "next_url", "next_url_path": "next"},
    "link_header": {"type": "link_header"},
}
# fault → what the sync must end in: "ok" (retried) or the words of the clear error
FAULTS: dict[str, tuple[dict[str, Any], str]] = {
    "429_with_retry_after": ({"kind": "rate_limit", "retry_after": 0.05, "times": 2}, "ok"),
    "429_without_retry_after": ({"kind": "rate_limit", "retry_after": None, "times": 2}, "ok"),
    "503": ({"kind": "status", "status": 503, "times": 2}, "ok"),
    "timeout": ({"kind": "timeout", "delay": 0.6, "times": 1}, "ok"),
    "dropped_connection": ({"kind": "drop", "times": 1}, "ok"),
    "garbage_body": ({"kind": "garbage", "times": 1}, "ok"),
    "truncated_json": ({"kind": "malformed_json", "times": 1}, "ok"),
    "401_token_expired": ({"kind": "expired_token", "times": 1}, "ok"),
    "empty_page_once": ({"kind": "empty_page", "times": 1}, "ok"),
    "empty_page_that_stays": ({"kind": "empty_page", "times": 0}, "empty page"),
    "repeated_page": ({"kind": "repeat_page", "times": 1}, "same"),
}


@pytest.fixture(scope="module")
def api():
    with CustomersSandbox(count=COUNT) as sandbox:
        yield sandbox


def sync(api: CustomersSandbox, workdir: Path, paginator: dict[str, Any]):
    job = job_from_dict({
        "name": "matrix", "state": str(workdir / "state"), "concurrency": 1,
        "sources": {"api": {"connector": "rest", "config": {
            "base_url": api.base_url,
            "auth": {"type": "oauth2", "token_url": "/oauth/token", "client_id": CustomersSandbox.CLIENT_ID,
                     "client_secret": CustomersSandbox.CLIENT_SECRET},
            "paginator": paginator,
            "timeout": {"connect": 2, "read": 0.3},
            "retry": {"max_attempts": 4, "backoff_base": 0.01, "max_backoff": 0.05, "max_retry_time": 5},
            "streams": [{"name": "customers", "path": "/customers", "primary_key": ["id"],
                         "params": {} if paginator["type"] in ("offset", "page_number") else {"limit": 20},
                         "schema": {"id": "int64", "email": "string", "updated_at": "timestamp"}}],
        }, "streams": {"customers": {"sync_mode": "full_refresh", "write": "replace"}}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(workdir / "matrix.duckdb")}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([RestApiSource], [installed_destination("duckdb")]))


def landed_ids(workdir: Path) -> list[int]:
    con = duckdb.connect(str(workdir / "matrix.duckdb"))
    try:
        return [row[0] for row in con.sql("select id from api__customers order by id").fetchall()]
    finally:
        con.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault_name", list(FAULTS))
@pytest.mark.parametrize("paginator_name", list(PAGINATORS))
def test_a_fault_ends_in_success_after_retry_or_a_clear_error_with_nothing_lost(
    api: CustomersSandbox, tmp_path: Path, paginator_name: str, fault_name: str,
) -> None:
    api.reset()
    paginator = PAGINATORS[paginator_name]
    fault, outcome = FAULTS[fault_name]
    if outcome != "ok":  # a table from a good sync, which a failed replace must leave as it is
        assert sync(api, tmp_path, paginator).ok
    injected = api.inject(Fault(path="/customers", after=2, **fault))  # mid-stream: the third page

    report = sync(api, tmp_path, paginator)

    assert injected.fired >= 1, "the fault never fired: the read made too few requests"
    assert landed_ids(tmp_path) == list(range(1, COUNT + 1)), "every record exactly once, nothing lost"
    stream = report.stream("api", "customers")
    if outcome == "ok":
        assert report.ok, report.error
        assert stream.rows_written == COUNT
    else:
        assert stream.outcome == "failed" and outcome in (stream.error or ""), stream.error
        assert "rest / customers" in stream.error, "the error names the connector and the stream"
