"""Vendor webhooks, signed as each vendor signs them, into the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb
import requests
from threadline_events.testing import KLAVIYO_SECRET, MAILCHIMP_SECRET, SHOPIFY_SECRET, free_port, log_lines, sync
from threadline_events.webhooks import klaviyo_signature, shopify_signature


def stored(collector, table: str) -> list[dict]:  # type: ignore[no-untyped-def]
    result = sync(collector.job)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(collector.job.parent / "store.duckdb"), read_only=True) as db:
        return db.sql(f"SELECT * FROM {table} ORDER BY message_id").to_arrow_table().to_pylist()


def test_an_order_webhook_from_the_shopify_sandbox_lands_as_an_order(collector):
    port = free_port()
    sandbox = subprocess.Popen([sys.executable, "-m", "threadline", "sandbox", f"shopify={port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        control = f"http://127.0.0.1:{port}/_sandbox/send_webhook"
        for _ in range(600):
            try:
                answer = requests.post(control, json={"address": f"{collector.url}/webhooks/shopify",
                                                      "secret": SHOPIFY_SECRET}, timeout=10)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        forged = requests.post(control, json={"address": f"{collector.url}/webhooks/shopify", "secret": "not-the-secret"})
    finally:
        sandbox.terminate()
        sandbox.wait()
    assert answer.json()["status"] == 200 and forged.json()["status"] == 401
    [order] = stored(collector, "site__shopify")
    assert order["event"] == "Order Completed" and order["type"] == "track"
    assert order["order_id"] == str(answer.json()["order_id"])
    assert order["user_id"] == str(answer.json()["customer_id"])
    assert order["email"] and order["total"] > 0 and order["currency"] == "CAD"
    assert json.loads(order["properties"])["line_items"]


def test_a_klaviyo_webhook_lands_one_row_per_event_and_a_redelivery_adds_none(collector):
    event = {"data": {"type": "event", "id": "ev-1", "attributes": {"datetime": "2026-05-01T10:00:00+00:00",
                                                                    "event_properties": {"Subject": "Spring"}},
                      "relationships": {"profile": {"data": {"type": "profile", "id": "01HPROFILE"}}}},
             "included": [{"type": "profile", "id": "01HPROFILE", "attributes": {"email": "ann@example.com"}},
                          {"type": "metric", "id": "m1", "attributes": {"name": "Opened Email"}}]}
    body = json.dumps({"data": [{"topic": "event:klaviyo.opened_email", "external_id": "x-1", "payload": event},
                                {"topic": "event:klaviyo.clicked_email", "external_id": "x-2", "payload": {}}],
                       "meta": {"klaviyo_webhook_id": "wh-1"}}).encode()
    stamp = "2026-05-01T10:00:05Z"
    headers = {"Klaviyo-Signature": klaviyo_signature(KLAVIYO_SECRET, body, stamp), "Klaviyo-Timestamp": stamp,
               "Klaviyo-Webhook-Id": "wh-1", "Content-Type": "application/json"}
    for _ in range(2):  # Klaviyo retries a delivery it saw no answer to
        answer = requests.post(f"{collector.url}/webhooks/klaviyo", data=body, headers=headers)
        assert answer.status_code == 200 and answer.json()["quarantined"] == 1  # x-2 names nobody
    [opened] = stored(collector, "site__klaviyo")
    assert (opened["message_id"], opened["event"], opened["user_id"], opened["email"]) == (
        "klaviyo:x-1", "Opened Email", "01HPROFILE", "ann@example.com")
    assert len(log_lines(collector.log / "klaviyo")) == 2


def test_a_mailchimp_unsubscribe_lands_with_its_email_and_a_resent_one_once(collector):
    form = {"type": "unsubscribe", "fired_at": "2026-03-26 21:40:57", "data[action]": "unsub",
            "data[email]": "ann@example.com", "data[list_id]": "a1b2c3", "data[merges][FNAME]": "Ann"}
    url = f"{collector.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}"
    assert requests.post(url, data=form).status_code == 200
    assert requests.post(url, data=form).status_code == 200
    [row] = stored(collector, "site__mailchimp")
    assert (row["event"], row["email"], row["first_name"]) == ("unsubscribe", "ann@example.com", "Ann")
    assert str(row["timestamp"]).startswith("2026-03-26 21:40:57")


def test_mailchimp_profile_updates_land_as_identify_with_the_new_email(collector):
    url = f"{collector.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}"
    profile = {"type": "profile", "fired_at": "2026-03-26 21:31:21", "data[email]": "ann@example.com",
               "data[merges][FNAME]": "Annie", "data[merges][LNAME]": "Lee", "data[list_id]": "a1b2c3"}
    changed = {"type": "upemail", "fired_at": "2026-03-26 22:15:09", "data[list_id]": "a1b2c3",
               "data[new_id]": "51aa6b9f", "data[new_email]": "ann.lee@example.com", "data[old_email]": "ann@example.com"}
    assert requests.post(url, data=profile).status_code == 200
    assert requests.post(url, data=changed).status_code == 200
    rows = sorted(stored(collector, "site__mailchimp"), key=lambda r: r["timestamp"])
    assert [(r["type"], r["event"], r["email"], r["previous_id"], r["first_name"]) for r in rows] == [
        ("identify", "profile", "ann@example.com", None, "Annie"),
        ("identify", "upemail", "ann.lee@example.com", "ann@example.com", None)]


def test_a_shopify_customer_update_lands_as_identify_with_the_customers_traits(collector):
    body = json.dumps({"id": 7100000000042, "email": "bo@example.com", "first_name": "Bo", "last_name": "Kim",
                       "phone": "+15125550100", "updated_at": "2026-05-01T10:00:00-04:00"}).encode()
    headers = {"X-Shopify-Topic": "customers/update", "X-Shopify-Event-Id": "ev-42", "Content-Type": "application/json",
               "X-Shopify-Hmac-Sha256": shopify_signature(SHOPIFY_SECRET, body)}
    for _ in range(2):  # Shopify redelivers until it sees a 200: same event id, one row
        assert requests.post(f"{collector.url}/webhooks/shopify", data=body, headers=headers).status_code == 200
    [row] = stored(collector, "site__shopify")
    assert (row["message_id"], row["type"], row["user_id"], row["email"], row["last_name"]) == (
        "shopify:ev-42", "identify", "7100000000042", "bo@example.com", "Kim")
    assert json.loads(row["traits"])["phone"] == "+15125550100"
