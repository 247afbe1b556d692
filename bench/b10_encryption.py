"""B10: the cost of encryption at rest — the same records landed and built into an encrypted
and an unencrypted store, side by side in one run: DuckDB (an encrypted file) or Postgres
(sealed tables, `--engine postgres`).

    python bench/b10_encryption.py                       # 100k records, 3 rounds, DuckDB
    python bench/b10_encryption.py --records 1000000 --rounds 3
    python bench/b10_encryption.py --engine postgres --dsn postgresql://postgres@127.0.0.1:5432/test

Data: synthetic_customers.customers (as B3). Each round lands and fully builds both stores,
alternating which goes first, each step in its own process. Prints one JSON line per step
(wall seconds and CPU seconds of the step, user + system of every thread) and a summary
line: median land and build CPU and wall seconds of each, encrypted / unencrypted of the
medians, and the median of each round's own ratio. On a shared machine quote the CPU ratio:
wall time follows the other processes' load.

The encrypted store is written as in production: DuckDB's AES-256-GCM with its httpfs
extension (OpenSSL) loaded from the `duckdb-extension-httpfs` wheel; `duckdb` in the summary
names the version measured. On Postgres most of the work is the server's: `cpu_s` there is
the client process plus every server backend of the step (its connections and their
parallel workers, read from /proc while the step runs; `server_cpu_s` alone), so the server
must run on this machine for CPU figures (wall seconds are measured either way). Each store
is its own schema (`b10_<store>_<round>_<pid>`), dropped after its round.
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


def config(folder: Path, encrypted: bool, args: argparse.Namespace) -> dict[str, Any]:
    from synthetic_customers import customers

    out = {"path": str(folder / "profiles.duckdb"), "resolve_on_finish": False, "report_dir": str(folder / "reports"),
           "mappings": customers(100).mappings, "encryption": "on" if encrypted else "off"}
    if args.engine == "postgres":
        out.update(engine="postgres", dsn=tagged(args.dsn, folder.name), schema=folder.name,
                   key_file=str(folder / "store.key"))
    return out


def tagged(dsn: str, name: str) -> str:
    """The DSN with application_name set, so that the step's server backends can be found."""
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"


class ServerCPU:
    """CPU seconds of every Postgres backend (and parallel worker) serving connections tagged
    `name`, sampled from /proc while the step runs: a backend's last sample is its total."""

    def __init__(self, dsn: str, name: str) -> None:
        import threading

        import psycopg

        self.con = psycopg.connect(dsn, autocommit=True)
        self.name, self.seen, self.stop = name, {}, threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        pids = [r[0] for r in self.con.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s OR leader_pid IN "
            "(SELECT pid FROM pg_stat_activity WHERE application_name = %s)", (self.name, self.name)).fetchall()]
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.seen[pid] = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def _watch(self) -> None:
        while not self.stop.wait(0.1):
            self._sample()

    def total(self) -> float:
        self._sample()
        self.stop.set()
        self.thread.join()
        self.con.close()
        return sum(self.seen.values())


def measured(args: argparse.Namespace, folder: Path, fn) -> dict[str, Any]:
    """Run `fn()`, returning its wall and CPU seconds (client, plus the server's on Postgres)."""
    server = ServerCPU(args.dsn, folder.name) if args.engine == "postgres" else None
    t0, c0 = time.perf_counter(), time.process_time()
    extra = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"seconds": seconds, "cpu_s": cpu, **extra}
    if server is not None:
        out["server_cpu_s"] = server.total()
        out["cpu_s"] += out["server_cpu_s"]
    return out


def run_step(args: argparse.Namespace) -> None:
    """One step in this process: land, or build, printing its wall and CPU seconds as JSON."""
    from synthetic_customers import customers
    from threadline_profiles import ProfileStore, api
    from threadline_profiles.testing import Lander

    folder, encrypted = Path(args.folder), args.encrypted
    if args.step == "land":
        data = customers(max(1, int(args.records / 2.5)), seed=7)
        lander = Lander(config(folder, encrypted, args))

        def land() -> dict[str, Any]:
            for key, table in data.tables.items():
                source, stream = key.split(".")
                lander.land(source, stream, table, batch_rows=100_000)
            return {"records": data.records}

        print(json.dumps(measured(args, folder, land)))
        return
    with ProfileStore.open(config(folder, encrypted, args)) as store:
        def build() -> dict[str, Any]:
            return {"profiles": api.build(store, full=True, report=False).profiles}

        out = measured(args, folder, build)
        engine = store.engine
        assert (engine.sealed is not None if args.engine == "postgres" else engine.encrypted) == encrypted  # type: ignore[attr-defined]
    print(json.dumps(out))


def schema_size(dsn: str, schema: str) -> int:
    """Bytes of the schema's tables, with their TOAST and indexes."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        return int(con.execute("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c JOIN pg_namespace AS n "
                               "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (schema,)).fetchone()[0])


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step", choices=["land", "build"])
    parser.add_argument("--folder")
    parser.add_argument("--encrypted", action="store_true")
    parser.add_argument("--engine", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
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
                folder = work / f"b10_{mode}_{round_}_{os.getpid()}"
                folder.mkdir()
                for step in ("land", "build"):
                    cmd = [sys.executable, __file__, "--step", step, "--records", str(args.records), "--folder", str(folder),
                           "--engine", args.engine, "--dsn", args.dsn]
                    if mode == "encrypted":
                        cmd.append("--encrypted")
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if out.returncode != 0:
                        raise SystemExit(out.stderr[-3000:])
                    measured = json.loads(out.stdout.strip().splitlines()[-1])
                    for measure in times:
                        times[measure][mode][step].append(measured[measure])
                    print(json.dumps({"bench": "B10", "engine": args.engine, "round": round_, "store": mode, "step": step,
                                      "seconds": round(measured["seconds"], 2), "cpu_s": round(measured["cpu_s"], 2),
                                      **({"server_cpu_s": round(measured["server_cpu_s"], 2)} if "server_cpu_s" in measured else {}),
                                      "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
                if args.engine == "postgres":
                    print(json.dumps({"bench": "B10", "engine": args.engine, "round": round_, "store": mode,
                                      "schema_mb": round(schema_size(args.dsn, folder.name) / 1e6, 1)}))
                    drop_schema(args.dsn, folder.name)
                else:
                    size = sum(p.stat().st_size for p in folder.glob("profiles.duckdb*") if p.is_file())
                    print(json.dumps({"bench": "B10", "round": round_, "store": mode, "file_mb": round(size / 1e6, 1)}))
                shutil.rmtree(folder)
    finally:
        if args.engine == "postgres":  # a step that failed leaves its schema
            for folder in work.iterdir():
                drop_schema(args.dsn, folder.name)
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {"bench": "B10", "summary": True, "engine": args.engine, "records": args.records,
                               "rounds": args.rounds, "duckdb": duckdb.__version__}
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
