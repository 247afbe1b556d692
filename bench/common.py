"""Shared pieces of the benchmarks: deterministic customer data, timing, JSON-line output."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - makes pa.compute available
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "out"
FIRST = np.array(["Kelly", "James", "Maria", "Ahmed", "Li", "Sofia", "Tom", "Ana", "Jon", "Priya", "Lucas", "Emma"])
LAST = np.array(["Neal", "Smith", "Garcia", "Khan", "Wei", "Rossi", "Brown", "Silva", "Berg", "Patel", "Martin", "Jones"])
CITY = np.array(["Oslo", "Lyon", "Austin", "Leeds", "Porto", "Graz", "Cork", "Turku"])


def customers(n: int, seed: int = 1) -> pa.Table:
    """n customer rows, 10 columns, built column-wise (no per-row Python)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    first = FIRST[rng.integers(0, len(FIRST), n)]
    last = LAST[rng.integers(0, len(LAST), n)]
    id_text = pa.compute.cast(pa.array(ids), pa.string())
    email = pa.compute.binary_join_element_wise(
        pa.compute.utf8_lower(pa.array(first)), pa.compute.utf8_lower(pa.array(last)), ".")
    email = pa.compute.binary_join_element_wise(email, id_text, "")
    email = pa.compute.binary_join_element_wise(email, pa.scalar("@example.com"), "")
    phone = pa.compute.cast(pa.array(rng.integers(2_000_000_000, 9_999_999_999, n)), pa.string())
    signup = pa.array((np.datetime64("2015-01-01") + rng.integers(0, 3650, n)).astype("datetime64[D]"))
    return pa.table({
        "customer_id": pa.compute.binary_join_element_wise(pa.scalar("C"), id_text, ""),
        "first_name": pa.array(first), "last_name": pa.array(last), "email": email, "phone": phone,
        "city": pa.array(CITY[rng.integers(0, len(CITY), n)]),
        "postal_code": pa.compute.cast(pa.array(rng.integers(10000, 99999, n)), pa.string()),
        "signup_date": signup,
        "lifetime_value": pa.array(np.round(rng.uniform(0, 5000, n), 2)),
        "orders": pa.array(rng.integers(0, 40, n)),
    })


def dataset(n: int, fmt: str) -> Path:
    """The n-row customer file in csv, parquet or jsonl, written once and cached in bench/out."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"customers_{n}.{fmt}"
    if path.exists():
        return path
    table = customers(n)
    tmp = path.with_suffix(".tmp")
    if fmt == "csv":
        pacsv.write_csv(table, tmp)
    elif fmt == "parquet":
        pq.write_table(table, tmp)
    else:
        with tmp.open("w") as out:
            for batch in table.to_batches(100_000):
                for row in batch.to_pylist():
                    out.write(json.dumps(row, default=str) + "\n")
    tmp.rename(path)
    return path


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


def emit(**fields: Any) -> None:
    """One JSON line. The 1-minute load average is included: on a shared 2-core machine a
    figure measured under load is not comparable with one measured idle."""
    print(json.dumps({**fields, "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


@dataclass
class Measured:
    """One whole command, measured from outside: wall seconds, CPU seconds (user + system of
    the command and every process it waited for), its peak RSS, exit code, output tails."""

    wall_s: float
    cpu_s: float
    rss_mib: int
    rc: int
    out: str
    err: str


def measure(args: list[str], **kw: Any) -> Measured:
    """Run a command in a fresh child and measure it with getrusage(RUSAGE_CHILDREN) of a helper
    process, so the figures count only this command (and its own children, e.g. a pipeline).
    CPU seconds are the figure to quote on a shared machine: wall time moves with the load."""
    probe = (
        "import resource,subprocess,sys,time,json;"
        "t=time.perf_counter();p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps({'s':time.perf_counter()-t,'cpu':u.ru_utime+u.ru_stime,'rss':u.ru_maxrss//1024,"
        "'rc':p.returncode,'out':p.stdout[-2000:],'err':p.stderr[-2000:]}))"
    )
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, **kw)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(data["s"], data["cpu"], data["rss"], data["rc"], data["out"], data["err"])


def peak_rss_mib_of(args: list[str], **kw: Any) -> tuple[float, int, int, str]:
    """(seconds, peak RSS MiB, exit code, stderr tail) of one command: `measure`, as a tuple."""
    m = measure(args, **kw)
    return m.wall_s, m.rss_mib, m.rc, m.err[-800:]


def spread(values: list[float], digits: int = 2) -> dict[str, Any]:
    """Median and min–max of a figure measured several times."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)
