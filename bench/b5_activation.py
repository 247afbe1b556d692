"""B5: activation — normalizing and hashing members for Meta, and pushing them to the Meta sandbox.

    python bench/b5_activation.py                              # (a) 1M members, (b) 100k pushed
    python bench/b5_activation.py --members 200000 --push-members 20000 --runs 3

(a) prepare(): `MetaAudiences.prepare` (one DuckDB SELECT, 2 threads) on `--members` members,
    all twelve hashed keys; the figure is SHA-256 hashed identifiers a second (non-empty
    prepared values / median seconds) against the bar of 500k/s, and members a second.
(b) push: `--push-members` prepared members added to the Meta sandbox's audience through the
    destination's writer (JSON built by DuckDB, kit HTTP client, upload session), 10,000 rows a
    request, then finish(). The sandbox runs in its own process (it parses and validates every
    row, so it shares the machine's two cores with the pusher: the figure is a floor); the
    push runs in a fresh child process so its peak RSS is its own. The audience is reset before
    each run, so every run adds everyone. Prints rows per request, requests, rows/s and the
    pusher's and the sandbox's peak RSS.
(c) the diff of a 1M-member audience (the profile store's push runner) is not here yet: see
    the marked place below.

Each part runs once to warm up, then `--runs` times; figures are medians. Data: members
built column-wise from bench/common.py `customers()` (names, emails, 10-digit phones with +1,
cities, 5-digit postal codes), with regions as codes and full names, one member in ten in
GB with a UK postcode, birth dates 1940–2005, every field present. One JSON line per part.
"""

from __future__ import annotations

import argparse
import os
import multiprocessing as mp
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import customers, emit  # noqa: E402

REGIONS = np.array(["TX", "CA", "New York", "ohio", "WA", "Illinois", "fl", "MA"])
UK_POSTCODES = np.array(["M1 1AE", "SW1A 1AA", "EH1 1YZ", "B33 8TH"])


def members(n: int, seed: int = 5) -> pa.Table:
    """n members in MEMBER_SCHEMA, built column-wise (no per-row Python)."""
    from threadline.contracts import MEMBER_SCHEMA

    base = customers(n, seed=seed)
    rng = np.random.default_rng(seed)
    uk = rng.random(n) < 0.1
    births = (np.datetime64("1940-01-01") + rng.integers(0, 65 * 365, n)).astype("datetime64[D]")
    postal = pc.if_else(pa.array(uk), pa.array(UK_POSTCODES[rng.integers(0, len(UK_POSTCODES), n)]),
                        base.column("postal_code"))
    return pa.table({
        "member_id": base.column("customer_id"),
        "email": base.column("email"),
        "phone": pc.binary_join_element_wise(pa.scalar("+1"), base.column("phone"), ""),
        "first_name": base.column("first_name"),
        "last_name": base.column("last_name"),
        "address_line1": pc.binary_join_element_wise(pc.cast(pa.array(rng.integers(1, 999, n)), pa.string()),
                                                     pa.scalar("Main St"), " "),
        "city": base.column("city"),
        "region": pa.array(REGIONS[rng.integers(0, len(REGIONS), n)]),
        "postal_code": postal,
        "country": pc.if_else(pa.array(uk), pa.scalar("GB"), pa.scalar("US")),
        "birth_date": pc.cast(pa.array(births), pa.string()),
    }, schema=MEMBER_SCHEMA)


def peak_rss_mib() -> int:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the
    process that forked us, so a child of a 1M-member parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def config_for(base_url: str = "http://127.0.0.1:9") -> Any:
    from threadline_meta_audiences import MetaAudiencesConfig
    from threadline_meta_audiences.sandbox import MetaSandbox

    return MetaAudiencesConfig(base_url=base_url, api_version=MetaSandbox.API_VERSION,
                               audience_id=MetaSandbox.AUDIENCE_ID, access_token=MetaSandbox.ACCESS_TOKEN)


# --------------------------------------------------------------------------- (a) normalize + hash


def bench_prepare(n: int, runs: int) -> None:
    from threadline_meta_audiences import MetaAudiences

    table = members(n)
    dest, config = MetaAudiences(), config_for()
    prepared = dest.prepare(config, table)  # warm-up, and the count of identifiers it hashes
    identifiers = sum(col.length() - col.null_count for col in prepared.columns[1:])
    del prepared
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        dest.prepare(config, table)
        seconds.append(time.perf_counter() - t0)
    median = statistics.median(seconds)
    emit(bench="B5", part="a", what="Meta prepare(): normalize + SHA-256, DuckDB, 2 threads", members=n,
         keys=len(config.identifiers), identifiers=identifiers, runs=runs, median_seconds=round(median, 3),
         runs_seconds=[round(s, 3) for s in seconds], identifiers_per_s=round(identifiers / median),
         members_per_s=round(n / median), bar_identifiers_per_s=500_000)


# --------------------------------------------------------------------------- (b) push to the sandbox


def _serve(conn: Any) -> None:
    from threadline_meta_audiences.sandbox import MetaSandbox

    box = MetaSandbox().start()
    conn.send(box.base_url)
    while True:
        command = conn.recv()
        if command == "reset":
            box.reset()
            conn.send("ok")
        elif command == "stop":
            box.stop()
            conn.send(peak_rss_mib())
            return


def push_child(n: int, runs: int, batch: int) -> None:
    """Runs in its own process (see the module docstring): prints the (b) JSON line."""
    import logging

    from threadline.contracts import AudienceTarget, PushMode
    from threadline_meta_audiences import MetaAudiences

    logging.disable(logging.WARNING)
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    base_url = parent.recv()
    dest, config = MetaAudiences(), config_for(base_url)
    prepared = dest.prepare(config, members(n))

    def one_push() -> tuple[float, int, int]:
        parent.send("reset")
        parent.recv()
        target = AudienceTarget("b5", "b5_audience", PushMode.DIFF, "b5", prepared.num_rows, 0)
        t0 = time.perf_counter()
        writer = dest.open_audience(config, target)
        for offset in range(0, prepared.num_rows, batch):
            writer.add(prepared.slice(offset, batch))
        report = writer.finish()
        took = time.perf_counter() - t0
        requests = sum(s["batches"] for s in report.details["sessions"])
        if report.match_estimate != n or report.accepted != n:
            raise SystemExit(f"the sandbox holds {report.match_estimate} members and accepted {report.accepted}, not {n}")
        return took, requests, report.sent

    try:
        one_push()  # warm-up
        results = [one_push() for _ in range(runs)]
    finally:
        parent.send("stop")
        sandbox_rss = parent.recv()
        server.join(timeout=10)
    seconds = [r[0] for r in results]
    median = statistics.median(seconds)
    requests, rows = results[0][1], results[0][2]
    emit(bench="B5", part="b", what="push to the Meta sandbox (add, one session), sandbox in its own process",
         members=n, rows_per_request=batch, requests=requests, runs=runs, median_seconds=round(median, 3),
         runs_seconds=[round(s, 3) for s in seconds], rows_per_s=round(rows / median),
         pusher_peak_rss_mib=peak_rss_mib(),
         sandbox_peak_rss_mib=sandbox_rss)


# --------------------------------------------------------------------------- (c) diff of 1M members
#
# The ledger holds what the platform was last sent (prepared rows of 1M members); the new
# evaluation has 2% of them gone, 2% new and 0.5% with a changed email. The diff is what a
# push computes before it sends anything (Ledger.diff in threadline_profiles.activation.push).


def side_connection_diff(ledger_rows: pa.Table, current: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The diff as pushes computed it before issue 18: the ledger copied out of the store into
    a fresh DuckDB connection. Kept here only as the side-by-side reference."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.register("cur", current)
        con.register("led", ledger_rows)
        changed = " OR ".join(f'c."{c}" IS DISTINCT FROM l."{c}"' for c in current.column_names if c != "member_id")
        con.execute(f"CREATE TEMP TABLE cand AS SELECT c.* FROM cur AS c LEFT JOIN led AS l "
                    f"ON l.member_id = c.member_id WHERE l.member_id IS NULL OR {changed}")
        adds = con.sql("SELECT * FROM cand ORDER BY member_id").to_arrow_table()
        removes = con.sql(f"SELECT l.* FROM led AS l LEFT JOIN cur AS c ON c.member_id = l.member_id "
                          f"WHERE c.member_id IS NULL OR {changed} ORDER BY l.member_id").to_arrow_table()
    finally:
        con.close()
    return adds, removes


def bench_diff(n: int, runs: int, engine: str) -> None:
    import tempfile
    import uuid

    from threadline_meta_audiences import MetaAudiences
    from threadline_profiles.activation.push import Ledger
    from threadline_profiles.store import ProfileStore

    dest, config = MetaAudiences(), config_for()
    gone, new, changed = n // 50, n // 50, n // 200
    everyone = members(n + new)
    before = dest.prepare(config, everyone.slice(0, n))
    rows = everyone.slice(gone)  # the first 2% left, 2% joined at the end
    emails = rows.column("email").to_pylist()
    for i in range(0, changed):
        emails[i * 150] = f"changed.{i}@example.org"
    rows = rows.set_column(rows.column_names.index("email"), "email", pa.array(emails, pa.string()))
    after = dest.prepare(config, rows)
    schema = f"tl_bench_b5_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        store_config = ({"path": f"{tmp}/p.duckdb"} if engine == "duckdb"
                        else {"engine": "postgres", "schema": schema, "report_dir": tmp})
        store = ProfileStore.open(store_config)
        try:
            ledger = Ledger(store, "bench", before.schema)
            ledger.replace(before)
            timings: dict[str, list[float]] = {"store engine": [], "side connection": []}
            counts = {}
            for _ in range(runs):  # interleaved, so both see the same machine
                t0 = time.perf_counter()
                adds, removes = ledger.diff(after)
                timings["store engine"].append(time.perf_counter() - t0)
                counts["store engine"] = (adds.num_rows, removes.num_rows)
                t0 = time.perf_counter()
                adds, removes = side_connection_diff(ledger.engine.query(f"SELECT * FROM {ledger.table}"), after)
                timings["side connection"].append(time.perf_counter() - t0)
                counts["side connection"] = (adds.num_rows, removes.num_rows)
        finally:
            if engine == "postgres":
                store.engine.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            store.close()
    anchor = statistics.median(timings["side connection"])
    for how, seconds in timings.items():
        median = statistics.median(seconds)
        emit(bench="B5", part="c", what=f"diff of an audience against its push ledger ({engine} store, prepared Meta rows), "
             f"computed in the {how}", engine=engine, how=how, members=n, expected_adds=new + changed,
             expected_removes=gone + changed, adds=counts[how][0], removes=counts[how][1], runs=runs,
             median_seconds=round(median, 3), runs_seconds=[round(s, 3) for s in seconds],
             ratio_to_side_connection=round(median / anchor, 2) if anchor else None, bar_seconds=5,
             load_average=os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="(a): members prepared")
    parser.add_argument("--push-members", type=int, default=100_000, help="(b): members pushed")
    parser.add_argument("--batch", type=int, default=10_000, help="(b): rows a request (Meta's maximum)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["a", "b", "c"])
    parser.add_argument("--engine", choices=["duckdb", "postgres", "both"], default="both",
                        help="(c): the store engine the ledger lives in")
    parser.add_argument("--push-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.push_child:
        push_child(args.push_members, args.runs, args.batch)
        return 0
    if args.only in (None, "a"):
        bench_prepare(args.members, args.runs)
    if args.only in (None, "b"):
        child = [sys.executable, __file__, "--push-child", "--push-members", str(args.push_members),
                 "--runs", str(args.runs), "--batch", str(args.batch)]
        if subprocess.run(child).returncode:
            return 1
    if args.only in (None, "c"):
        for engine in (["duckdb", "postgres"] if args.engine == "both" else [args.engine]):
            bench_diff(args.members, args.runs, engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
