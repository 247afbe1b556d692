"""The official Segment and RudderStack Python clients, unmodified, pointed at the collector:
every call they make lands, once, in the store."""

from __future__ import annotations

import duckdb
import pytest
from threadline_events.testing import WRITE_KEY, sync


def send_every_call(client) -> None:  # type: ignore[no-untyped-def]
    client.identify("u-1", {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"}, message_id="m-identify")
    client.track("u-1", "Order Completed", {"order_id": "o-1", "total": 31.5, "currency": "EUR"}, message_id="m-track")
    client.page("u-1", category="Docs", name="Pricing", properties={"url": "https://shop.example/pricing"},
                message_id="m-page")
    client.screen("u-1", category="App", name="Basket", message_id="m-screen")
    client.group("u-1", "g-7", {"name": "Acme"}, message_id="m-group")
    client.alias("anon-9", "u-1", message_id="m-alias")
    client.track(anonymous_id="anon-9", event="Checkout Started", properties={"cart": 2},
                 context={"traits": {"email": "ann@example.com"}}, message_id="m-anon")
    client.flush()


def landed(collector) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    result = sync(collector.job)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(collector.job.parent / "store.duckdb"), read_only=True) as db:
        rows = db.sql("SELECT * FROM site__web").to_arrow_table().to_pylist()
    return {row["message_id"]: row for row in rows}


def check(rows: dict[str, dict]) -> None:
    assert set(rows) == {"m-identify", "m-track", "m-page", "m-screen", "m-group", "m-alias", "m-anon"}
    assert {r["type"] for r in rows.values()} == {"identify", "track", "page", "screen", "group", "alias"}
    assert rows["m-identify"]["email"] == "ann@example.com" and rows["m-identify"]["first_name"] == "Ann"
    assert (rows["m-track"]["event"], rows["m-track"]["order_id"], rows["m-track"]["total"]) == ("Order Completed", "o-1", 31.5)
    assert rows["m-page"]["event"] == "Pricing" and rows["m-screen"]["event"] == "Basket"
    assert rows["m-group"]["group_id"] == "g-7"
    assert (rows["m-alias"]["previous_id"], rows["m-alias"]["user_id"]) == ("anon-9", "u-1")
    assert rows["m-anon"]["anonymous_id"] == "anon-9" and rows["m-anon"]["email"] == "ann@example.com"
    assert all(r["received_at"] is not None and r["timestamp"] is not None for r in rows.values())


def test_segments_official_client_sends_every_call_unmodified(collector):
    from segment.analytics import Client

    errors: list[Exception] = []
    client = Client(WRITE_KEY, host=collector.url, on_error=lambda e, batch: errors.append(e), max_retries=2)
    send_every_call(client)
    client.shutdown()
    assert errors == []
    check(landed(collector))


def test_rudderstacks_official_client_sends_every_call_gzipped(collector):
    from rudderstack.analytics import Client

    errors: list[Exception] = []
    client = Client(WRITE_KEY, host=collector.url, on_error=lambda e, batch: errors.append(e), max_retries=2)
    assert client.gzip  # its default: the collector inflates it
    send_every_call(client)
    client.shutdown()
    assert errors == []
    check(landed(collector))


@pytest.mark.parametrize("gzip", [False, True])
def test_a_retried_batch_lands_once(collector, gzip):
    """The client sends a batch again when it sees no answer: same message ids, one row each."""
    from segment.analytics.request import post

    batch = [{"type": "track", "userId": f"u{n}", "event": "Viewed", "messageId": f"m{n}"} for n in range(5)]
    for _ in range(3):
        post(WRITE_KEY, host=collector.url, gzip=gzip, batch=batch)
    rows = landed(collector)
    assert sorted(rows) == [f"m{n}" for n in range(5)]
