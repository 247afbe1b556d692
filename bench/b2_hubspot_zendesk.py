"""B2 for the HubSpot and Zendesk connectors: records/s of each stream against its sandbox.

    python bench/b2_hubspot_zendesk.py [--records 20000] [--runs 3] [--only hubspot|zendesk]

The B2 method (bench/b2_http.py): the sandbox runs in its own process (so the reader does not
share a GIL with the server), one warm-up read, then `--runs` full reads of each stream through
the connector's `Source.read` (HTTP, JSON, Arrow batches); the figure is the median records/s.
These sandboxes build every page on request (no page cache), so on a 2-core machine the
server's work competes with the reader's: the figures are a floor. The vendors' rate limits
are off in the sandboxes and the connectors' request budgets are off: this measures the
connector, not HubSpot's 100 requests per 10 s or Zendesk's 10 export requests a minute.

Pages at the vendors' maxima: HubSpot lists 100 records a page, search 200; Zendesk exports
1000, satisfaction ratings 100. HubSpot contacts are read twice: full refresh (list) and
incremental from the beginning (search, split at every page).

Prints one JSON line per stream: median records/s, each run's figure, and the load average.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit


def _serve(kind: str, records: int, conn: Any) -> None:
    if kind == "hubspot":
        from threadline_hubspot.sandbox import HubspotSandbox

        box: Any = HubspotSandbox(contacts=records, companies=records // 10, deals=records // 4,
                                  rate_limit=10**9, search_cap=10**9)
    else:
        from threadline_zendesk.sandbox import ZendeskSandbox

        box = ZendeskSandbox(users=records, tickets=records, ratings=records // 4,
                             export_rate_limit=10**9, rate_limit=10**9)
    box.start()
    conn.send(box.base_url)
    conn.recv()  # until the parent says stop
    box.stop()


def _reader(kind: str, base_url: str) -> tuple[Any, Any]:
    if kind == "hubspot":
        from threadline_hubspot import HubspotConfig, HubspotSource
        from threadline_hubspot.sandbox import HubspotSandbox

        return HubspotSource(), HubspotConfig(base_url=base_url, access_token=HubspotSandbox.TOKEN,
                                              requests_per_10_seconds=None, search_requests_per_second=None)
    from threadline_zendesk import ZendeskConfig, ZendeskSource
    from threadline_zendesk.sandbox import ZendeskSandbox

    return ZendeskSource(), ZendeskConfig(base_url=base_url, email=ZendeskSandbox.EMAIL,
                                          api_token=ZendeskSandbox.API_TOKEN, requests_per_minute=None)


def read_all(source: Any, config: Any, stream: str, mode: str) -> int:
    from threadline.contracts import Batch, ReadRequest, SyncMode

    declared = source.discover(config).get(stream)
    return sum(m.records.num_rows for m in source.read(config, ReadRequest(declared, SyncMode(mode)))
               if isinstance(m, Batch))


def bench(kind: str, streams: list[tuple[str, str]], records: int, runs: int) -> None:
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(kind, records, child), daemon=True)
    server.start()
    base_url = parent.recv()
    try:
        source, config = _reader(kind, base_url)
        for stream, mode in streams:
            expected = read_all(source, config, stream, mode)  # warm-up
            rates, seconds = [], []
            for _ in range(runs):
                started = time.perf_counter()
                rows = read_all(source, config, stream, mode)
                took = time.perf_counter() - started
                if rows != expected:
                    emit(bench="B2", connector=kind, stream=stream, error=f"read {rows} records, warm-up read {expected}")
                    return
                rates.append(rows / took)
                seconds.append(took)
            emit(bench="B2", connector=kind, stream=stream, sync_mode=mode, records=expected, runs=runs,
                 median_records_per_s=round(statistics.median(rates)), runs_records_per_s=[round(r) for r in rates],
                 median_seconds=round(statistics.median(seconds), 3))
    finally:
        parent.send("stop")
        server.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["hubspot", "zendesk"])
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    if args.only in (None, "hubspot"):
        bench("hubspot", [("contacts", "full_refresh"), ("contacts", "incremental"), ("deals", "full_refresh"),
                          ("associations", "full_refresh")], args.records, args.runs)
    if args.only in (None, "zendesk"):
        bench("zendesk", [("users", "full_refresh"), ("tickets", "full_refresh"),
                          ("satisfaction_ratings", "full_refresh"), ("user_identities", "full_refresh")],
              args.records, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
