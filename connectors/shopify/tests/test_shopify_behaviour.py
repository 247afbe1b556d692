"""What is particular to Shopify: Link-header pagination, the leaky bucket and its 429s, line
items, scopes, and records that change or break between pages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from threadline.contracts import (
    Batch,
    ConfigError,
    ReadRequest,
    SyncMode,
    TransientError,
)
from threadline.engine.runner import run_job
from threadline.job import job_from_dict
from threadline.sandbox.faults import Fault
from threadline.testing import records as rec
from threadline.testing.harness import duckdb_path, installed_destination, registry_of
from threadline_shopify import ShopifyConfig, ShopifySource
from threadline_shopify.sandbox import API_VERSION, SUPPORTED_VERSIONS, ShopifySandbox

CUSTOMERS = f"/admin/api/{API_VERSION}/customers.json"
ORDERS = f"/admin/api/{API_VERSION}/orders.json"


@pytest.fixture
def sandbox():
    with ShopifySandbox(customers=24, leak_rate=1000.0) as box:
        yield box


def config(sandbox: ShopifySandbox, **overrides: Any) -> ShopifyConfig:
    return ShopifyConfig.model_validate({
        "shop_url": sandbox.base_url, "access_token": sandbox.ACCESS_TOKEN, "page_size": 5, "backoff_base": 0.01,
        "leak_rate": 1000.0, **overrides})


def read(cfg: ShopifyConfig, name: str, source: ShopifySource | None = None, **request: Any) -> list[dict[str, Any]]:
    source = source or ShopifySource()
    stream = source.discover(cfg).get(name)
    mode = SyncMode.INCREMENTAL if "cursor_start" in request else SyncMode.FULL_REFRESH
    messages = source.read(cfg, ReadRequest(stream=stream, sync_mode=mode, **request))
    return rec.from_batches([m.records for m in messages if isinstance(m, Batch)], stream)


def sync_tolerant(cfg: dict[str, Any], workdir: Path, stream_names: list[str]) -> Any:
    """A sync through the real engine into DuckDB that tolerates quarantined rows (the suite's
    harness allows none)."""
    job = job_from_dict({
        "name": "t", "state": str(workdir / ".threadline"), "concurrency": 1, "max_rejected_share": 0.5,
        "sources": {"src": {"connector": "shopify", "config": cfg,
                            "streams": {n: {"sync_mode": "incremental", "write": "upsert"} for n in stream_names}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(duckdb_path(workdir))}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([ShopifySource], [installed_destination("duckdb")]))


# ---------------------------------------------------------------------- pagination


def test_shopify_link_header_pagination_sends_only_page_info_and_limit_after_the_first_page(sandbox):
    rows = read(config(sandbox), "orders")
    assert [r["id"] for r in rows] == [o["id"] for o in sandbox.orders()]  # status=any: closed and cancelled too
    pages = sandbox.requests_to(ORDERS)
    assert len(pages) == -(-len(rows) // 5)
    assert pages[0].query == {"limit": ["5"], "status": ["any"]}
    for page in pages[1:]:
        assert sorted(page.query) == ["limit", "page_info"]
        assert all(r.status == 200 for r in pages)


def test_shopify_incremental_read_sends_updated_at_min_on_the_first_page(sandbox):
    customers = sandbox.customers()
    start = datetime.fromisoformat(sorted(c["updated_at"] for c in customers)[12])
    rows = read(config(sandbox), "customers", cursor_start=start)
    first = sandbox.requests_to(CUSTOMERS)[0]
    assert first.query["updated_at_min"] == [start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert {r["id"] for r in rows} == {c["id"] for c in customers if datetime.fromisoformat(c["updated_at"]) >= start}


def test_shopify_record_deleted_between_two_pages_loses_no_other_record(sandbox):
    cfg = config(sandbox)
    source = ShopifySource()
    stream = source.discover(cfg).get("customers")
    before = sandbox.customers()
    messages = source.read(cfg, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH))
    first = next(m for m in messages if isinstance(m, Batch)).records
    sandbox.delete_customer(first.column("id")[-1].as_py())  # the last one read: the cursor points at it
    # One not read yet, two pages on: the next page may be fetched already (read ahead while the first parsed).
    sandbox.delete_customer(before[12]["id"])
    rest = [m.records for m in messages if isinstance(m, Batch)]
    got = [r["id"] for r in rec.from_batches([first, *rest], stream)]
    assert sorted(got) == sorted(c["id"] for c in before if c["id"] != before[12]["id"])
    assert len(got) == len(set(got))


# ---------------------------------------------------------------------- throttling


def test_shopify_call_limit_header_makes_the_connector_wait_before_the_bucket_overflows():
    with ShopifySandbox(customers=12, bucket_size=4, leak_rate=10.0) as box:
        source = ShopifySource()
        rows = read(config(box, page_size=2, leak_rate=10.0, bucket_headroom=2), "customers", source=source)
        assert len(rows) == 12
        assert [r.status for r in box.requests].count(429) == 0  # it never hit the limit
        assert source._bucket is not None and source._bucket.waits  # because it waited for the bucket to drain


def test_shopify_429_with_retry_after_is_waited_out_and_nothing_is_lost():
    # The connector's bucket settings are wrong for this shop (far too optimistic), so the shop throttles.
    with ShopifySandbox(customers=12, bucket_size=3, leak_rate=10.0, retry_after=0.15) as box:
        rows = read(config(box, page_size=2, leak_rate=1000.0, bucket_headroom=0), "customers")
        statuses = [r.status for r in box.requests]
        assert statuses.count(429) >= 1
        assert sorted(r["id"] for r in rows) == [c["id"] for c in box.customers()]


def test_shopify_throttling_longer_than_max_wait_stops_with_a_transient_error(sandbox):
    sandbox.inject(Fault(kind="rate_limit", retry_after=30, times=0, after=1, path=CUSTOMERS))
    with pytest.raises(TransientError) as caught:
        read(config(sandbox, max_rate_limit_wait=1.0), "customers")
    assert caught.value.retry_after == 30
    assert "max_rate_limit_wait" in caught.value.message and "resumes" in caught.value.hint


def test_shopify_throttled_sync_is_resumed_by_the_next_run_without_loss(sandbox, tmp_path):
    raw = config(sandbox, max_rate_limit_wait=1.0).model_dump()
    sandbox.inject(Fault(kind="rate_limit", retry_after=30, times=0, after=2, path=CUSTOMERS))
    first = sync_tolerant(raw, tmp_path, ["customers"])
    assert not first.ok
    sandbox.clear_faults()
    second = sync_tolerant(raw, tmp_path, ["customers"])
    assert second.ok, second.error
    stream = ShopifySource().discover(config(sandbox)).get("customers")
    landed = rec.landed(duckdb_path(tmp_path), "src__customers", stream)
    assert sorted(r["id"] for r in landed) == [c["id"] for c in sandbox.customers()]


# ---------------------------------------------------------------------- line items, money, scopes


def test_shopify_line_items_are_one_row_each_with_their_order_and_money_as_decimal(sandbox):
    rows = read(config(sandbox), "order_line_items")
    expected = [(o["id"], item["id"]) for o in sandbox.orders() for item in o["line_items"]]
    assert sorted((r["order_id"], r["id"]) for r in rows) == sorted(expected)
    assert all(isinstance(r["price"], Decimal) for r in rows)
    assert sandbox.requests_to(ORDERS)[0].query["fields"] == ["id,updated_at,line_items"]
    orders = read(config(sandbox), "orders")
    assert all(isinstance(o["total_price"], Decimal) and isinstance(o["updated_at"], datetime) for o in orders)


def test_shopify_missing_scope_is_a_config_error_naming_access_token(sandbox):
    sandbox.drop_scope("read_orders")
    with pytest.raises(ConfigError) as caught:
        ShopifySource().check(config(sandbox))
    assert caught.value.field == "access_token" and "read_orders" in caught.value.message


def test_shopify_record_with_a_field_of_unexpected_type_is_quarantined_not_a_crash(sandbox, tmp_path):
    orders = sandbox.orders()
    sandbox.set_raw("orders", orders[3]["id"], "total_price", "n/a")
    sandbox.set_raw("orders", orders[8]["id"], "line_items", "not a list")
    report = sync_tolerant(config(sandbox).model_dump(), tmp_path, ["orders", "order_line_items"])
    assert report.ok, report.error
    assert report.stream("src", "orders").rows_rejected == 1
    assert report.stream("src", "order_line_items").rows_rejected == 1
    stream = ShopifySource().discover(config(sandbox)).get("orders")
    landed = {r["id"] for r in rec.landed(duckdb_path(tmp_path), "src__orders", stream)}
    assert landed == {o["id"] for o in orders} - {orders[3]["id"]}


# ---------------------------------------------------------------------- Shopify's rules: the 60-day window, versions, fields


def test_shopify_without_read_all_orders_the_sandbox_serves_only_the_last_60_days(sandbox):
    every = sandbox.orders()
    sandbox.drop_scope("read_all_orders")
    recent = sandbox.visible_orders()
    newest = max(datetime.fromisoformat(o["updated_at"]) for o in every)
    assert 0 < len(recent) < len(every)
    assert all(newest - datetime.fromisoformat(o["created_at"]) <= timedelta(days=61) for o in recent)
    headers = {"X-Shopify-Access-Token": sandbox.ACCESS_TOKEN}
    listed = requests.get(f"{sandbox.base_url}{ORDERS}", params={"status": "any", "limit": 250}, headers=headers).json()
    assert [o["id"] for o in listed["orders"]] == [o["id"] for o in recent]
    count = requests.get(f"{sandbox.base_url}/admin/api/{API_VERSION}/orders/count.json", params={"status": "any"},
                         headers=headers).json()
    assert count == {"count": len(recent)}
    old = next(o for o in every if o["id"] not in {r["id"] for r in recent})
    assert requests.get(f"{sandbox.base_url}/admin/api/{API_VERSION}/orders/{old['id']}.json", headers=headers).status_code == 404
    scopes = requests.get(f"{sandbox.base_url}/admin/oauth/access_scopes.json", headers=headers).json()
    assert scopes == {"access_scopes": [{"handle": "read_customers"}, {"handle": "read_orders"}]}
    sandbox.grant_scope("read_all_orders")
    assert [o["id"] for o in sandbox.visible_orders()] == [o["id"] for o in every]


def test_shopify_token_without_read_all_orders_stops_the_order_streams_naming_access_token(sandbox):
    sandbox.drop_scope("read_all_orders")
    for name in ("orders", "order_line_items"):
        with pytest.raises(ConfigError) as caught:
            read(config(sandbox), name)
        assert caught.value.field == "access_token"
        assert "read_all_orders" in caught.value.message and "60 days" in caught.value.message
        assert "all_orders: false" in caught.value.hint
    with pytest.raises(ConfigError) as checked:
        ShopifySource().check(config(sandbox))
    assert checked.value.field == "access_token" and "read_all_orders" in checked.value.message
    assert len(read(config(sandbox), "customers")) == len(sandbox.customers())  # customers need no such scope


def test_shopify_all_orders_false_reads_the_last_60_days_with_a_warning(sandbox, caplog):
    sandbox.drop_scope("read_all_orders")
    with caplog.at_level(logging.WARNING, logger="threadline.shopify"):
        rows = read(config(sandbox, all_orders=False), "orders")
    assert sorted(r["id"] for r in rows) == [o["id"] for o in sandbox.visible_orders()]
    assert len(rows) < len(sandbox.orders())
    assert any("read_all_orders" in r.getMessage() and "60 days" in r.getMessage() for r in caplog.records)


def test_shopify_retired_version_is_answered_by_the_oldest_supported_one_and_the_connector_refuses_it(sandbox):
    headers = {"X-Shopify-Access-Token": sandbox.ACCESS_TOKEN}
    answer = requests.get(f"{sandbox.base_url}/admin/api/2024-07/customers.json", headers=headers)
    assert answer.status_code == 200 and answer.headers["X-Shopify-API-Version"] == SUPPORTED_VERSIONS[0]
    for supported in SUPPORTED_VERSIONS:
        served = requests.get(f"{sandbox.base_url}/admin/api/{supported}/shop.json", headers=headers)
        assert served.headers["X-Shopify-API-Version"] == supported
    assert requests.get(f"{sandbox.base_url}/admin/api/2026-02/shop.json", headers=headers).status_code == 404
    with pytest.raises(ConfigError) as caught:
        read(config(sandbox, api_version="2024-07"), "customers")
    assert caught.value.field == "api_version" and "2024-07" in caught.value.message
    assert SUPPORTED_VERSIONS[0] in caught.value.message and API_VERSION in caught.value.hint


def test_shopify_connector_defaults_to_a_supported_version_and_refuses_a_version_that_never_was():
    assert ShopifyConfig(shop_url="https://x.myshopify.com", access_token="t").api_version in SUPPORTED_VERSIONS
    with pytest.raises(ValueError):
        ShopifyConfig(shop_url="https://x.myshopify.com", access_token="t", api_version="2026-02")


def test_shopify_fields_parameter_answers_only_those_fields_on_every_page(sandbox):
    headers = {"X-Shopify-Access-Token": sandbox.ACCESS_TOKEN}
    first = requests.get(f"{sandbox.base_url}{CUSTOMERS}", params={"limit": 3, "fields": "id,email,nope"}, headers=headers)
    assert [set(c) for c in first.json()["customers"]] == [{"id", "email"}] * 3
    following = requests.get(first.links["next"]["url"], headers=headers)  # the Link keeps the fields asked for
    assert [set(c) for c in following.json()["customers"]] == [{"id", "email"}] * 3
    one = sandbox.orders()[0]
    single = requests.get(f"{sandbox.base_url}/admin/api/{API_VERSION}/orders/{one['id']}.json",
                          params={"fields": "id,total_price"}, headers=headers).json()
    assert single == {"order": {"id": one["id"], "total_price": one["total_price"]}}
    sandbox.clear_requests()
    assert read(config(sandbox), "order_line_items")  # the stream asks for id,updated_at,line_items only
    pages = sandbox.requests_to(ORDERS)
    assert len(pages) > 1 and all(p.query["fields"] == ["id,updated_at,line_items"] for p in pages)


def test_shopify_sandbox_answers_a_campaign_at_a_known_rate_and_an_incremental_read_takes_the_orders(sandbox):
    # what the mission replay uses to simulate a campaign's known effect on orders
    from threadline_shopify.sandbox import ANSWER_TOTAL

    emails = [c["email"] for c in sandbox.customers() if c["email"]]
    read_until = max(o["updated_at"] for o in read(config(sandbox), "orders"))
    after = datetime(2026, 9, 20, 12, tzinfo=UTC)
    answered = sandbox.answer_campaign(emails, 0.5, after, timedelta(days=20), "promo/treated")
    assert 0 < answered["orders"] < len(emails) and answered["total"] == ANSWER_TOTAL
    new = read(config(sandbox), "orders", cursor_start=read_until)
    answers = [o for o in new if o["updated_at"] > read_until]
    assert len(answers) == answered["orders"]
    assert all(after < o["created_at"] <= after + timedelta(days=20) and o["total_price"] == Decimal(str(ANSWER_TOTAL))
               for o in answers)
    assert sandbox.answer_campaign(emails, 0.0, after, timedelta(days=20), "promo/held_out")["orders"] == 0


def test_shopify_sandbox_answers_a_campaign_the_same_way_on_every_run():
    def answers(reverse: bool) -> list[tuple[int, str, str]]:
        with ShopifySandbox(customers=24) as box:
            emails = [c["email"] for c in box.customers() if c["email"]]
            box.answer_campaign(emails[::-1] if reverse else emails, 0.5, datetime(2026, 9, 20, tzinfo=UTC),
                                timedelta(days=20), "promo/treated")
            return [(o["id"], o["email"], o["created_at"]) for o in box.orders()]

    assert answers(reverse=False) == answers(reverse=True)  # seeded, whatever order the addresses come in
