"""B2: HTTP source throughput — a declarative `rest` stream against the customers sandbox,
side by side with a singer-sdk RESTStream tap reading the same sandbox, in the same run.

    python bench/b2_http.py [--records 200000] [--page-size 1000] [--runs 5] [--singer-runs 3]

The sandbox runs in its own process (so the reader does not share a GIL with the server) and
serves pre-serialised pages (a warm-up read fills its cache), so both readers measure the
client side. Both read the same URLs: `/customers?offset=N&limit=1000`, bearer auth, nine
fields per record (int, strings, a decimal-as-string, a struct, a list, a timestamp).

- threadline: `RestApiSource.read` from a job-file config; records become Arrow batches
  (decimal, struct, list and timestamp typed).
- singer-sdk: a minimal `RESTStream` tap (offset paginator, `records_jsonpath`), run
  in-process with its Singer messages written to /dev/null.

Prints one JSON line per reader (median records/s over the runs, and each run) and one with
the ratio. Requirements: bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

TOKEN_NOTE = "bearer token of the customers sandbox"


# --------------------------------------------------------------------------- the sandbox process


def _serve(count: int, page_size: int, conn: Any) -> None:
    from threadline.sandbox import CustomersSandbox

    sandbox = CustomersSandbox(count=count, max_page_size=page_size).start()
    conn.send(sandbox.base_url)
    conn.recv()  # block until the parent says stop
    sandbox.stop()


# --------------------------------------------------------------------------- threadline


def threadline_read(base_url: str, page_size: int) -> int:
    from threadline.contracts import Batch, ReadRequest, SyncMode
    from threadline.sandbox import CustomersSandbox
    from threadline_rest import RestApiSource, RestConfig

    config = RestConfig.model_validate({
        "base_url": base_url,
        "auth": {"type": "bearer", "token": CustomersSandbox.TOKEN},
        "paginator": {"type": "offset", "limit": page_size, "total_path": "total"},
        "streams": [{
            "name": "customers", "path": "/customers", "records_path": "data", "primary_key": ["id"],
            "schema": {
                "id": "int64", "email": "string", "first_name": "string", "last_name": "string",
                "phone": "string", "lifetime_value": "decimal(18,2)",
                "address": "struct<city: string, postcode: string>", "tags": "list<string>",
                "updated_at": "timestamp",
            },
        }],
    })
    source = RestApiSource()
    stream = source.discover(config).get("customers")
    rows = 0
    for message in source.read(config, ReadRequest(stream, SyncMode.FULL_REFRESH)):
        if isinstance(message, Batch):
            rows += message.records.num_rows
    return rows


# --------------------------------------------------------------------------- singer-sdk


def singer_read(base_url: str, page_size: int) -> int:
    from singer_sdk import Tap
    from singer_sdk import typing as th
    from singer_sdk.authenticators import BearerTokenAuthenticator
    from singer_sdk.pagination import BaseOffsetPaginator
    from singer_sdk.streams import RESTStream

    from threadline.sandbox import CustomersSandbox

    class OffsetPaginator(BaseOffsetPaginator):
        def has_more(self, response):  # the same stop rule as the threadline side: the total
            body = response.json()
            return body["offset"] + len(body["data"]) < body["total"]

    class CustomersStream(RESTStream):
        name = "customers"
        path = "/customers"
        primary_keys = ("id",)
        records_jsonpath = "$.data[*]"
        schema = th.PropertiesList(
            th.Property("id", th.IntegerType),
            th.Property("email", th.StringType),
            th.Property("first_name", th.StringType),
            th.Property("last_name", th.StringType),
            th.Property("phone", th.StringType),
            th.Property("lifetime_value", th.StringType),
            th.Property("address", th.ObjectType(th.Property("city", th.StringType), th.Property("postcode", th.StringType))),
            th.Property("tags", th.ArrayType(th.StringType)),
            th.Property("updated_at", th.DateTimeType),
        ).to_dict()

        @property
        def url_base(self) -> str:
            return self.config["api_url"]

        @property
        def authenticator(self):
            return BearerTokenAuthenticator(self, token=self.config["token"])

        def get_new_paginator(self):
            return OffsetPaginator(start_value=0, page_size=page_size)

        def get_url_params(self, context, next_page_token):
            return {"offset": next_page_token or 0, "limit": page_size}

    class TapCustomers(Tap):
        name = "tap-customers"
        config_jsonschema = th.PropertiesList(
            th.Property("api_url", th.StringType), th.Property("token", th.StringType),
        ).to_dict()

        def discover_streams(self):
            return [CustomersStream(self)]

    counted = {"records": 0}

    class Counting:
        """stdout stand-in: counts RECORD messages, throws the text away (like > /dev/null)."""

        def __init__(self, sink):
            self.sink = sink

        def write(self, text: str) -> int:
            counted["records"] += text.count('"type":"RECORD"') + text.count('"type": "RECORD"')
            return self.sink.write(text)

        def flush(self) -> None:
            self.sink.flush()

    tap = TapCustomers(config={"api_url": base_url, "token": CustomersSandbox.TOKEN}, parse_env_config=False)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(Counting(devnull)):
        tap.sync_all()
    return counted["records"]


# --------------------------------------------------------------------------- JSON page → Arrow


def parser_figures(page_size: int, repeats: int = 30) -> dict[str, Any]:
    """One page parsed the ways one could: the kit's pyarrow.json path against json.loads
    followed by pa.Table.from_pylist / pa.array (why the kit reads raw bytes)."""
    import pyarrow as pa

    from threadline.http import PageParser, RestStream
    from threadline.sandbox import CustomersSandbox

    stream = RestStream(name="customers", path="/customers", schema={
        "id": "int64", "email": "string", "first_name": "string", "last_name": "string", "phone": "string",
        "lifetime_value": "decimal(18,2)", "address": "struct<city: string, postcode: string>",
        "tags": "list<string>", "updated_at": "timestamp",
    })
    body = json.dumps({"data": CustomersSandbox(count=page_size).customers}).encode()
    wire = pa.schema([f if not (pa.types.is_timestamp(f.type) or pa.types.is_decimal(f.type)) else pa.field(f.name, pa.string())
                      for f in stream.schema])

    class Page:  # what the parser reads of a requests.Response
        headers = {"Content-Type": "application/json"}
        content = body

    parser = PageParser(stream.schema, "data")

    def kit() -> None:
        parser(Page())

    def loads_from_pylist() -> None:
        pa.Table.from_pylist(json.loads(body)["data"], schema=wire)

    def loads_pa_array() -> None:
        pa.RecordBatch.from_struct_array(pa.array(json.loads(body)["data"], type=pa.struct(list(wire))))

    out = {}
    for name, fn in (("pyarrow_json_raw_bytes", kit), ("json_loads_from_pylist", loads_from_pylist),
                     ("json_loads_pa_array", loads_pa_array)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        out[name] = round(page_size / statistics.median(times))
    return out


# --------------------------------------------------------------------------- the run


def timed(fn, *args) -> tuple[float, int]:
    started = time.perf_counter()
    rows = fn(*args)
    return time.perf_counter() - started, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--singer-runs", type=int, default=3)
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)  # singer-sdk logs every stream's metrics; not part of the figure
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(args.records, args.page_size, child), daemon=True)
    server.start()
    base_url = parent.recv()
    try:
        warm = threadline_read(base_url, args.page_size)  # fills the sandbox's page cache
        if warm != args.records:
            print(json.dumps({"bench": "B2", "error": f"warm-up read {warm} records, expected {args.records}"}))
            return 1
        print(json.dumps({"bench": "B2", "metric": "page to Arrow, records/s (median, one page)",
                          **parser_figures(args.page_size)}), flush=True)
        figures = {}
        for reader, fn, runs in (("threadline_rest", threadline_read, args.runs), ("singer_sdk_reststream", singer_read, args.singer_runs)):
            results = [timed(fn, base_url, args.page_size) for _ in range(runs)]
            if any(rows != args.records for _, rows in results):
                print(json.dumps({"bench": "B2", "reader": reader, "error": f"read {[r for _, r in results]} records"}))
                return 1
            rates = [args.records / seconds for seconds, _ in results]
            figures[reader] = statistics.median(rates)
            print(json.dumps({
                "bench": "B2", "reader": reader, "records": args.records, "page_size": args.page_size,
                "runs": runs, "median_records_per_s": round(figures[reader]),
                "runs_records_per_s": [round(r) for r in rates],
                "median_seconds": round(statistics.median(s for s, _ in results), 3),
            }), flush=True)
        ratio = figures["threadline_rest"] / figures["singer_sdk_reststream"]
        print(json.dumps({
            "bench": "B2", "metric": "ratio threadline_rest / singer_sdk_reststream",
            "ratio": round(ratio, 2), "bar_records_per_s": 50_000, "bar_ratio": 5,
            "meets_bar": figures["threadline_rest"] >= 50_000 and ratio >= 5,
        }), flush=True)
        return 0
    finally:
        parent.send("stop")
        server.join(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
