"""B2 for the Mailchimp and Klaviyo connectors: records/s of each stream against its sandbox.

    python bench/b2_mailchimp_klaviyo.py [--people 20000] [--runs 3] [--only mailchimp|klaviyo]

The B2 method (bench/b2_http.py): the sandbox runs in its own process (so the reader does not
share a GIL with the server), one warm-up read, then `--runs` full reads of each stream through
the connector's `Source.read` (HTTP, JSON, Arrow batches); the figure is the median records/s.
Unlike the customers sandbox these sandboxes serialise every page on request (no page cache),
so on a 2-core machine the server's work competes with the reader's: the figures are a floor.

Pages: Mailchimp members 1000 a page (its maximum), Klaviyo profiles 100 (its maximum) and
events 200 (fixed by Klaviyo). Mailchimp's member_activity costs one request per member.

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


def _serve(kind: str, people: int, conn: Any) -> None:
    if kind == "mailchimp":
        from threadline_mailchimp.sandbox import MailchimpSandbox as Box
    else:
        from threadline_klaviyo.sandbox import KlaviyoSandbox as Box  # type: ignore[assignment]
    box = Box(people=people).start()
    conn.send(box.base_url)
    conn.recv()  # until the parent says stop
    box.stop()


def _reader(kind: str, base_url: str) -> tuple[Any, Any]:
    if kind == "mailchimp":
        from threadline_mailchimp import MailchimpConfig, MailchimpSource
        from threadline_mailchimp.sandbox import MailchimpSandbox

        return MailchimpSource(), MailchimpConfig(base_url=f"{base_url}/3.0", api_key=MailchimpSandbox.API_KEY, page_size=1000)
    from threadline_klaviyo import KlaviyoConfig, KlaviyoSource
    from threadline_klaviyo.sandbox import KlaviyoSandbox

    return KlaviyoSource(), KlaviyoConfig(base_url=f"{base_url}/api", api_key=KlaviyoSandbox.API_KEY, page_size=100)


def read_all(source: Any, config: Any, stream: str) -> int:
    from threadline.contracts import Batch, ReadRequest, SyncMode

    declared = source.discover(config).get(stream)
    return sum(m.records.num_rows for m in source.read(config, ReadRequest(declared, SyncMode.FULL_REFRESH))
               if isinstance(m, Batch))


def bench(kind: str, streams: list[str], people: int, runs: int) -> None:
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(kind, people, child), daemon=True)
    server.start()
    base_url = parent.recv()
    try:
        source, config = _reader(kind, base_url)
        for stream in streams:
            expected = read_all(source, config, stream)  # warm-up
            rates, seconds = [], []
            for _ in range(runs):
                started = time.perf_counter()
                rows = read_all(source, config, stream)
                took = time.perf_counter() - started
                if rows != expected:
                    emit(bench="B2", connector=kind, stream=stream, error=f"read {rows} records, warm-up read {expected}")
                    return
                rates.append(rows / took)
                seconds.append(took)
            emit(bench="B2", connector=kind, stream=stream, records=expected, people=people, runs=runs,
                 median_records_per_s=round(statistics.median(rates)), runs_records_per_s=[round(r) for r in rates],
                 median_seconds=round(statistics.median(seconds), 3))
    finally:
        parent.send("stop")
        server.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["mailchimp", "klaviyo"])
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    if args.only in (None, "mailchimp"):
        bench("mailchimp", ["members", "lists"], args.people, args.runs)
        bench("mailchimp", ["member_activity"], min(args.people, 2000), args.runs)
    if args.only in (None, "klaviyo"):
        bench("klaviyo", ["profiles", "events", "list_memberships"], args.people, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
