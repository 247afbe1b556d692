"""B6: peak memory of a CSV → DuckDB sync does not grow with the input's size.

    python bench/b6_memory.py [--sizes 1000000,10000000]

Runs `threadline sync` (upsert by primary key into the duckdb destination, default settings)
on customer CSVs of each size, each in a fresh child process, and prints the child's peak RSS
(ru_maxrss) and CPU seconds. The bar: ≤ 1 GiB at 10M rows, and flat across sizes. Data: bench/common.py
`customers()`; files are written once into bench/out (10M rows ≈ 800 MB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, dataset, emit, load_avg, measure  # noqa: E402


def sync_peak(path: Path, memory_limit: str | None = None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB) of one `threadline sync` of the file."""
    work = Path(tempfile.mkdtemp(prefix="b6-", dir=OUT))
    try:
        job = {"name": "b6", "sources": {"files": {"connector": "files", "config": {"streams": [
                   {"name": "customers", "path": str(path), "primary_key": ["customer_id"],
                    "columns": {"phone": {"type": "string"}, "postal_code": {"type": "string"}}}]}}},
               "destinations": {"db": {"connector": "duckdb", "config": {
                   "path": "store.duckdb", **({"memory_limit": memory_limit} if memory_limit else {})}}}}
        (work / "job.yaml").write_text(json.dumps(job))
        m = measure([sys.executable, "-m", "threadline", "sync", "job.yaml"], cwd=work)
        if m.rc != 0:
            raise SystemExit(f"sync failed: {m.err}")
        return m.wall_s, m.cpu_s, m.rss_mib
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--memory-limit", help="the duckdb destination's memory_limit (default: its own)")
    args = parser.parse_args()
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        path = dataset(n, "csv")
        load = load_avg()
        seconds, cpu, rss = sync_peak(path, args.memory_limit)
        results.append((n, rss))
        emit(bench="B6", what="csv → duckdb peak RSS", rows=n, file_mib=path.stat().st_size >> 20,
             wall_s=round(seconds, 1), cpu_s=round(cpu, 1), rows_per_cpu_s=round(n / cpu), peak_rss_mib=rss,
             bar_mib=1024, memory_limit=args.memory_limit or "default", load_at_run=load)
    (small, small_rss), (large, large_rss) = results[0], results[-1]
    emit(bench="B6", what="growth", rows_ratio=round(large / small, 1), rss_ratio=round(large_rss / small_rss, 2),
         bar_rss_ratio=1.1)


if __name__ == "__main__":
    main()
