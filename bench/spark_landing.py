"""Landing on Spark: what one commit of a stream costs as its raw table grows.

A stream landed in many commits (a connector checkpoints every page or file) used to rewrite
its raw table at each commit (the upsert's DELETE is a CREATE TABLE AS SELECT of the rows it
keeps on Spark), so each commit cost more than the last and a stream cost the square of its
commits. A commit of records not landed before is now an append (one INSERT); a commit that
replaces landed records still rewrites the table.

    python bench/spark_landing.py                       # 16 commits of 2,000 rows, local[2]
    python bench/spark_landing.py --commits 30 --rows 5000

Prints one JSON line per contender: wall seconds of the first and last quarter of commits
(Spark runs in a JVM beside this process, so its CPU is not this process's: wall time, with
the load average), and the slope (seconds per commit added per 10,000 rows already landed).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import customers, emit  # noqa: E402

LIGHT = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.ui.enabled": "false",
         "spark.sql.catalogImplementation": "in-memory"}


def run(contender: str, commits: int, rows: int, warehouse: str) -> None:
    from threadline_profiles.testing import Lander

    lander = Lander({"engine": "spark", "resolve_on_finish": False, "report_dir": f"{warehouse}/reports",
                     "spark": {"master": "local[2]", "warehouse": warehouse, "conf": LIGHT,
                               "database": f"bench_landing_{uuid.uuid4().hex[:8]}"}})
    data = customers(commits * rows)
    seconds = []
    for i in range(commits):
        # append: each commit brings customers not landed before; upsert: the first batch's again
        batch = data.slice(i * rows, rows) if contender == "append" or i == 0 else data.slice(0, rows)
        started = time.perf_counter()
        lander.land("crm", "customers", batch, pk=("customer_id",), run_id=f"run-{i}")
        seconds.append(time.perf_counter() - started)
    quarter = max(1, commits // 4)
    first, last = statistics.median(seconds[1:1 + quarter]), statistics.median(seconds[-quarter:])
    landed_between = (commits - quarter - 1) * rows if contender == "append" else 0
    emit(bench="spark_landing", contender=contender, commits=commits, rows_per_commit=rows,
         first_quarter_s=round(first, 3), last_quarter_s=round(last, 3), total_s=round(sum(seconds), 2),
         s_per_commit_per_10k_landed=round((last - first) / landed_between * 10_000, 4) if landed_between else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=16)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--only", choices=("append", "upsert"))
    args = parser.parse_args()
    warehouse = tempfile.mkdtemp(prefix="spark-landing-")
    try:
        for contender in [args.only] if args.only else ["append", "upsert"]:
            run(contender, args.commits, args.rows, warehouse)
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)


if __name__ == "__main__":
    main()
