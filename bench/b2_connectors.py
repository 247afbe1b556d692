"""B2 per connector: records/s of every HTTP connector against its sandbox, with the ratio to
the declarative `rest` connector measured in the same run.

    python bench/b2_connectors.py [--size 10000] [--runs 3] [--only hubspot,klaviyo]

The B2 method (bench/b2_http.py): each sandbox runs in its own process (so the reader does not
share a GIL with the server) and serves pre-built pages (`Sandbox.cache_pages`: an answer is
built once, on the warm-up read, and its bytes served again), rate limits are lifted in the
sandboxes and the connectors' request budgets are off, no faults are injected. Every stream gets one warm-up read (which
fills a sandbox's page cache where it has one), then `--runs` full reads through the
connector's own `Source.read` (HTTP, JSON page → Arrow batches). Each read of a connector's
stream is followed by a read of `rest` against the customers sandbox (`--rest-records`
records, 1000 a page), so the anchor is measured under the same load, interleaved.

Prints JSON lines: one per stream (median records/s, each run, the interleaved `rest`
median and the ratio), then one per connector (its streams' records over their median
seconds, the ratio to `rest`, and whether it meets the bar of 50k records/s).
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

BAR = 50_000

# connector → the streams read (name, sync mode). Mailchimp's member_activity is one request per
# member (bounded by requests, not by the connector), so it is not part of the figure.
STREAMS: dict[str, list[tuple[str, str]]] = {
    "hubspot": [("contacts", "full_refresh"), ("contacts", "incremental"), ("deals", "full_refresh"),
                ("associations", "full_refresh")],
    "zendesk": [("users", "full_refresh"), ("tickets", "full_refresh"), ("satisfaction_ratings", "full_refresh"),
                ("user_identities", "full_refresh")],
    "klaviyo": [("profiles", "full_refresh"), ("events", "full_refresh"), ("list_memberships", "full_refresh")],
    "mailchimp": [("members", "full_refresh")],
    "x": [("followers", "full_refresh"), ("users", "full_refresh")],
    "loyaltylion": [("customers", "full_refresh"), ("transactions", "full_refresh")],
    "salesforce": [("Contact", "full_refresh")],
    "shopify": [("customers", "full_refresh")],
}


# --------------------------------------------------------------------------- sandboxes (own processes)


def _sandbox(kind: str, size: int) -> Any:
    if kind == "rest":
        from threadline.sandbox import CustomersSandbox

        return CustomersSandbox(count=size, max_page_size=1000)
    if kind == "hubspot":
        from threadline_hubspot.sandbox import HubspotSandbox

        return HubspotSandbox(contacts=size, companies=size // 10, deals=size // 4, rate_limit=10**9, search_cap=10**9)
    if kind == "zendesk":
        from threadline_zendesk.sandbox import ZendeskSandbox

        return ZendeskSandbox(users=size, tickets=size, ratings=size // 4, export_rate_limit=10**9, rate_limit=10**9)
    if kind == "klaviyo":
        from threadline_klaviyo.sandbox import KlaviyoSandbox

        return KlaviyoSandbox(people=size)
    if kind == "mailchimp":
        from threadline_mailchimp.sandbox import MailchimpSandbox

        return MailchimpSandbox(people=size)
    if kind == "x":
        from threadline_x.sandbox import XSandbox

        return XSandbox(users=size, followers_limit=10**9, lookup_limit=10**9)
    if kind == "loyaltylion":
        from threadline_loyaltylion.sandbox import LoyaltylionSandbox

        return LoyaltylionSandbox(people=size, requests_per_second=10**9)
    if kind == "salesforce":
        from threadline_salesforce.sandbox import SalesforceSandbox

        return SalesforceSandbox(contacts=size, max_batch_size=2000)
    from threadline_shopify.sandbox import ShopifySandbox

    return ShopifySandbox(customers=size, bucket_size=1_000_000, leak_rate=1_000_000.0)


def _serve(kind: str, size: int, conn: Any) -> None:
    box = _sandbox(kind, size)
    box.cache_pages = True  # pre-built pages: the figure is the connector's, not the sandbox's JSON building
    box.start()
    extra = box.usernames(size) if kind == "x" else None
    conn.send((box.base_url, extra))
    conn.recv()  # until the parent says stop
    box.stop()


class Served:
    """A sandbox in its own process, for the length of a `with` block."""

    def __init__(self, kind: str, size: int) -> None:
        self.kind, self.size = kind, size

    def __enter__(self) -> tuple[str, Any]:
        self.parent, child = mp.Pipe()
        self.process = mp.get_context("spawn").Process(target=_serve, args=(self.kind, self.size, child), daemon=True)
        self.process.start()
        return self.parent.recv()

    def __exit__(self, *exc: object) -> None:
        self.parent.send("stop")
        self.process.join(timeout=10)


# --------------------------------------------------------------------------- readers


def _reader(kind: str, base_url: str, extra: Any) -> tuple[Any, Any]:
    """The connector's source and its config pointed at the sandbox (budgets off)."""
    if kind == "rest":
        from threadline.sandbox import CustomersSandbox
        from threadline_rest import RestApiSource, RestConfig

        return RestApiSource(), RestConfig.model_validate({
            "base_url": base_url, "auth": {"type": "bearer", "token": CustomersSandbox.TOKEN},
            "paginator": {"type": "offset", "limit": 1000, "total_path": "total"},
            "streams": [{"name": "customers", "path": "/customers", "primary_key": ["id"], "schema": {
                "id": "int64", "email": "string", "first_name": "string", "last_name": "string", "phone": "string",
                "lifetime_value": "decimal(18,2)", "address": "struct<city: string, postcode: string>",
                "tags": "list<string>", "updated_at": "timestamp"}}],
        })
    if kind == "hubspot":
        from threadline_hubspot import HubspotConfig, HubspotSource
        from threadline_hubspot.sandbox import HubspotSandbox

        return HubspotSource(), HubspotConfig(base_url=base_url, access_token=HubspotSandbox.TOKEN,
                                              requests_per_10_seconds=None, search_requests_per_second=None)
    if kind == "zendesk":
        from threadline_zendesk import ZendeskConfig, ZendeskSource
        from threadline_zendesk.sandbox import ZendeskSandbox

        return ZendeskSource(), ZendeskConfig(base_url=base_url, email=ZendeskSandbox.EMAIL,
                                              api_token=ZendeskSandbox.API_TOKEN, requests_per_minute=None)
    if kind == "klaviyo":
        from threadline_klaviyo import KlaviyoConfig, KlaviyoSource
        from threadline_klaviyo.sandbox import KlaviyoSandbox

        return KlaviyoSource(), KlaviyoConfig(base_url=f"{base_url}/api", api_key=KlaviyoSandbox.API_KEY, page_size=100)
    if kind == "mailchimp":
        from threadline_mailchimp import MailchimpConfig, MailchimpSource
        from threadline_mailchimp.sandbox import MailchimpSandbox

        return MailchimpSource(), MailchimpConfig(base_url=f"{base_url}/3.0", api_key=MailchimpSandbox.API_KEY,
                                                  page_size=1000)
    if kind == "x":
        from threadline_x import XConfig, XSource
        from threadline_x.sandbox import BRANDS, XSandbox

        return XSource(), XConfig.model_validate({
            "base_url": f"{base_url}/2", "bearer_token": XSandbox.BEARER_TOKEN, "followers_of": list(BRANDS),
            "usernames": extra, "page_size": 1000})
    if kind == "loyaltylion":
        from threadline_loyaltylion import LoyaltylionConfig, LoyaltylionSource
        from threadline_loyaltylion.sandbox import LoyaltylionSandbox

        return LoyaltylionSource(), LoyaltylionConfig.model_validate({
            "base_url": f"{base_url}/v2", "api_key": LoyaltylionSandbox.API_KEY, "page_size": 500,
            "requests_per_second": 10**6})
    if kind == "salesforce":
        from threadline_salesforce import SalesforceConfig, SalesforceSource
        from threadline_salesforce.sandbox import SalesforceSandbox as Box

        return SalesforceSource(), SalesforceConfig(
            login_url=base_url, client_id=Box.CLIENT_ID, client_secret=Box.CLIENT_SECRET,
            refresh_token=Box.REFRESH_TOKEN, objects=["Contact"], batch_size=1000)
    from threadline_shopify import ShopifyConfig, ShopifySource
    from threadline_shopify.sandbox import ShopifySandbox

    return ShopifySource(), ShopifyConfig(shop_url=base_url, access_token=ShopifySandbox.ACCESS_TOKEN, page_size=250,
                                          leak_rate=1_000_000.0)


def timed_read(source: Any, config: Any, stream: str, mode: str) -> tuple[float, int]:
    from threadline.contracts import Batch, ReadRequest, SyncMode

    declared = source.discover(config).get(stream)
    started = time.perf_counter()
    rows = sum(m.records.num_rows for m in source.read(config, ReadRequest(declared, SyncMode(mode)))
               if isinstance(m, Batch))
    return time.perf_counter() - started, rows


# --------------------------------------------------------------------------- the run


def bench(kind: str, size: int, runs: int, rest: tuple[Any, Any]) -> None:
    total_records, total_seconds, rest_rates = 0, 0.0, []
    with Served(kind, size) as (base_url, extra):
        source, config = _reader(kind, base_url, extra)
        for stream, mode in STREAMS[kind]:
            _, expected = timed_read(source, config, stream, mode)  # warm-up (fills page caches)
            seconds, anchor = [], []
            for _ in range(runs):
                took, rows = timed_read(source, config, stream, mode)
                if rows != expected:
                    emit(bench="B2", connector=kind, stream=stream, error=f"read {rows} records, warm-up read {expected}")
                    return
                seconds.append(took)
                rest_took, rest_rows = timed_read(*rest, "customers", "full_refresh")
                anchor.append(rest_rows / rest_took)
            rates = [expected / s for s in seconds]
            median, rest_median = statistics.median(rates), statistics.median(anchor)
            rest_rates += anchor
            total_records += expected
            total_seconds += statistics.median(seconds)
            emit(bench="B2", connector=kind, stream=stream, sync_mode=mode, records=expected, runs=runs,
                 median_records_per_s=round(median), runs_records_per_s=[round(r) for r in rates],
                 rest_median_records_per_s=round(rest_median), ratio_to_rest=round(median / rest_median, 2))
    rate = total_records / total_seconds if total_seconds else 0.0
    rest_median = statistics.median(rest_rates)
    emit(bench="B2", connector=kind, streams=len(STREAMS[kind]), records=total_records,
         records_per_s=round(rate), rest_median_records_per_s=round(rest_median),
         ratio_to_rest=round(rate / rest_median, 2), bar_records_per_s=BAR, meets_bar=rate >= BAR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="people (or records) in each vendor sandbox")
    parser.add_argument("--rest-records", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated connectors (default: all)")
    args = parser.parse_args(argv)
    wanted = [k for k in STREAMS if not args.only or k in args.only.split(",")]

    import logging

    logging.disable(logging.WARNING)
    with Served("rest", args.rest_records) as (rest_url, _):
        rest = _reader("rest", rest_url, None)
        timed_read(*rest, "customers", "full_refresh")  # warm-up: fills the customers sandbox's page cache
        for kind in wanted:
            bench(kind, args.size, args.runs, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
