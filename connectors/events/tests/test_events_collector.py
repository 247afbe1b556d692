"""The collector's answers to bad input, against a real `threadline collect` (uvicorn)."""

from __future__ import annotations

import gzip
import json
import time
import uuid

import duckdb
import requests
from threadline_events.testing import (
    KLAVIYO_SECRET,
    MAILCHIMP_SECRET,
    SHOPIFY_SECRET,
    WRITE_KEY,
    events_config,
    free_port,
    log_lines,
    start_collector,
    sync,
    write_job,
)
from threadline_events.webhooks import klaviyo_signature, shopify_signature


def track(user: str = "u1", **extra: object) -> dict[str, object]:
    return {"type": "track", "userId": user, "event": "Checkout Started", "messageId": str(uuid.uuid4()), **extra}


def test_an_event_answered_200_is_in_its_streams_log(collector):
    answer = requests.post(f"{collector.url}/v1/track", json=track(), auth=(WRITE_KEY, ""))
    assert answer.status_code == 200 and answer.json() == {"success": True}
    [line] = log_lines(collector.log / "web")
    assert json.loads(line)["event"] == "Checkout Started"


def test_a_bad_write_key_gets_401_and_nothing_is_stored(collector):
    answer = requests.post(f"{collector.url}/v1/batch", json={"batch": [track()]}, auth=("not-the-key", ""))
    assert answer.status_code == 401
    assert answer.json()["code"] == "bad_write_key"
    no_key = requests.post(f"{collector.url}/v1/track", json=track())
    assert no_key.status_code == 401
    assert log_lines(collector.log / "web") == []


def test_a_write_key_in_the_body_is_accepted_as_segment_does(collector):
    answer = requests.post(f"{collector.url}/v1/batch", json={"batch": [track()], "writeKey": WRITE_KEY})
    assert answer.status_code == 200
    assert len(log_lines(collector.log / "web")) == 1


def test_malformed_json_gets_400_with_the_reason(collector):
    answer = requests.post(f"{collector.url}/v1/batch", data=b'{"batch": [', auth=(WRITE_KEY, ""))
    assert answer.status_code == 400
    assert answer.json()["code"] == "malformed_json"
    assert answer.json()["message"].startswith("malformed JSON:") and "line 1 column" in answer.json()["message"]
    not_a_batch = requests.post(f"{collector.url}/v1/batch", json={"events": []}, auth=(WRITE_KEY, ""))
    assert not_a_batch.status_code == 400 and '"batch" list' in not_a_batch.json()["message"]
    assert log_lines(collector.log / "web") == []


def test_a_payload_over_the_size_limit_gets_413(tmp_path):
    port = free_port()
    running = start_collector(write_job(tmp_path, events_config(port, max_request_bytes=4096)), port)
    try:
        big = {"batch": [track(properties={"note": "x" * 5000})]}
        answer = requests.post(f"{running.url}/v1/batch", json=big, auth=(WRITE_KEY, ""))
        assert answer.status_code == 413 and answer.json()["code"] == "too_large"
        # small when compressed, too large once inflated: refused too (no gzip bombs)
        packed = gzip.compress(json.dumps(big).encode())
        assert len(packed) < 4096
        inflated = requests.post(f"{running.url}/v1/batch", data=packed, auth=(WRITE_KEY, ""),
                                 headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        assert inflated.status_code == 413 and "inflated" in inflated.json()["message"]
        assert log_lines(running.log / "web") == []
    finally:
        running.stop()


def test_an_event_without_any_identifier_is_quarantined_with_its_reason(collector):
    nobody = {"type": "track", "event": "Checkout Started", "messageId": "m-nobody", "properties": {"cart": 3}}
    answer = requests.post(f"{collector.url}/v1/batch", json={"batch": [nobody, track("u2")]}, auth=(WRITE_KEY, ""))
    assert answer.status_code == 200
    assert answer.json()["quarantined"] == 1
    [kept] = log_lines(collector.log / "web")
    assert json.loads(kept)["user_id"] == "u2"
    [held] = [json.loads(line) for line in log_lines(collector.log / "quarantine")]
    assert held["stream"] == "web"
    assert "no identifier" in held["reason"]
    assert held["event"] == nobody


def test_a_shopify_webhook_without_a_valid_signature_gets_401_and_nothing_is_stored(collector):
    body = json.dumps({"id": 1, "email": "ann@example.com", "total_price": "10.00"}).encode()
    headers = {"X-Shopify-Topic": "orders/create", "Content-Type": "application/json"}
    missing = requests.post(f"{collector.url}/webhooks/shopify", data=body, headers=headers)
    wrong = requests.post(f"{collector.url}/webhooks/shopify", data=body,
                          headers={**headers, "X-Shopify-Hmac-Sha256": shopify_signature("another-secret", body)})
    tampered = requests.post(f"{collector.url}/webhooks/shopify", data=body.replace(b"10.00", b"99.00"),
                             headers={**headers, "X-Shopify-Hmac-Sha256": shopify_signature(SHOPIFY_SECRET, body)})
    assert [missing.status_code, wrong.status_code, tampered.status_code] == [401, 401, 401]
    assert log_lines(collector.log / "shopify") == [] and log_lines(collector.log / "quarantine") == []
    signed = requests.post(f"{collector.url}/webhooks/shopify", data=body,
                           headers={**headers, "X-Shopify-Hmac-Sha256": shopify_signature(SHOPIFY_SECRET, body)})
    assert signed.status_code == 200
    assert len(log_lines(collector.log / "shopify")) == 1


def test_a_klaviyo_webhook_without_a_valid_signature_gets_401_and_nothing_is_stored(collector):
    body = json.dumps({"data": [{"topic": "event:klaviyo.opened_email", "external_id": "e1", "payload": {}}],
                       "meta": {"klaviyo_webhook_id": "wh1"}}).encode()
    stamp = "2026-01-01T00:00:00Z"
    missing = requests.post(f"{collector.url}/webhooks/klaviyo", data=body, headers={"Klaviyo-Timestamp": stamp})
    wrong = requests.post(f"{collector.url}/webhooks/klaviyo", data=body, headers={
        "Klaviyo-Timestamp": "2026-01-01T00:00:01Z", "Klaviyo-Signature": klaviyo_signature(KLAVIYO_SECRET, body, stamp)})
    assert [missing.status_code, wrong.status_code] == [401, 401]
    assert log_lines(collector.log / "klaviyo") == []


def test_a_mailchimp_webhook_with_the_wrong_url_secret_gets_401_and_nothing_is_stored(collector):
    form = {"type": "unsubscribe", "fired_at": "2026-03-26 21:40:57", "data[email]": "ann@example.com"}
    wrong = requests.post(f"{collector.url}/webhooks/mailchimp/not-the-secret-at-all", data=form)
    assert wrong.status_code == 401
    assert log_lines(collector.log / "mailchimp") == []
    assert requests.get(f"{collector.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}").status_code == 200  # Mailchimp's URL check
    assert requests.post(f"{collector.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}", data=form).status_code == 200
    [line] = log_lines(collector.log / "mailchimp")
    assert json.loads(line)["event"] == "unsubscribe"


def test_a_full_disk_budget_answers_429_with_retry_after_and_stores_nothing(tmp_path):
    port = free_port()
    running = start_collector(write_job(tmp_path, events_config(port, disk_budget_bytes=65536, segment_bytes=4096)), port)
    try:
        statuses = []
        for n in range(200):
            answer = requests.post(f"{running.url}/v1/batch", json={"batch": [track(f"u{n}"), track(f"v{n}")]},
                                   auth=(WRITE_KEY, ""))
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["Retry-After"]) >= 1
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
        accepted = 2 * (len(statuses) - 1)
        assert len(log_lines(running.log / "web")) == accepted  # the refused request left nothing
    finally:
        running.stop()


def test_personal_data_in_events_never_appears_in_the_collectors_logs(tmp_path):
    port = free_port()
    running = start_collector(write_job(tmp_path, events_config(port)), port, verbose=True)
    secret_person = {"email": "zelda.quantrill@example.org", "firstName": "Zelda", "phone": "+15125550199"}
    try:
        requests.post(f"{running.url}/v1/identify", json={"userId": "uid-zq-7781", "traits": secret_person},
                      auth=(WRITE_KEY, ""))
        requests.post(f"{running.url}/v1/track", json={"event": "Quantrill Purchase", "properties": secret_person},
                      auth=(WRITE_KEY, ""))  # no identifier: quarantined, and says so
        requests.post(f"{running.url}/v1/batch", data=b'{"batch": [{"email": "zelda.quantrill@example.org"',
                      auth=(WRITE_KEY, ""))  # malformed
        requests.post(f"{running.url}/webhooks/shopify", json={"email": "zelda.quantrill@example.org"},
                      headers={"X-Shopify-Hmac-Sha256": "forged"})
        requests.post(f"{running.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}",
                      data={"type": "unsubscribe", "data[email]": "zelda.quantrill@example.org"})
    finally:
        running.stop()  # its last log line sums up the requests
    output = running.output()
    assert "accepted" in output  # it did log
    for value in ["zelda", "Zelda", "quantrill", "5550199", "uid-zq-7781", MAILCHIMP_SECRET, WRITE_KEY]:
        assert value not in output


def test_segments_every_follower_read_past_are_removed_and_a_full_budget_frees_up(tmp_path):
    port = free_port()
    job = write_job(tmp_path, events_config(port, disk_budget_bytes=65536, segment_bytes=4096))
    running = start_collector(job, port)
    try:
        n = 0
        while requests.post(f"{running.url}/v1/batch", json={"batch": [track(f"u{n}")]},
                            auth=(WRITE_KEY, "")).status_code == 200:
            n += 1
        full = len(list((running.log / "web").glob("*.jsonl")))
        for _ in range(2):  # the second read records that the first one's offset was committed
            assert sync(job).returncode == 0
        deadline = time.monotonic() + 30
        while requests.post(f"{running.url}/v1/batch", json={"batch": [track("later")]},
                            auth=(WRITE_KEY, "")).status_code == 429:
            assert time.monotonic() < deadline, "the budget never freed up"
            time.sleep(0.2)
        assert len(list((running.log / "web").glob("*.jsonl"))) < full
    finally:
        running.stop()
    assert sync(job).returncode == 0
    with duckdb.connect(str(tmp_path / "store.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM site__web").fetchall() == [(n + 1,)]  # nothing lost to retention
