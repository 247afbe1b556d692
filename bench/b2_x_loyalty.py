"""B2 for the x and loyaltylion sources: records/s of a full read against each one's sandbox.

    python bench/b2_x_loyalty.py [--runs 3] [--x-users 20000] [--loyalty-people 10000]

The B2 method (bench/b2_http.py): the sandbox runs in its own process, so the reader does not
share a GIL with the server; a warm-up read comes first; each figure is the median of `--runs`
full reads through the source's own `read` (HTTP, parsing to Arrow, flattening), counting the
rows of its batches. Rate limits are raised in the sandboxes: the figure is what the client
can do, not what the vendor allows (X: 15 followers pages per 15 minutes, i.e. at most 15,000
followers per window; LoyaltyLion: 20 requests a second, 10,000 records a second at 500 a page).
Unlike B2's customers sandbox, these sandboxes build every page per request, so the server's
JSON encoding is inside the figure.

Prints one JSON line per connector and stream (median records/s, each run, load average).
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
from common import emit  # noqa: E402


def _serve(kind: str, size: int, conn: Any) -> None:
    if kind == "x":
        from threadline_x.sandbox import XSandbox

        sandbox: Any = XSandbox(users=size, followers_limit=10**9, lookup_limit=10**9).start()
        conn.send((sandbox.base_url, sandbox.usernames(size)))
    else:
        from threadline_loyaltylion.sandbox import LoyaltylionSandbox

        sandbox = LoyaltylionSandbox(people=size, requests_per_second=10**9).start()
        conn.send((sandbox.base_url, []))
    conn.recv()  # until the parent says stop
    sandbox.stop()


def _config(kind: str, base_url: str, usernames: list[str]) -> tuple[Any, Any]:
    if kind == "x":
        from threadline_x import XConfig, XSource
        from threadline_x.sandbox import BRANDS, XSandbox

        return XSource(), XConfig.model_validate({
            "base_url": f"{base_url}/2", "bearer_token": XSandbox.BEARER_TOKEN, "followers_of": list(BRANDS),
            "usernames": usernames, "page_size": 1000,
        })
    from threadline_loyaltylion import LoyaltylionConfig, LoyaltylionSource
    from threadline_loyaltylion.sandbox import LoyaltylionSandbox

    return LoyaltylionSource(), LoyaltylionConfig.model_validate({
        "base_url": f"{base_url}/v2", "api_key": LoyaltylionSandbox.API_KEY, "page_size": 500, "requests_per_second": 10**6,
    })


def read_all(source: Any, config: Any, stream: str) -> tuple[float, int]:
    from threadline.contracts import Batch, ReadRequest, SyncMode

    request = ReadRequest(source.discover(config).get(stream), SyncMode.FULL_REFRESH)
    started = time.perf_counter()
    rows = sum(m.records.num_rows for m in source.read(config, request) if isinstance(m, Batch))
    return time.perf_counter() - started, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--x-users", type=int, default=20_000)
    parser.add_argument("--loyalty-people", type=int, default=10_000)
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    for kind, size, streams in (("x", args.x_users, ("followers", "users")),
                                ("loyaltylion", args.loyalty_people, ("customers", "transactions"))):
        parent, child = mp.Pipe()
        server = mp.get_context("spawn").Process(target=_serve, args=(kind, size, child), daemon=True)
        server.start()
        base_url, usernames = parent.recv()
        try:
            source, config = _config(kind, base_url, usernames)
            for stream in streams:
                _, expected = read_all(source, config, stream)  # warm-up
                results = [read_all(source, config, stream) for _ in range(args.runs)]
                if any(rows != expected for _, rows in results):
                    emit(bench="B2", connector=kind, stream=stream, error=f"runs read {[r for _, r in results]} rows")
                    return 1
                rates = [rows / seconds for seconds, rows in results]
                emit(bench="B2", connector=kind, stream=stream, records=expected, runs=args.runs,
                     median_records_per_s=round(statistics.median(rates)), runs_records_per_s=[round(r) for r in rates],
                     median_seconds=round(statistics.median(s for s, _ in results), 3))
        finally:
            parent.send("stop")
            server.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
