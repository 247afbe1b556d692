"""Traits and audiences: how long the two stages after a build take, on DuckDB.

    python bench/traits_audiences.py --customers 50000 --orders 200000 --events 300000

Lands synthetic customers (one CRM record each, with email consent), orders and events
through the profiles destination, builds once (full), then lands 1% more orders and builds
again; prints one JSON line per build with the `traits` and `audiences` stage seconds (the
rest of the build is resolution, measured by B3). Every fact is a record of its own, linked
to its customer by email (so the frequency guard is lifted: see the config below).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from threadline_profiles import api
from threadline_profiles.testing import Lander

CATEGORIES = np.array(["shoes", "hats", "bags", "socks", "coats", "belts", "scarves", "gloves"])
EVENTS = np.array(["page_view", "email_opened", "email_clicked", "cart_abandoned", "search"])
AUDIENCES = {
    "loyal": {"where": "frequency_score >= 4 and monetary_score >= 4", "requires_consent": ["email"]},
    "lapsed": {"where": "churn_risk = 'high' and lifetime_value > 100"},
    "recent_buyers": {"where": "last_order_at within 7d"},
    "abandoned_cart": {"where": "last_event = 'cart_abandoned' and last_seen_at within 7d", "exclude": ["recent_buyers"]},
    "shoe_lovers": {"where": "top_categories contains 'shoes' and email_engagement_90d > 0"},
}


def tables(customers: int, orders: int, events: int, seed: int = 3, offset: int = 0) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    emails = np.char.add(np.char.add("c", np.arange(customers).astype(str)), "@bench.test")
    start = np.datetime64("2023-01-01T00:00:00")

    def when(n: int) -> np.ndarray:
        return start + rng.integers(0, 545 * 86400, n).astype("timedelta64[s]")

    who = rng.zipf(1.6, orders) % customers
    return {
        "crm.customers": pa.table({"id": np.arange(customers).astype(str), "email": emails,
                                   "optin": rng.choice(np.array(["yes", "no", None], dtype=object), customers)}),
        "shop.orders": pa.table({"id": np.char.add("o", (np.arange(orders) + offset).astype(str)), "email": emails[who],
                                 "at": when(orders), "amount": np.round(rng.gamma(2.0, 30.0, orders), 2),
                                 "category": CATEGORIES[rng.integers(0, len(CATEGORIES), orders)]}),
        "web.events": pa.table({"id": np.char.add("e", np.arange(events).astype(str)),
                                "email": emails[rng.integers(0, customers, events)], "at": when(events),
                                "event": EVENTS[rng.integers(0, len(EVENTS), events)]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--full-only", action="store_true", help="Skip the second (incremental) build.")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tl_bench_traits_"))
    config = {
        "path": str(folder / "profiles.duckdb"), "resolve_on_finish": False,
        "mappings": {
            "crm.customers": {"identifiers": {"email": "email"}, "consent": {"channel": "email", "column": "optin"}},
            "shop.orders": {"identifiers": {"email": "email"},
                            "orders": {"order_id": "id", "timestamp": "at", "amount": "amount", "category": "category"}},
            "web.events": {"identifiers": {"email": "email"}, "events": {"timestamp": "at", "name": "event"}},
        },
        "traits": {"as_of": "2024-06-30", "computed": {
            "last_event": {"aggregate": "last", "of": "events.name"},
            "spend_90d": {"aggregate": "sum", "of": "orders.amount", "window": "90d"}}},
        "audiences": AUDIENCES,
        # a customer's orders and events all carry their email: the frequency guard, meant for
        # placeholder values shared by strangers, must not take heavy buyers apart
        "resolution": {"max_records_per_value": 1_000_000},
    }
    lander = Lander(config)
    for key, table in tables(args.customers, args.orders, args.events).items():
        source, stream = key.split(".")
        lander.land(source, stream, table, batch_rows=100_000)
    more = tables(args.customers, args.orders // 100, 0, seed=4, offset=args.orders)["shop.orders"]
    with lander.store() as store:
        for label in ("full",) if args.full_only else ("full", "after 1% more orders"):
            if label != "full":
                lander.land("shop", "orders", more, run_id="run-2", batch_rows=100_000)
            started = time.monotonic()
            result = api.build(store, report=False)
            sizes = {r["audience"]: r["size"] for r in store.engine.rows(
                "SELECT audience, size FROM tl_audience_sizes WHERE seq = (SELECT MAX(seq) FROM tl_audience_sizes)")}
            print(json.dumps({
                "build": label, "mode": result.mode, "records": result.records, "profiles": result.profiles,
                "traits_s": result.stage_seconds.get("traits"), "audiences_s": result.stage_seconds.get("audiences"),
                "build_s": round(time.monotonic() - started, 2), "stages_s": result.stage_seconds, "audience_sizes": sizes,
                "interval_rows": store.engine.scalar("SELECT COUNT(*) FROM tl_audience_members"),
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            }))


if __name__ == "__main__":
    main()
