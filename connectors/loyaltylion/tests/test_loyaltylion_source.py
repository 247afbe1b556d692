"""What is special about the loyaltylion source: one person's several loyalty accounts, the
20-requests-a-second limit, a rate-limit wait longer than the run, and bad input."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from threadline.contracts import Batch, ConfigError, ReadRequest, SyncMode
from threadline.engine.runner import run_job
from threadline.job import job_from_dict
from threadline.sandbox import Fault
from threadline.state import StateStore
from threadline.testing.harness import end_rate_limit_pause
from threadline.testing.harness import installed_destination, registry_of
from threadline_loyaltylion import LoyaltylionConfig, LoyaltylionSource
from threadline_loyaltylion.sandbox import LoyaltylionSandbox
from threadline.http.pause import RESUME_AFTER_KEY
from threadline.http.source import CURSOR_KEY


@pytest.fixture
def lion() -> Any:
    with LoyaltylionSandbox(people=200, requests_per_second=10_000) as sandbox:
        yield sandbox


def config(sandbox: LoyaltylionSandbox, **changes: Any) -> dict[str, Any]:
    return {"base_url": f"{sandbox.base_url}/v2", "api_key": sandbox.API_KEY, "page_size": 50,
            "requests_per_second": 1000, "backoff_base": 0.01, **changes}


def sync(workdir: Path, raw: dict[str, Any], streams: tuple[str, ...] = ("customers",)) -> Any:
    duckdb = installed_destination("duckdb")
    job = job_from_dict({
        "name": "lion", "state": str(workdir / "state"), "concurrency": 1, "max_rejected_share": 0.05,
        "sources": {"lion": {"connector": "loyaltylion", "config": raw, "streams": {s: {} for s in streams}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(workdir / "lion.duckdb")}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([LoyaltylionSource], [duckdb]))


def saved_state(workdir: Path, stream: str = "customers") -> dict[str, Any]:
    store = StateStore(workdir / "state")
    try:
        return store.get("lion", "lion", stream)
    finally:
        store.close()


def read(raw: dict[str, Any], stream: str = "customers") -> list[dict[str, Any]]:
    source = LoyaltylionSource()
    cfg = LoyaltylionConfig.model_validate(raw)
    messages = source.read(cfg, ReadRequest(source.discover(cfg).get(stream), SyncMode.FULL_REFRESH))
    return [r for m in messages if isinstance(m, Batch) for r in m.records.to_pylist()]


def test_one_persons_several_loyalty_accounts_arrive_as_separate_rows_with_their_identifiers(lion):
    person = next(c for c in lion.customers() if (c["properties"] or {}).get("phone") and len(lion.accounts_of(c["properties"]["phone"])) > 1)
    accounts = lion.accounts_of(person["properties"]["phone"])
    got = {r["id"]: r for r in read(config(lion))}

    rows = [got[a["id"]] for a in accounts]
    assert len({r["id"] for r in rows}) == len(accounts) >= 2  # each card is its own record: nothing merged
    assert [r["email"] for r in rows] == [a["email"] for a in accounts]
    assert [r["phone"] for r in rows] == [a["properties"].get("phone") for a in accounts]
    assert all(r["merchant_id"] for r in rows)


def test_a_rate_limit_wait_longer_than_the_run_stops_cleanly_keeping_the_cursor_and_saying_when_to_resume(lion, tmp_path):
    raw = config(lion, max_rate_limit_wait=2)
    first = sync(tmp_path, raw)
    assert first.ok, first.error
    cursor = saved_state(tmp_path)[CURSOR_KEY]

    lion.award_points([c["id"] for c in lion.customers()[:120]])  # 120 changed: three pages of 50
    lion.inject(Fault(kind="rate_limit", retry_after=900, times=0, after=2, path="/v2/customers"))
    second = sync(tmp_path, raw)

    stream = second.stream("lion", "customers")
    assert stream.outcome == "paused" and "Stopped cleanly" in (stream.error or "")
    assert stream.rows_written == 100  # the two pages read were committed
    state = saved_state(tmp_path)
    assert state[CURSOR_KEY] == cursor, "the cursor of the last complete sync is kept, so nothing is skipped"
    resume_after = datetime.fromisoformat(state[RESUME_AFTER_KEY])
    assert resume_after.strftime("%H:%M:%S") in stream.error and "run the sync again after" in stream.error

    lion.clear_faults()
    end_rate_limit_pause(tmp_path / "state", "lion", "lion", "customers")  # as if the window had reset
    third = sync(tmp_path, raw)
    assert third.ok and third.stream("lion", "customers").rows_written >= 120


def test_the_request_budget_keeps_under_the_vendors_per_second_limit(lion):
    lion.requests_per_second = 5
    rows = read(config(lion, page_size=25, requests_per_second=4))
    assert len(rows) == len(lion.customers())
    assert not [r for r in lion.requests if r.status == 429], "the connector outran LoyaltyLion's rate limit"


def test_a_revoked_api_key_mid_sync_is_a_config_error_naming_api_key(lion):
    source = LoyaltylionSource()
    cfg = LoyaltylionConfig.model_validate(config(lion))
    messages = source.read(cfg, ReadRequest(source.discover(cfg).get("customers"), SyncMode.FULL_REFRESH))
    next(messages)
    lion.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        list(messages)
    assert caught.value.field == "api_key" and "401" in caught.value.message


def test_a_points_balance_of_an_unexpected_type_is_quarantined_by_the_engine_not_a_crash(lion, tmp_path):
    odd = lion.customers()[7]["id"]
    lion.set_customer_field(odd, "points_approved", "12,000")
    report = sync(tmp_path, config(lion))

    stream = report.stream("lion", "customers")
    assert report.ok, report.error
    assert stream.rows_rejected == 1 and stream.rows_written == len(lion.customers()) - 1
    quarantined = "".join(p.read_text() for p in Path(report.quarantine).rglob("*") if p.is_file())
    assert str(odd) in quarantined and "points_approved" in quarantined


def test_transactions_carry_the_account_they_belong_to(lion):
    by_id = {c["id"]: c for c in lion.customers()}
    rows = read(config(lion), "transactions")
    assert rows and all(by_id[r["customer_id"]]["merchant_id"] == r["customer_merchant_id"] for r in rows)
    assert {r["status"] for r in rows} <= {"approved", "pending", "void"}
