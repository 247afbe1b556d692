"""Helpers for testing the collector: a real `threadline collect` (uvicorn) in a subprocess on a
free loopback port, job files, and the log's lines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

WRITE_KEY = "wk_test_web_0123456789"
SHOPIFY_SECRET = "shpss_test_webhook_secret"
KLAVIYO_SECRET = "klaviyo_test_webhook_secret"
MAILCHIMP_SECRET = "mc_test_url_secret_0123456789"
THREADLINE = [sys.executable, "-m", "threadline"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def events_config(port: int, **collector: Any) -> dict[str, Any]:
    return {
        "log": "events",
        "write_keys": {"web": WRITE_KEY},
        "webhooks": {"shopify": {"secret": SHOPIFY_SECRET}, "klaviyo": {"secret": KLAVIYO_SECRET},
                     "mailchimp": {"secret": MAILCHIMP_SECRET}},
        "collector": {"port": port, **collector},
    }


def write_job(folder: Path, config: dict[str, Any], destination: dict[str, Any] | None = None,
              name: str = "events_test") -> Path:
    job = {"name": name, "sources": {"site": {"connector": "events", "config": config}},
           "destinations": {"store": destination or {"connector": "duckdb", "config": {"path": "store.duckdb"}}}}
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


@dataclass
class Collector:
    """A running `threadline collect` process."""

    job: Path
    port: int
    process: subprocess.Popen[bytes]
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.job.parent / "events"

    def output(self) -> str:
        return self.stderr.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def start_collector(job: Path, port: int, *, verbose: bool = False) -> Collector:
    stderr = job.parent / f"collector-{time.monotonic_ns()}.log"
    args = [*THREADLINE, "--log-format", "plain", *(["-vv"] if verbose else []), "collect", str(job)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr.open("wb"), cwd=job.parent)
    collector = Collector(job, port, process, stderr)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the collector exited: {collector.output()}")
        try:
            if requests.get(f"{collector.url}/health", timeout=1).ok:
                return collector
        except requests.ConnectionError:
            time.sleep(0.1)
    collector.stop(signal.SIGKILL)
    raise RuntimeError(f"the collector did not answer within 60s: {collector.output()}")


def log_lines(folder: Path) -> list[bytes]:
    """Every line of a stream's log (all segments, in order)."""
    return [line for path in sorted(folder.glob("*.jsonl")) for line in path.read_bytes().splitlines()]


def sync(job: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*THREADLINE, "--log-format", "plain", "sync", str(job), *args], capture_output=True,
                          text=True, cwd=job.parent, env={**os.environ, "COLUMNS": "200"}, timeout=300)


def shopper_events(people: int, start: int = 0) -> list[dict[str, Any]]:
    """Envelopes of a small shop's visitors: each identifies, consents to ads, starts a checkout;
    every third one orders. Deterministic (message ids and times from the person's number)."""
    from datetime import datetime, timedelta, timezone

    from threadline_events.envelope import envelope, timestamp_text

    base = datetime.now(timezone.utc) - timedelta(hours=1)
    rows = []
    for n in range(start, start + people):
        at = timestamp_text(base + timedelta(seconds=n))
        person = {"user_id": f"user{n}", "email": f"shopper{n}@example.com", "timestamp": at, "received_at": at}
        rows.append(envelope(message_id=f"id-{n}", type="identify", first_name="Sam", last_name=f"Doe{n}", **person))
        rows.append(envelope(message_id=f"consent-{n}", type="track", event="Ads Consent Granted", **person))
        rows.append(envelope(message_id=f"checkout-{n}", type="track", event="Checkout Started", **person))
        if n % 3 == 0:
            order_at = timestamp_text(base + timedelta(seconds=n, milliseconds=500))
            rows.append(envelope(message_id=f"order-{n}", type="track", event="Order Completed", order_id=f"o{n}",
                                 total=30.0, currency="EUR", **{**person, "timestamp": order_at}))
    return rows


def fill_log(folder: Path, rows: list[dict[str, Any]], segment_bytes: int = 64 << 20) -> int:
    """Append envelopes to a stream's log as the collector would (synced); returns its end offset."""
    from threadline_events.envelope import line
    from threadline_events.log import SegmentWriter

    writer = SegmentWriter(folder, segment_bytes)
    try:
        writer.write(b"".join(line(r) for r in rows))
        writer.sync()
        writer.rotate_if_full()
        return writer.end
    finally:
        writer.close()


def profiles_destination(**extra: Any) -> dict[str, Any]:
    """A profile store for the web stream: identities, orders, checkouts, ad consent, and an
    abandoned-cart audience (`extra` adds activations and the like)."""
    return {"connector": "profiles", "config": {
        "path": "profiles.duckdb",
        "mappings": {"site.web": {
            "identifiers": {"user_id": "customer_id:web", "anonymous_id": "device_id", "email": "email"},
            "traits": {"first_name": "first_name", "last_name": "last_name"},
            "events": {"timestamp": "timestamp", "name": "event"},
            "orders": {"order_id": "order_id", "timestamp": "timestamp", "amount": "total", "currency": "currency"},
            "consent": {"channel": "advertising", "column": "event", "granted": ["Ads Consent Granted"],
                        "denied": ["Ads Consent Withdrawn"], "timestamp": "timestamp"},
        }},
        "traits": {"computed": {"last_checkout_at": {"aggregate": "max", "of": "events.timestamp",
                                                     "filter": {"name": ["Checkout Started"]}}}},
        "audiences": {
            "recent_buyers": {"where": "last_order_at within 7d"},
            "abandoned_cart": {"where": "last_checkout_at within 14d and (last_order_at is null or "
                                        "last_order_at < last_checkout_at)"},
        },
        **extra,
    }}
