"""B7: near real time — the collector's durable throughput, and event → audience → push latency.

    python bench/b7_realtime.py [--seconds 60] [--rates 100,1000] [--events 20000] [--runs 3] [--agreement on|off|both]

Everything on loopback, each part a real process: `threadline collect` (uvicorn), `threadline
sync --follow` into the profile store, the Meta sandbox (`threadline sandbox meta_audiences`),
and senders using the official `segment-analytics-python` client, unmodified.

1. Throughput: `--senders` processes each send `--events / senders` track calls as fast as the
   client goes; figure = events acknowledged (so synced to disk) per second of wall time, median
   of `--runs`. Anchor, in the same run: the same senders against a server that parses the JSON
   and discards it (no log, no fsync); the ratio is the price of durability.
2. Latency at each rate for `--seconds`: new shoppers identify, consent to ads and start a
   checkout (3 calls), paced at the rate. Each checkout is followed through the store: accepted
   (the log's received_at) → profile updated (the build of the run that landed it) → audience
   changed (the evaluation that put the profile in `abandoned_cart`) → push request sent (the
   first Meta request carrying the shopper's hashed email, as the sandbox recorded it). Meta
   takes no audience under 100 people: checkouts accepted before the first push are warm-up
   and left out. Also: the follower's own per-run figures (`threadline runs`), micro-batches,
   and peak RSS of collector and follower sampled every 0.5 s (flat: RSS at the end over RSS
   at a third of the run). `--agreement both` runs each rate twice, side by side: with the
   agreement rule (the default; until its fitted model is stored every build is full) and with
   exact rules only (incremental builds); `builds` counts each kind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, emit  # noqa: E402

WRITE_KEY = "wk_bench_web_0123456789"
META_TOKEN = "EAAsandboxSystemUserToken0001"
META_AUDIENCE = "23851234567890001"
PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer at {url}")


def start(args: list[str], cwd: Path, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=(cwd / f"{name}.log").open("wb"))


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def job(folder: Path, collector_port: int, meta_port: int, agreement: bool = True) -> Path:
    config = {"log": "events", "write_keys": {"web": WRITE_KEY},
              "collector": {"port": collector_port, "max_connections": 64}}
    store = {"connector": "profiles", "config": {
        "path": "profiles.duckdb",
        "mappings": {"site.web": {
            "identifiers": {"user_id": "customer_id:web", "email": "email"},
            "traits": {"first_name": "first_name", "last_name": "last_name"},
            "events": {"timestamp": "timestamp", "name": "event"},
            "orders": {"order_id": "order_id", "timestamp": "timestamp", "amount": "total", "currency": "currency"},
            "consent": {"channel": "advertising", "column": "event", "granted": ["Ads Consent Granted"],
                        "timestamp": "timestamp"}}},
        "traits": {"computed": {"last_checkout_at": {"aggregate": "max", "of": "events.timestamp",
                                                     "filter": {"name": ["Checkout Started"]}}}},
        "audiences": {"abandoned_cart": {"where": "last_checkout_at within 14d and (last_order_at is null or "
                                                  "last_order_at < last_checkout_at)"}},
        "activations": {"cart_to_meta": {"audience": "abandoned_cart", "connector": "meta_audiences", "config": {
            "base_url": f"http://127.0.0.1:{meta_port}", "access_token": META_TOKEN, "audience_id": META_AUDIENCE}}},
    }}
    if not agreement:  # exact rules only: a micro-batch's build can be incremental
        store["config"]["resolution"] = {"agreement": None}
    path = folder / "job.yaml"
    path.write_text(json.dumps({"name": "b7", "sources": {"site": {"connector": "events", "config": config}},
                                "destinations": {"store": store}}))
    return path


# ---------------------------------------------------------------------------- senders (child processes)


def send(url: str, events: int, rate: float, seconds: float, start_at: int, out: Path) -> None:
    """The official Segment client: `events` track calls flat out, or shoppers at `rate` calls/s."""
    from segment.analytics import Client

    failed: list[str] = []
    client = Client(WRITE_KEY, host=url, on_error=lambda e, batch: failed.append(str(e)), max_queue_size=100_000,
                    upload_size=100, upload_interval=0.1 if rate else 0.5)
    began = time.time()
    sent = 0
    if rate:
        person = start_at
        while time.time() - began < seconds:
            uid = f"shopper{person}"
            client.identify(uid, {"email": f"{uid}@example.com", "firstName": "Sam", "lastName": f"Doe{person}"})
            client.track(uid, "Ads Consent Granted")
            client.track(uid, "Checkout Started", {"cart_value": 42.0})
            sent += 3
            person += 1
            lag = began + sent / rate - time.time()
            if lag > 0:
                time.sleep(lag)
    else:
        for n in range(events):
            client.track(f"u{start_at + n}", "Product Viewed", {"sku": f"SKU-{n % 500}", "price": 12.5, "page": n},
                         context={"traits": {"email": f"u{start_at + n}@example.com"}})
        sent = events
    client.flush()  # returns when every batch was answered
    ended = time.time()
    client.shutdown()
    out.write_text(json.dumps({"sent": sent, "began": began, "ended": ended, "failed": len(failed)}))


def discard_server(port: int) -> None:
    """The anchor: uvicorn + Starlette that reads, inflates and parses a batch, then drops it."""
    import gzip

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def batch(request):  # type: ignore[no-untyped-def]
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        json.loads(body)
        return JSONResponse({"success": True})

    async def health(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/v1/batch", batch, methods=["POST"]), Route("/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_senders(url: str, senders: int, work: Path, **how: Any) -> list[dict[str, Any]]:
    procs = []
    for i in range(senders):
        out = work / f"sender{i}.json"
        procs.append((subprocess.Popen([PY, __file__, "--send", url, "--out", str(out), "--start-at", str(i * 10_000_000),
                                        *[f"--{k.replace('_', '-')}={v}" for k, v in how.items()]]), out))
    results = []
    for proc, out in procs:
        proc.wait()
        results.append(json.loads(out.read_text()))
    return results


# ---------------------------------------------------------------------------- 1. throughput


def throughput(args: argparse.Namespace, work: Path) -> None:
    durable, discarded, cpu = [], [], {"collector": [], "discard": []}
    for run in range(args.runs):
        for kind in ("collector", "discard"):
            folder = work / f"throughput-{kind}-{run}"
            folder.mkdir()
            port = free_port()
            if kind == "collector":
                server = start([PY, "-m", "threadline", "collect", str(job(folder, port, 1))], folder, "collector")
            else:
                server = start([PY, __file__, "--discard-server", str(port)], folder, "discard")
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/health", server, kind)
            before = cpu_seconds(server.pid)
            results = run_senders(url, args.senders, folder, events=args.events // args.senders)
            cpu[kind].append(cpu_seconds(server.pid) - before)
            stop(server)
            wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
            sent = sum(r["sent"] for r in results)
            if kind == "collector":
                lines = sum(p.read_bytes().count(b"\n") for p in (folder / "events" / "web").glob("*.jsonl"))
                if lines != sent or any(r["failed"] for r in results):
                    raise SystemExit(f"the collector holds {lines} of {sent} events sent")
                durable.append(sent / wall)
            else:
                discarded.append(sent / wall)
    median, anchor = statistics.median(durable), statistics.median(discarded)
    per_cpu = {kind: round(args.events // args.senders * args.senders / statistics.median(v)) for kind, v in cpu.items()}
    emit(bench="B7", what="collector throughput (accepted and fsynced)", events_per_s=round(median),
         runs=[round(x) for x in durable], senders=args.senders, events=args.events, client="segment-analytics-python",
         anchor_discard_events_per_s=round(anchor), ratio_to_anchor=round(median / anchor, 2), bar=5000,
         # what the server alone costs, whatever else shares the machine: events per CPU-second of its process
         collector_events_per_cpu_s=per_cpu["collector"], discard_events_per_cpu_s=per_cpu["discard"])


# ---------------------------------------------------------------------------- 2. latency


class RssSampler(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.samples = pids, {name: [] for name in pids}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for name, pid in self.pids.items():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except FileNotFoundError:
                    continue
                self.samples[name].append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024)
            self.done.wait(0.5)


def pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "n": len(values)}


def latency(args: argparse.Namespace, work: Path, rate: int, agreement: bool) -> None:
    folder = work / f"latency-{rate}-{'agreement' if agreement else 'exact'}"
    folder.mkdir()
    collector_port, meta_port = free_port(), free_port()
    path = job(folder, collector_port, meta_port, agreement)
    meta = start([PY, "-m", "threadline", "sandbox", f"meta_audiences={meta_port}"], folder, "meta")
    collector = start([PY, "-m", "threadline", "collect", str(path)], folder, "collector")
    wait_for(f"http://127.0.0.1:{meta_port}/_sandbox/requests", meta, "meta sandbox")
    wait_for(f"http://127.0.0.1:{collector_port}/health", collector, "collector")
    follower = start([PY, "-m", "threadline", "--log-format", "plain", "sync", str(path), "--follow",
                      "--every", str(args.every), "--max-events", str(args.max_events)], folder, "follower")
    sampler = RssSampler({"collector": collector.pid, "follower": follower.pid})
    sampler.start()
    results = run_senders(f"http://127.0.0.1:{collector_port}", 1, folder, rate=rate, seconds=args.seconds)
    sent = sum(r["sent"] for r in results)
    _caught_up(folder, timeout=120)
    sampler.done.set()
    stop(follower)
    stop(collector)
    pushes = requests.get(f"http://127.0.0.1:{meta_port}/_sandbox/requests").json()
    stop(meta)
    stages = _stages(folder, pushes)
    runs = _runs(folder)
    rss = {name: {"peak_mib": round(max(s), 1), "flat_ratio": round(s[-1] / s[len(s) // 3], 2)}
           for name, s in sampler.samples.items() if len(s) > 3}
    emit(bench="B7", what="event -> audience -> push latency (s)", rate_per_s=rate, seconds=args.seconds, sent=sent,
         resolution="agreement rule on (the default)" if agreement else "exact rules only", builds=runs["builds"],
         achieved_rate=round(sent / (results[0]["ended"] - results[0]["began"]), 1),
         every=args.every, max_events=args.max_events, **stages, micro_batches=runs["micro_batches"],
         follower_runs_p50_of_p50=runs["p50"], follower_runs_max_p99=runs["p99"], rss=rss, bar_p99_push=5.0)


def _caught_up(folder: Path, timeout: float) -> None:
    """Until the follower saved the log's end as its offset and a build followed."""
    log = folder / "events" / "web"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        end = sum(p.stat().st_size for p in log.glob("*.jsonl")) + min(
            (int(p.stem) for p in log.glob("*.jsonl")), default=0)
        with sqlite3.connect(folder / ".threadline" / "state.sqlite") as db:
            row = db.execute("select state from stream_state where stream='web'").fetchone()
            running = db.execute("select count(*) from runs where outcome='running'").fetchone()[0]
        if row and json.loads(row[0]).get("offset") == end and not running:
            return
        time.sleep(0.5)
    raise SystemExit("the follower did not catch up with the log")


def _stages(folder: Path, pushes: list[dict[str, Any]]) -> dict[str, Any]:
    from threadline_profiles.engines.duckdb_crypto import connect_file

    first_push: dict[str, float] = {}
    for request in sorted(pushes, key=lambda r: r["time"]):
        if request["method"] == "POST" and request["path"].endswith("/users") and request["status"] == 200:
            for digest in re.findall(r"[0-9a-f]{64}", request["body"]):
                first_push.setdefault(digest, request["time"])
    offset = time.localtime().tm_gmtoff  # DuckDB's CURRENT_TIMESTAMP lands as local wall-clock time
    with connect_file(folder / "profiles.duckdb", read_only=True) as db:  # encrypted or not
        rows = db.sql(f"""
            WITH checkout AS (
              SELECT c.user_id, i.email, epoch(c.received_at) AS accepted, c._tl_run_id AS run_id, c._tl_key
              FROM raw_site__web c JOIN raw_site__web i ON i.user_id = c.user_id AND i.type = 'identify'
              WHERE c.event = 'Checkout Started'),
            joined AS (
              SELECT m.profile_id, MIN(am.from_seq) AS seq FROM tl_audience_members am
              JOIN tl_members m ON m.profile_id = am.profile_id
              WHERE am.audience = 'abandoned_cart' GROUP BY m.profile_id)
            SELECT c.email, c.accepted, epoch(b.finished_at) - {offset} AS profile_at,
                   epoch(e.evaluated_at) - {offset} AS audience_at
            FROM checkout c
            JOIN tl_builds b ON b.run_id = c.run_id
            JOIN tl_members m ON m.stream = 'web' AND m.pk = c._tl_key
            JOIN joined j ON j.profile_id = m.profile_id
            JOIN tl_audience_evaluations e ON e.seq = j.seq""").fetchall()
    warm = min(first_push.values(), default=float("inf"))
    profile, audience, push = [], [], []
    for email, accepted, profile_at, audience_at in rows:
        if accepted < warm:
            continue  # before Meta's 100-member minimum was reached: nothing could be pushed yet
        profile.append(profile_at - accepted)
        audience.append(audience_at - accepted)
        pushed = first_push.get(hashlib.sha256(email.strip().lower().encode()).hexdigest())
        if pushed is not None:
            push.append(pushed - accepted)
    return {"accepted_to_profile": pcts(profile), "accepted_to_audience": pcts(audience),
            "accepted_to_push": pcts(push), "checkouts_measured": len(profile), "checkouts_pushed": len(push)}


def _runs(folder: Path) -> dict[str, Any]:
    with sqlite3.connect(folder / ".threadline" / "state.sqlite") as db:
        rows = db.execute("select p50, p99 from run_latency").fetchall()
        summaries = [r[0] or "" for r in db.execute("select summary from run_steps where step = 'build'")]
    # each build says whether it was full or incremental: the agreement rule makes every one full
    builds: dict[str, int] = {}
    for mode in re.findall(r"\((full|incremental),", " ".join(summaries)):
        builds[mode] = builds.get(mode, 0) + 1
    return {"micro_batches": len(rows), "builds": builds, "p50": round(statistics.median(r[0] for r in rows), 2) if rows else None,
            "p99": round(max(r[1] for r in rows), 2) if rows else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--max-events", type=int, default=2000)
    parser.add_argument("--agreement", choices=["on", "off", "both"], default="on",
                        help="latency with the agreement rule (every build full until its fitted model is stored), "
                             "exact rules only (incremental builds), or both side by side")
    parser.add_argument("--only", choices=["throughput", "latency"])
    # child-process roles
    parser.add_argument("--send")
    parser.add_argument("--discard-server", type=int)
    parser.add_argument("--out")
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--start-at", type=int, default=0)
    args = parser.parse_args()
    if args.send:
        return send(args.send, args.events, args.rate, args.seconds, args.start_at, Path(args.out))
    if args.discard_server:
        return discard_server(args.discard_server)
    work = OUT / f"b7-{time.strftime('%Y%m%dT%H%M%S')}"
    work.mkdir(parents=True)
    try:
        if args.only in (None, "throughput"):
            throughput(args, work)
        if args.only in (None, "latency"):
            for rate in [int(r) for r in args.rates.split(",")]:
                for agreement in {"on": [True], "off": [False], "both": [True, False]}[args.agreement]:
                    latency(args, work, rate, agreement)
    finally:
        if not os.environ.get("B7_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
