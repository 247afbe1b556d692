"""B10: the cost of encryption at rest — the same records landed and built into an encrypted
and an unencrypted DuckDB store, side by side in one run.

    python bench/b10_encryption.py                       # 100k records, 3 rounds
    python bench/b10_encryption.py --records 1000000 --rounds 3

Data: synthetic_customers.customers (as B3). Each round lands and fully builds both stores,
alternating which goes first, each step in its own process. Prints one JSON line per step
(wall seconds and CPU seconds of the step, user + system of every thread) and a summary
line: median land and build CPU and wall seconds of each, encrypted / unencrypted of the
medians, and the median of each round's own ratio. On a shared machine quote the CPU ratio:
wall time follows the other processes' load.

The encrypted store is written as in production: DuckDB's AES-256-GCM with its httpfs
extension (OpenSSL) loaded from the `duckdb-extension-httpfs` wheel; `duckdb` in the summary
names the version measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def config(folder: Path, encrypted: bool) -> dict[str, Any]:
    from synthetic_customers import customers

    return {"path": str(folder / "profiles.duckdb"), "resolve_on_finish": False, "report_dir": str(folder / "reports"),
            "mappings": customers(100).mappings, "encryption": "on" if encrypted else "off"}


def run_step(args: argparse.Namespace) -> None:
    """One step in this process: land, or build, printing its wall and CPU seconds as JSON."""
    from synthetic_customers import customers
    from threadline_profiles import ProfileStore, api
    from threadline_profiles.testing import Lander

    folder, encrypted = Path(args.folder), args.encrypted
    if args.step == "land":
        data = customers(max(1, int(args.records / 2.5)), seed=7)
        lander = Lander(config(folder, encrypted))
        t0, c0 = time.perf_counter(), time.process_time()
        for key, table in data.tables.items():
            source, stream = key.split(".")
            lander.land(source, stream, table, batch_rows=100_000)
        print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                          "records": data.records}))
        return
    with ProfileStore.open(config(folder, encrypted)) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        result = api.build(store, full=True, report=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert store.engine.encrypted == encrypted  # type: ignore[attr-defined]
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "profiles": result.profiles}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step", choices=["land", "build"])
    parser.add_argument("--folder")
    parser.add_argument("--encrypted", action="store_true")
    args = parser.parse_args()
    if args.step:
        run_step(args)
        return

    import duckdb

    env = dict(os.environ)
    env.pop("THREADLINE_STORE_KEY", None)
    # measure -> store -> step -> one value per round
    times = {m: {s: {"land": [], "build": []} for s in ("encrypted", "plain")} for m in ("seconds", "cpu_s")}
    work = Path(tempfile.mkdtemp(prefix="b10_"))
    try:
        for round_ in range(args.rounds):
            order = ("encrypted", "plain") if round_ % 2 == 0 else ("plain", "encrypted")
            for mode in order:
                folder = work / f"{mode}_{round_}"
                folder.mkdir()
                for step in ("land", "build"):
                    cmd = [sys.executable, __file__, "--step", step, "--records", str(args.records), "--folder", str(folder)]
                    if mode == "encrypted":
                        cmd.append("--encrypted")
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if out.returncode != 0:
                        raise SystemExit(out.stderr[-3000:])
                    measured = json.loads(out.stdout.strip().splitlines()[-1])
                    for measure in times:
                        times[measure][mode][step].append(measured[measure])
                    print(json.dumps({"bench": "B10", "round": round_, "store": mode, "step": step,
                                      "seconds": round(measured["seconds"], 2), "cpu_s": round(measured["cpu_s"], 2),
                                      "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
                size = sum(p.stat().st_size for p in folder.glob("profiles.duckdb*") if p.is_file())
                print(json.dumps({"bench": "B10", "round": round_, "store": mode, "file_mb": round(size / 1e6, 1)}))
                shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {"bench": "B10", "summary": True, "records": args.records, "rounds": args.rounds,
                               "duckdb": duckdb.__version__}
    for measure, label in (("cpu_s", "cpu_s"), ("seconds", "wall_s")):
        for step in ("build", "land"):
            enc, plain = times[measure]["encrypted"][step], times[measure]["plain"][step]
            summary[f"{step}_{label}_encrypted"] = round(statistics.median(enc), 2)
            summary[f"{step}_{label}_plain"] = round(statistics.median(plain), 2)
            summary[f"{step}_{label}_ratio"] = round(statistics.median(enc) / statistics.median(plain), 3)
            # each round's two runs of a step were back to back, at about the same load: their ratio is steadier
            summary[f"{step}_{label}_ratio_paired_median"] = round(statistics.median(e / p for e, p in zip(enc, plain)), 3)
    summary["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
