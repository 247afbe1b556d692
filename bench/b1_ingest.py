"""B1: file ingest throughput — customer rows in CSV and Parquet → DuckDB landing tables,
and the ratio against a singer-sdk tap → Singer target run over the same rows.

    python bench/b1_ingest.py [--rows 1000000] [--anchor-rows 100000] [--runs 3]

Every figure is the median of --runs runs of the full command (`threadline sync` as a user
runs it, process start-up included), each into a fresh database. The anchor is tap-jsonl
(a singer-sdk tap from PyPI) piped into target-duckdb, installed by this script into its own
venv (bench/out/anchor-venv) because Singer targets pin their own dependencies. The anchor is
slow, so it runs on --anchor-rows rows; the ratio compares rows/s, and threadline is also
measured on exactly those rows (JSON lines) so the like-for-like ratio is printed too.
Data: bench/common.py `customers()` — 10 columns (ids, names, email, phone, city, postal code,
date, money, count), deterministic.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, dataset, emit, median_of, peak_rss_mib_of  # noqa: E402

ANCHOR_VENV = OUT / "anchor-venv"
ANCHOR_PACKAGES = ["tap-jsonl==0.3.1", "target-duckdb==0.8.0"]


def threadline_sync(path: Path, fmt: str, rows: int) -> tuple[float, int, float]:
    """One `threadline sync` of `path` into a fresh DuckDB file; returns (command seconds,
    peak RSS MiB, seconds the stream itself took according to the run record)."""
    work = Path(tempfile.mkdtemp(prefix="b1-", dir=OUT))
    try:
        columns = {"signup_date": {"type": "date"}, "lifetime_value": {"type": "float64"}, "orders": {"type": "int64"},
                   "phone": {"type": "string"}, "postal_code": {"type": "string"}}
        job = {"name": "b1", "sources": {"files": {"connector": "files", "config": {"streams": [
                   {"name": "customers", "path": str(path), "format": fmt, "primary_key": ["customer_id"],
                    "columns": columns if fmt != "parquet" else {}}]}}},
               "destinations": {"db": {"connector": "duckdb", "config": {"path": "store.duckdb"}}}}
        (work / "job.yaml").write_text(json.dumps(job))
        seconds, rss, rc, err = peak_rss_mib_of([sys.executable, "-m", "threadline", "sync", "job.yaml"], cwd=work)
        if rc != 0:
            raise SystemExit(f"threadline sync failed: {err}")
        import duckdb

        con = duckdb.connect(str(work / "store.duckdb"), read_only=True)
        landed = con.execute("select count(*) from files__customers").fetchone()[0]
        con.close()
        if landed != rows:
            raise SystemExit(f"expected {rows} rows landed, found {landed}")
        import sqlite3

        with sqlite3.connect(work / ".threadline" / "state.sqlite") as db:
            stream_seconds = db.execute("select seconds from run_streams").fetchone()[0]
        return seconds, rss, stream_seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def anchor_bin() -> Path:
    bin_dir = ANCHOR_VENV / "bin"
    if not (bin_dir / "target-duckdb").exists():
        venv.EnvBuilder(with_pip=True).create(ANCHOR_VENV)
        subprocess.run([bin_dir / "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    return bin_dir


def singer_run(path: Path, rows: int) -> float:
    """tap-jsonl | target-duckdb over the JSON lines file; returns seconds."""
    bin_dir = anchor_bin()
    work = Path(tempfile.mkdtemp(prefix="b1-singer-", dir=OUT))
    try:
        (work / "tap.json").write_text(json.dumps({"path": str(path), "stream_name": "customers",
                                                   "primary_keys": ["customer_id"]}))
        (work / "target.json").write_text(json.dumps({"path": str(work / "t.duckdb"), "default_target_schema": "main"}))
        pipeline = f"'{bin_dir}/tap-jsonl' --config tap.json | '{bin_dir}/target-duckdb' --config target.json > /dev/null"
        seconds, _, rc, err = peak_rss_mib_of(["bash", "-o", "pipefail", "-c", pipeline], cwd=work)
        if rc != 0:
            raise SystemExit(f"singer anchor failed: {err}")
        return seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--anchor-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    for fmt in ("parquet", "csv"):
        path = dataset(args.rows, fmt)
        rss: list[int] = []
        stream_seconds: list[float] = []

        def once() -> float:
            seconds, peak, inner = threadline_sync(path, fmt, args.rows)
            rss.append(peak)
            stream_seconds.append(inner)
            return seconds

        median, runs = median_of(args.runs, once)
        inner = statistics.median(stream_seconds)
        emit(bench="B1", what=f"threadline {fmt} → duckdb", rows=args.rows, median_s=round(median, 2),
             rows_per_s=round(args.rows / median), runs_s=[round(r, 2) for r in runs],
             sync_only_s=round(inner, 2), sync_only_rows_per_s=round(args.rows / inner), peak_rss_mib=max(rss),
             bar_rows_per_s=1_000_000 if fmt == "parquet" else 300_000)
        if fmt == "csv":
            csv_rate = args.rows / median

    small = dataset(args.anchor_rows, "jsonl")
    anchor_median, anchor_runs = median_of(args.runs, lambda: singer_run(small, args.anchor_rows))
    anchor_rate = args.anchor_rows / anchor_median
    emit(bench="B1", what="anchor: tap-jsonl (singer-sdk) | target-duckdb", rows=args.anchor_rows,
         median_s=round(anchor_median, 2), rows_per_s=round(anchor_rate), runs_s=[round(r, 2) for r in anchor_runs])
    same_median, _ = median_of(args.runs, lambda: threadline_sync(small, "jsonl", args.anchor_rows)[0])
    # like for like: whole commands on both sides, process start-up included
    same_rate = args.anchor_rows / same_median
    emit(bench="B1", what="threadline jsonl → duckdb on the anchor's rows", rows=args.anchor_rows,
         median_s=round(same_median, 2), rows_per_s=round(same_rate))
    emit(bench="B1", what="ratios", csv_vs_anchor=round(csv_rate / anchor_rate, 1),
         same_rows_vs_anchor=round(same_rate / anchor_rate, 1), bar=30)


if __name__ == "__main__":
    main()
