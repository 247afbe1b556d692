"""B2 for the Salesforce and Shopify connectors: records/s of a full read against each sandbox.

    python bench/b2_salesforce_shopify.py [--records 50000] [--runs 3]

B2's method (bench/b2_http.py): the sandbox runs in its own process (so the reader does not
share a GIL with the server) and serves pre-serialised pages (a warm-up read fills its page
cache), so the figure is the client side: HTTP, JSON page → Arrow batch, typed to the stream's
schema. No faults are injected. One JSON line per connector: the median of `--runs` reads.

- salesforce: the Contact stream, 24 fields from describe (custom fields, currency as
  decimal, datetimes, dates, booleans), via /queryAll with `Sforce-Query-Options: batchSize=1000`
  and `nextRecordsUrl`, OAuth2 refresh-token flow first.
- shopify: the customers stream (22 columns: structs and a list of address structs, money
  as decimal, timestamps with offsets), 250 a page (Shopify's largest page) by `Link` headers.
  The sandbox's leaky bucket is made wide for the run: against a real store the bucket, not
  the client, bounds a read (2 calls/s × 250 = 500 records/s on standard plans, 5,000 on Plus).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any


def _serve(vendor: str, records: int, conn: Any) -> None:
    if vendor == "salesforce":
        from threadline_salesforce.sandbox import SalesforceSandbox

        box: Any = SalesforceSandbox(contacts=records, max_batch_size=2000)
    else:
        from threadline_shopify.sandbox import ShopifySandbox

        box = ShopifySandbox(customers=records, bucket_size=1_000_000, leak_rate=1_000_000.0)
    box.start()
    conn.send((box.base_url, len(box.records("Contact")) if vendor == "salesforce" else len(box.customers())))
    conn.recv()
    box.stop()


def read_salesforce(base_url: str) -> int:
    from threadline.contracts import Batch, ReadRequest, SyncMode
    from threadline_salesforce import SalesforceConfig, SalesforceSource
    from threadline_salesforce.sandbox import SalesforceSandbox as Box

    config = SalesforceConfig(login_url=base_url, client_id=Box.CLIENT_ID, client_secret=Box.CLIENT_SECRET,
                              refresh_token=Box.REFRESH_TOKEN, objects=["Contact"], batch_size=1000)
    source = SalesforceSource()
    stream = source.discover(config).get("Contact")
    return sum(m.records.num_rows for m in source.read(config, ReadRequest(stream, SyncMode.FULL_REFRESH))
               if isinstance(m, Batch))


def read_shopify(base_url: str) -> int:
    from threadline.contracts import Batch, ReadRequest, SyncMode
    from threadline_shopify import ShopifyConfig, ShopifySource
    from threadline_shopify.sandbox import ShopifySandbox as Box

    config = ShopifyConfig(shop_url=base_url, access_token=Box.ACCESS_TOKEN, page_size=250, leak_rate=1_000_000.0)
    source = ShopifySource()
    stream = source.discover(config).get("customers")
    return sum(m.records.num_rows for m in source.read(config, ReadRequest(stream, SyncMode.FULL_REFRESH))
               if isinstance(m, Batch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["salesforce", "shopify"])
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)
    readers = {"salesforce": (read_salesforce, "Contact", 1000), "shopify": (read_shopify, "customers", 250)}
    for vendor, (read, stream, page_size) in readers.items():
        if args.only and vendor != args.only:
            continue
        parent, child = mp.Pipe()
        server = mp.get_context("spawn").Process(target=_serve, args=(vendor, args.records, child), daemon=True)
        server.start()
        base_url, expected = parent.recv()
        try:
            warm = read(base_url)  # fills the sandbox's page cache
            if warm != expected:
                print(json.dumps({"bench": "B2", "connector": vendor, "error": f"read {warm}, expected {expected}"}))
                return 1
            seconds = []
            for _ in range(args.runs):
                started = time.perf_counter()
                rows = read(base_url)
                seconds.append(time.perf_counter() - started)
                assert rows == expected, (rows, expected)
            rates = [expected / s for s in seconds]
            print(json.dumps({
                "bench": "B2", "connector": vendor, "stream": stream, "records": expected, "page_size": page_size,
                "runs": args.runs, "median_records_per_s": round(statistics.median(rates)),
                "runs_records_per_s": [round(r) for r in rates], "median_seconds": round(statistics.median(seconds), 3),
                "load_average": [round(x, 2) for x in os.getloadavg()], "bar_records_per_s": 50_000,
            }), flush=True)
        finally:
            parent.send("stop")
            server.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
