"""examples/realtime runs as the README's Near real time section says: sandboxes, the collector,
the follower, shoppers sent with the official Segment client, then an order webhook from the
Shopify sandbox that takes its customer out of the audience on Meta."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("threadline_events", reason="install connectors/events (python3 dev.py setup does)")


def wait_until(condition, seconds: float = 180):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def meta_requests(port: int, method: str) -> list[dict]:
    try:
        recorded = requests.get(f"http://127.0.0.1:{port}/_sandbox/requests", timeout=5).json()
    except requests.ConnectionError:
        return []
    return [r for r in recorded if r["method"] == method and r["path"].endswith("/users") and r["status"] == 200]


def test_the_realtime_example_takes_a_buyer_out_of_the_abandoned_cart_audience_on_meta(tmp_path):
    folder = tmp_path / "realtime"
    shutil.copytree(ROOT / "examples" / "realtime", folder,
                    ignore=shutil.ignore_patterns(".threadline", "*.duckdb*", "*_reports", "events"))
    from threadline_events.testing import free_port

    shop, meta, collector = free_port(), free_port(), free_port()
    env = {**os.environ, "COLLECTOR_PORT": str(collector), "META_URL": f"http://127.0.0.1:{meta}"}
    threadline = [sys.executable, "-m", "threadline"]
    processes = [subprocess.Popen([*threadline, "sandbox", f"shopify={shop}", f"meta_audiences={meta}"], env=env, cwd=folder,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        processes.append(subprocess.Popen([*threadline, "collect", "job.yaml"], env=env, cwd=folder,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        follower = subprocess.Popen([*threadline, "--log-format", "plain", "sync", "job.yaml", "--follow", "--every", "1"],
                                    env=env, cwd=folder, stdout=subprocess.DEVNULL,
                                    stderr=(tmp_path / "follower.log").open("wb"))
        processes.append(follower)
        wait_until(lambda: _answers(f"http://127.0.0.1:{collector}/health"))
        sent = subprocess.run([sys.executable, "send_events.py", "--shop", f"http://127.0.0.1:{shop}"], env=env, cwd=folder,
                              capture_output=True, text=True, timeout=300)
        assert sent.returncode == 0, sent.stderr
        customer = int(sent.stdout.split("Shopify customer ")[1])
        wait_until(lambda: meta_requests(meta, "POST"))  # the abandoned carts went to Meta
        email = requests.get(f"http://127.0.0.1:{shop}/admin/api/2026-10/customers.json", params={"limit": 250},
                             headers={"X-Shopify-Access-Token": "shpat_sandbox0123456789abcdef0123456789"}).json()
        [buyer] = [c["email"] for c in email["customers"] if c["id"] == customer]
        digest = hashlib.sha256(buyer.strip().lower().encode()).hexdigest()
        hook = requests.post(f"http://127.0.0.1:{shop}/_sandbox/send_webhook", json={
            "address": f"http://127.0.0.1:{collector}/webhooks/shopify", "secret": "shpss_demo_webhook_secret",
            "customer_id": customer}).json()
        assert hook["status"] == 200
        wait_until(lambda: any(digest in r["body"] for r in meta_requests(meta, "DELETE")))
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=120) == 0
        runs = subprocess.run([*threadline, "runs", "job.yaml", "--json"], env=env, cwd=folder, capture_output=True,
                              text=True).stdout
        assert any(r["latency"] for r in json.loads(runs))
        report = (folder / "realtime_reports" / "latest.html").read_text()
        assert "Event → audience latency" in report and "pushed p99" in report  # the report shows it too
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False
