"""B3: identity resolution at scale — source records → profiles on this machine.

    python bench/b3_resolution.py                      # 100k and 1M records, DuckDB
    python bench/b3_resolution.py --records 10000000   # add sizes
    python bench/b3_resolution.py --engine postgres    # the Postgres engine (127.0.0.1:5432/test)

Data: threadline_profiles.synthetic.customers — ~2.5 records per person over a CRM (customer
id, email, phone, name, birth date), a web shop (customer id, email, name; a quarter of
people have two shop accounts) and a loyalty program (card, national phone, name, US-format
birth date), with households sharing an email, Gmail +tags, odd case, nicknames,
placeholder emails and invalid values. Every size runs in a fresh subprocess so peak RSS is
that size's own. Prints one JSON line per size: landing and resolution seconds, peak RSS,
profiles, and pairwise precision/recall/F1 against the generator's truth.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path


def pairwise(truth: dict[str, int], found: dict[str, str]) -> dict[str, float]:
    """Pairwise precision/recall/F1 from cluster sizes (no pair lists: fine at 10M)."""
    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    predicted = pairs(Counter(found.values()))
    true = pairs(Counter(truth.values()))
    both = pairs(Counter((found[k], truth[k]) for k in found))
    p = both / predicted if predicted else 1.0
    r = both / true if true else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def run_one(records: int, engine: str, seed: int, memory_limit: str) -> dict:
    from threadline_profiles.synthetic import customers
    from threadline_profiles.testing import Lander

    people = max(1, int(records / 2.5))
    t0 = time.perf_counter()
    data = customers(people, seed=seed)
    generate_s = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="b3_"))
    config: dict = {"resolve_on_finish": False, "mappings": data.mappings, "report_dir": str(tmp / "reports"),
                    "memory_limit": memory_limit}
    if engine == "postgres":
        config.update(engine="postgres", schema=f"b3_{uuid.uuid4().hex[:8]}")
    else:
        config["path"] = str(tmp / "profiles.duckdb")
    lander = Lander(config)
    t0 = time.perf_counter()
    for key, table in data.tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table, batch_rows=100_000)
    land_s = time.perf_counter() - t0
    with lander.store() as store:
        t0 = time.perf_counter()
        result = store.build()
        resolve_s = time.perf_counter() - t0
        found = {r["record_key"]: r["profile_id"] for r in store.engine.query("SELECT record_key, profile_id FROM tl_members").to_pylist()}
        if engine == "postgres":
            store.engine.execute(f"DROP SCHEMA {config['schema']} CASCADE")
    return {
        "bench": "B3", "engine": engine, "records": data.records, "people": people, "profiles": result.profiles,
        "generate_s": round(generate_s, 2), "land_s": round(land_s, 2), "resolve_s": round(resolve_s, 2),
        "stages_s": result.stage_seconds, "distinct_values": result.distinct_values, "label_rounds": result.label_rounds,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **pairwise(data.truth, found),
        "data": "threadline_profiles.synthetic.customers(seed=%d)" % seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="sizes to run (default 100k and 1M)")
    parser.add_argument("--engine", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit (the store's default is 1GB)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one size in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps({**run_one(args.one, args.engine, args.seed, args.memory_limit), "memory_limit": args.memory_limit}), flush=True)
        return
    for size in args.records or [100_000, 1_000_000]:
        proc = subprocess.run([sys.executable, __file__, "--one", str(size), "--engine", args.engine, "--seed", str(args.seed),
                               "--memory-limit", args.memory_limit],
                              capture_output=True, text=True)
        if proc.returncode:
            print(json.dumps({"bench": "B3", "engine": args.engine, "records": size, "error": proc.stderr.strip().splitlines()[-1:]}))
        else:
            print(proc.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
