"""B1: file ingest — threadline against dlt, the Singer anchor and DuckDB's own CTAS (the limit),
side by side in ONE interleaved run, as whole commands and as run-record times.

    python bench/b1_ingest.py [--rows 200000] [--anchor-rows 100000] [--runs 3] [--skip-singer] [--only NAME]
    python bench/b1_ingest.py --large       # 1M rows (the issue's size); --rows N for any other
    python bench/b1_ingest.py --large --baseline main   # also threadline as of a git ref, interleaved
                                          # (with --duckdb-threads, a ref from 2f13ab2 on: `threads`)
    python bench/b1_ingest.py --large --duckdb-threads 1 --skip-singer   # steadier CPU figures under load

The default run is short (200k rows × 3 rounds, a few minutes on the shared machine); --large
or --rows measure the sizes where start-up weighs less.

Every contender is a whole command in a fresh child process, into a fresh database, measured
from outside with getrusage(RUSAGE_CHILDREN): CPU seconds (user + system, the figure to quote on
this shared machine), wall seconds and peak RSS. Round r runs every contender once before round
r + 1 starts, so load that comes and goes touches them all alike. Each line gives the median and
min–max of the --runs rounds and the 1-minute load average at each run.

Contenders (bench/b1_peers.py holds the peers' commands):
- threadline: `threadline sync` of a job landing the file into the duckdb destination with the
  default disposition (upsert by customer_id), CSV columns typed in the job as a user would;
- ctas: DuckDB alone, `CREATE TABLE AS SELECT * FROM read_csv/read_parquet` — the limit, with
  the job's column types so both write the same table (DuckDB's own CSV types also printed);
- threadline with `write: append`, so the cost of upsert (the default) over append is printed;
- dlt: dlt's Arrow path (a resource yielding pyarrow batches) into DuckDB, append;
- singer: tap-jsonl (singer-sdk) | target-duckdb on --anchor-rows rows of JSON lines, in its own
  venv (bench/out/anchor-venv: Singer targets pin their own dependencies); threadline runs the same
  JSON lines file, so the like-for-like ratio is printed as well as CSV at --rows against it;
- start-up: `threadline --help`, `--version`, `plugins` against `dlt --help`; a 10-row sync against
  dlt's 10-row pipeline;
- with --duckdb-threads N: threadline's DuckDB (the destination's `threads`) and the CTAS use N
  worker threads; under load on this 2-core machine a 1M-row CTAS took 2.2 to 4.9 CPU-s with 2
  threads and a steady ~1.9 with 1;
- with --baseline REF: the CSV and Parquet syncs again with the core, files and duckdb packages as
  of git REF (exported to bench/out, put first on PYTHONPATH), so a change is measured against
  what it changed in the same run.

"Run-record time" is what each tool's own record says the load took: threadline's run_streams
seconds; for the peers, the seconds around the load call inside the process (b1_peers.py).
Ratios are speeds (the other's CPU seconds over threadline's, per row), so > 1 means threadline
is faster. Bars (BENCHMARKS.md, issue 21): ≥ 0.8× CTAS on CSV and Parquet, ≥ 30× the Singer
anchor, `--help` ≤ 0.5 CPU-s. Data: bench/common.py `customers()`, 10 columns, deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import venv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, Measured, dataset, emit, load_avg, measure, spread  # noqa: E402

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ANCHOR_VENV = OUT / "anchor-venv"
ANCHOR_PACKAGES = ["tap-jsonl==0.3.1", "target-duckdb==0.8.0"]
# The limit writes the same table threadline does: read_csv would make phone and postal_code
# integers (cheaper to store), which the job declares as text; "ctas csv, duckdb's own column
# types" is printed beside it for reference.
CTAS_TYPES = {"csv": ("phone=VARCHAR,postal_code=VARCHAR",), "parquet": ()}
DUCKDB_THREADS: dict[str, int] = {}  # --duckdb-threads N: {"threads": N} for threadline; B1_DUCKDB_THREADS for the CTAS
CSV_COLUMNS = {"signup_date": {"type": "date"}, "lifetime_value": {"type": "float64"}, "orders": {"type": "int64"},
               "phone": {"type": "string"}, "postal_code": {"type": "string"}}


@dataclass
class Run:
    """One measured command: whole-process figures plus the tool's own record of the load."""

    measured: Measured
    inner_s: float | None
    load: float


@dataclass
class Contender:
    name: str
    rows: int
    once: Callable[[Path], Run]
    runs: list[Run] = field(default_factory=list)

    def median_cpu(self) -> float:
        return statistics.median(r.measured.cpu_s for r in self.runs)

    def median_inner(self) -> float | None:
        inner = [r.inner_s for r in self.runs if r.inner_s is not None]
        return statistics.median(inner) if inner else None


def _checked(m: Measured, what: str) -> Measured:
    if m.rc != 0:
        raise SystemExit(f"{what} failed (exit {m.rc}):\n{m.err}")
    return m


def _count(db: Path, table: str) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"select count(*) from {table}").fetchone()[0]
    finally:
        con.close()


def baseline_env(ref: str) -> dict[str, str]:
    """The environment that runs threadline's core, files source and duckdb destination as of
    git `ref`: their packages exported to bench/out/baseline-<commit>, first on PYTHONPATH
    (ahead of the editable install's paths)."""
    root = HERE.parent
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=root, capture_output=True, text=True,
                            check=True).stdout.strip()
    dirs = ["core", "connectors/files", "destinations/duckdb"]
    into = OUT / f"baseline-{commit}"
    if not into.exists():
        into.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit, *dirs], cwd=root, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(into / d) for d in dirs)}


def threadline_sync(path: Path, fmt: str, rows: int, write: str | None = None,
                    env: dict[str, str] | None = None) -> Callable[[Path], Run]:
    def once(work: Path) -> Run:
        choice = {"streams": {"customers": {"write": write}}} if write else {}
        job = {"name": "b1", "sources": {"files": {"connector": "files", **choice, "config": {"streams": [
                   {"name": "customers", "path": str(path), "format": fmt, "primary_key": ["customer_id"],
                    "columns": CSV_COLUMNS if fmt in ("csv", "jsonl") else {}}]}}},
               "destinations": {"db": {"connector": "duckdb", "config": {"path": "store.duckdb", **DUCKDB_THREADS}}}}
        (work / "job.yaml").write_text(json.dumps(job))
        load = load_avg()
        m = _checked(measure([str(BIN / "threadline"), "sync", "job.yaml"], cwd=work, env=env), f"threadline sync {fmt}")
        landed = _count(work / "store.duckdb", "files__customers")
        if landed != rows:
            raise SystemExit(f"threadline sync {fmt}: expected {rows} rows landed, found {landed}")
        with sqlite3.connect(work / ".threadline" / "state.sqlite") as db:
            inner = db.execute("select seconds from run_streams").fetchone()[0]
        return Run(m, inner, load)

    return once


def peer(tool: str, path: Path, fmt: str, rows: int, *extra: str) -> Callable[[Path], Run]:
    def once(work: Path) -> Run:
        db = work / "peer.duckdb"
        load = load_avg()
        m = _checked(measure([sys.executable, str(HERE / "b1_peers.py"), tool, fmt, str(path), str(db), *extra], cwd=work),
                     f"{tool} {fmt}")
        landed = _count(db, "main.customers")
        if landed != rows:
            raise SystemExit(f"{tool} {fmt}: expected {rows} rows landed, found {landed}")
        return Run(m, json.loads(m.out.strip().splitlines()[-1])["inner_s"], load)

    return once


def anchor_bin() -> Path:
    bin_dir = ANCHOR_VENV / "bin"
    if not (bin_dir / "target-duckdb").exists():
        venv.EnvBuilder(with_pip=True).create(ANCHOR_VENV)
        subprocess.run([bin_dir / "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    return bin_dir


def singer(path: Path, rows: int) -> Callable[[Path], Run]:
    """tap-jsonl | target-duckdb over the JSON lines file (no run record of its own)."""

    def once(work: Path) -> Run:
        bin_dir = anchor_bin()
        (work / "tap.json").write_text(json.dumps({"path": str(path), "stream_name": "customers",
                                                   "primary_keys": ["customer_id"]}))
        (work / "target.json").write_text(json.dumps({"path": str(work / "t.duckdb"), "default_target_schema": "main"}))
        pipeline = f"'{bin_dir}/tap-jsonl' --config tap.json | '{bin_dir}/target-duckdb' --config target.json > /dev/null"
        load = load_avg()
        m = _checked(measure(["bash", "-o", "pipefail", "-c", pipeline], cwd=work), "singer anchor")
        return Run(m, None, load)

    return once


def command(*args: str) -> Callable[[Path], Run]:
    def once(work: Path) -> Run:
        load = load_avg()
        return Run(_checked(measure(list(args), cwd=work), " ".join(args)), None, load)

    return once


def report(c: Contender) -> None:
    ms = [r.measured for r in c.runs]
    inner = [r.inner_s for r in c.runs if r.inner_s is not None]
    emit(bench="B1", what=c.name, rows=c.rows, cpu_s=spread([m.cpu_s for m in ms]),
         wall_s=spread([m.wall_s for m in ms]), **({"run_record_s": spread(inner)} if inner else {}),
         peak_rss_mib=max(m.rss_mib for m in ms), load_at_each_run=[r.load for r in c.runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--large", action="store_true", help="1M rows (as --rows 1000000)")
    parser.add_argument("--anchor-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-singer", action="store_true", help="leave out the Singer anchor (slow)")
    parser.add_argument("--only", default="", help="run only the contenders whose name contains this (no ratios)")
    parser.add_argument("--baseline", default="", help="also run the CSV and Parquet syncs as of this git ref")
    parser.add_argument("--duckdb-threads", type=int, default=0,
                        help="DuckDB's worker threads for threadline and the CTAS (dlt keeps its own): under load, "
                             "waiting threads make DuckDB's CPU seconds swing by up to 2x with 2 threads")
    args = parser.parse_args()
    if args.duckdb_threads:
        DUCKDB_THREADS["threads"] = args.duckdb_threads
        os.environ["B1_DUCKDB_THREADS"] = str(args.duckdb_threads)

    n, small = (1_000_000 if args.large else args.rows), args.anchor_rows
    contenders = []
    for fmt in ("csv", "parquet"):
        path = dataset(n, fmt)
        contenders += [Contender(f"threadline {fmt} → duckdb", n, threadline_sync(path, fmt, n)),
                       Contender(f"ctas {fmt} (duckdb alone, the limit)", n, peer("ctas", path, fmt, n, *CTAS_TYPES[fmt])),
                       Contender(f"dlt arrow {fmt} → duckdb", n, peer("dlt", path, fmt, n))]
    contenders += [Contender("threadline csv → duckdb, write: append", n, threadline_sync(dataset(n, "csv"), "csv", n, "append")),
                   Contender("ctas csv, duckdb's own column types", n, peer("ctas", dataset(n, "csv"), "csv", n))]
    if args.baseline:
        env = baseline_env(args.baseline)
        contenders += [Contender(f"threadline {fmt} → duckdb, as of {args.baseline}", n,
                                 threadline_sync(dataset(n, fmt), fmt, n, env=env)) for fmt in ("csv", "parquet")]
    jsonl = dataset(small, "jsonl")
    contenders.append(Contender("threadline jsonl → duckdb (the anchor's rows)", small, threadline_sync(jsonl, "jsonl", small)))
    if not args.skip_singer:
        contenders.append(Contender("singer: tap-jsonl | target-duckdb", small, singer(jsonl, small)))
    tiny = dataset(10, "csv")
    contenders += [
        Contender("threadline 10-row csv sync", 10, threadline_sync(tiny, "csv", 10)),
        Contender("dlt 10-row csv pipeline", 10, peer("dlt", tiny, "csv", 10)),
        Contender("threadline --help", 0, command(str(BIN / "threadline"), "--help")),
        Contender("threadline --version", 0, command(str(BIN / "threadline"), "--version")),
        Contender("threadline plugins", 0, command(str(BIN / "threadline"), "plugins")),
        Contender("dlt --help", 0, command(str(BIN / "dlt"), "--help")),
    ]

    if args.only:
        contenders = [c for c in contenders if args.only in c.name]
    for _ in range(args.runs):  # interleaved: every contender once per round
        for c in contenders:
            work = Path(tempfile.mkdtemp(prefix="b1-", dir=OUT))
            try:
                c.runs.append(c.once(work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    for c in contenders:
        report(c)
    if args.only:
        return

    by = {c.name: c for c in contenders}
    ratios: dict[str, float] = {}
    for fmt in ("csv", "parquet"):
        tl = by[f"threadline {fmt} → duckdb"]
        for peer_name, key in ((f"ctas {fmt} (duckdb alone, the limit)", "ctas"), (f"dlt arrow {fmt} → duckdb", "dlt")):
            other = by[peer_name]
            ratios[f"{fmt}_vs_{key}_command"] = round(other.median_cpu() / tl.median_cpu(), 2)
            if tl.median_inner() and other.median_inner():
                ratios[f"{fmt}_vs_{key}_run_record"] = round(other.median_inner() / tl.median_inner(), 2)
    if not args.skip_singer:
        anchor_rate = small / by["singer: tap-jsonl | target-duckdb"].median_cpu()
        ratios["csv_vs_singer"] = round(n / by["threadline csv → duckdb"].median_cpu() / anchor_rate, 1)
        ratios["same_jsonl_rows_vs_singer"] = round(
            small / by["threadline jsonl → duckdb (the anchor's rows)"].median_cpu() / anchor_rate, 1)
    if args.baseline:
        for fmt in ("csv", "parquet"):
            ratios[f"{fmt}_vs_{args.baseline}_command"] = round(
                by[f"threadline {fmt} → duckdb, as of {args.baseline}"].median_cpu()
                / by[f"threadline {fmt} → duckdb"].median_cpu(), 2)
    ratios["csv_vs_ctas_duckdb_types_command"] = round(
        by["ctas csv, duckdb's own column types"].median_cpu() / by["threadline csv → duckdb"].median_cpu(), 2)
    ratios["upsert_cost_over_append"] = round(
        by["threadline csv → duckdb"].median_cpu() / by["threadline csv → duckdb, write: append"].median_cpu(), 2)
    ratios["help_vs_dlt_help"] = round(by["dlt --help"].median_cpu() / by["threadline --help"].median_cpu(), 2)
    ratios["sync_10_rows_vs_dlt"] = round(by["dlt 10-row csv pipeline"].median_cpu()
                                          / by["threadline 10-row csv sync"].median_cpu(), 2)
    emit(bench="B1", what="ratios (speed: the other's CPU-s over threadline's; > 1 = threadline faster)",
         **ratios, help_cpu_s=round(by["threadline --help"].median_cpu(), 2),
         bars={"vs_ctas": 0.8, "vs_singer": 30, "help_cpu_s": 0.5, "sync_10_rows_vs_dlt": 1.0,
               "upsert_cost_over_append": 1.1})


if __name__ == "__main__":
    main()
