"""B9: a 1M-row Postgres customers table into DuckDB — threadline's postgres source against dlt's
sql_database source (pyarrow and connectorx backends) and a Singer tap-postgres, in one run —
and change data capture: 100k mixed changes applied at the source, then the time until DuckDB
holds them all.

    python bench/b9_database.py [--rows 1000000] [--runs 3] [--tap-runs 1] [--changes 100000]

The table is bench/common.py's customers() (10 columns: text ids, names, email, phone, city,
postal code, date, money, count), loaded into schema `tl_bench_b9` of $THREADLINE_BENCH_PG_DSN
(default: the machine's Postgres, database `test`) once. Every figure is rows per second of
wall time of a whole process (start-up included), the median of --runs:

- threadline        `threadline sync` of a postgres → duckdb job, full refresh, write: replace
- dlt_pyarrow       dlt 1.x sql_table(backend="pyarrow") → duckdb, write_disposition replace
- dlt_connectorx    the same with backend="connectorx"
- tap_postgres      meltanolabs tap-postgres (singer-sdk) with the table selected in its catalog, its
                    RECORD lines counted by `grep -c` (no target): the ceiling of any Singer pipeline
                    built on it (--tap-runs, 1 by default: it is slow)
- cdc_snapshot      the first CDC sync (the snapshot joining the slot)
- cdc_apply         after `--changes` changes (45% updates, 35% inserts, 20% deletes, in 1,000-row
                    transactions): seconds until the sync that reads them has committed them to
                    DuckDB, and changes per second; the destination is then checked equal to the source

Ratios are against the figures of the same run: threadline / tap_postgres (goal >= 5) and
threadline / dlt's best backend (goal >= 1). tap-postgres runs from a venv of its own
(bench/requirements.txt names it; threadline_singer.testing builds the venv on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import customers, emit  # noqa: E402

DSN = os.environ.get("THREADLINE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "tl_bench_b9"
BIN = Path(sys.executable).parent
TAP = ("meltanolabs-tap-postgres==0.10.0", "tap-postgres")
DATA_NOTE = "bench/common.py customers(): 10 columns; customer_id is the primary key"


def psql(sql: str, params=None) -> list[tuple]:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as con:
        cur = con.execute(sql, params)
        return cur.fetchall() if cur.description else []


def load_table(rows: int) -> None:
    """The customers table, created once per row count."""
    have = psql("select to_regclass(%s) is not null", (f"{SCHEMA}.customers",))[0][0]
    if have and psql(f"select count(*) from {SCHEMA}.customers")[0][0] == rows:
        return
    import adbc_driver_postgresql.dbapi as adbc

    psql(f"drop schema if exists {SCHEMA} cascade")
    psql(f"create schema {SCHEMA}")
    table = customers(rows)
    with adbc.connect(DSN) as con, con.cursor() as cur:
        cur.adbc_ingest("customers", table, mode="create", db_schema_name=SCHEMA)
        cur.execute(f"alter table {SCHEMA}.customers add primary key (customer_id)")
        cur.execute(f"alter table {SCHEMA}.customers alter column lifetime_value type numeric(12,2)")
        con.commit()
    psql(f"vacuum analyze {SCHEMA}.customers")


def wall(args: list[str], **kw) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, **kw)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    return seconds


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def threadline_job(folder: Path, cdc: bool, name: str) -> Path:
    config = {"dsn": DSN, "schemas": [SCHEMA], "tables": ["customers"]}
    streams = {"customers": {"sync_mode": "full_refresh", "write": "replace"}}
    if cdc:
        config["replication"] = {"slot": "tl_bench_b9", "publication": "tl_bench_b9"}
        streams = {"customers": {"sync_mode": "incremental", "write": "upsert"}}
    job = folder / f"{name}.yaml"
    job.write_text(json.dumps({
        "name": name,
        "sources": {"pg": {"connector": "postgres", "config": config, "streams": streams}},
        "destinations": {"wh": {"connector": "duckdb", "config": {"path": f"{name}.duckdb", "memory_limit": "1GB"}}},
    }))
    return job


DLT_SCRIPT = """
import sys, dlt
from dlt.sources.sql_database import sql_table
backend, path, dsn, schema = sys.argv[1:]
pipeline = dlt.pipeline(pipeline_name="b9_" + backend, destination=dlt.destinations.duckdb(path),
                        dataset_name="b9", pipelines_dir=path + ".pipelines")
table = sql_table(credentials=dsn.replace("postgresql://", "postgresql+psycopg2://"), table="customers",
                  schema=schema, backend=backend)
info = pipeline.run(table, write_disposition="replace")
info.raise_on_failed_jobs()
"""


def run_dlt(folder: Path, backend: str, i: int) -> float:
    path = str(folder / f"dlt_{backend}_{i}.duckdb")
    return wall([sys.executable, "-c", DLT_SCRIPT, backend, path, DSN, SCHEMA])


def run_tap(folder: Path, rows: int) -> float:
    from psycopg.conninfo import conninfo_to_dict
    from threadline_singer.testing import tool_venv

    tap = tool_venv(TAP[0], name=TAP[0].replace("==", "-")) / TAP[1]
    info = conninfo_to_dict(DSN)
    config = folder / "tap.json"
    config.write_text(json.dumps({"host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
                                  "user": info.get("user", "postgres"), "password": info.get("password", ""),
                                  "database": info.get("dbname", "test"), "filter_schemas": [SCHEMA]}))
    catalog = json.loads(subprocess.run([str(tap), "--config", str(config), "--discover"], capture_output=True,
                                        text=True, check=True).stdout)
    for stream in catalog["streams"]:  # a Singer tap reads only the streams its catalog selects
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
    (folder / "catalog.json").write_text(json.dumps(catalog))
    t0 = time.perf_counter()
    done = subprocess.run(f"'{tap}' --config '{config}' --catalog '{folder / 'catalog.json'}' | grep -c '\"RECORD\"'",
                          shell=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    records = int(done.stdout.strip() or 0)
    if records < rows:
        raise RuntimeError(f"tap-postgres emitted {records} records, not {rows}:\n{done.stderr[-1500:]}")
    return seconds


def apply_changes(n: int, rows: int, round_: int) -> int:
    """About n changes — 45% updates, 35% inserts, 20% deletes — in transactions of 1,000 rows, on
    keys no earlier round touched. Returns how many rows changed."""
    updates, inserts = int(n * 0.45), int(n * 0.35)
    deletes = n - updates - inserts
    first_update, first_delete = round_ * updates, rows // 2 + round_ * deletes
    base = rows * 10 + round_ * n  # new keys
    import psycopg

    changed = 0
    with psycopg.connect(DSN, autocommit=True) as con:
        for lo in range(0, updates, 1000):
            a = first_update + lo
            changed += con.execute(f"update {SCHEMA}.customers set orders = orders + 1, city = 'Changed' where "
                                   f"customer_id in (select 'C' || g from generate_series({a}, "
                                   f"{a + min(1000, updates - lo) - 1}) g)").rowcount
        for lo in range(0, inserts, 1000):
            changed += con.execute(f"insert into {SCHEMA}.customers (customer_id, first_name, last_name, email, orders, "
                                   f"lifetime_value, signup_date) select 'N' || g, 'New', 'Customer', 'n' || g || "
                                   f"'@example.com', 0, 1.5, date '2024-01-01' from generate_series({base + lo}, "
                                   f"{base + lo + min(1000, inserts - lo) - 1}) g").rowcount
        for lo in range(0, deletes, 1000):
            a = first_delete + lo
            changed += con.execute(f"delete from {SCHEMA}.customers where customer_id in (select 'C' || g from "
                                   f"generate_series({a}, {a + min(1000, deletes - lo) - 1}) g)").rowcount
    return changed


def same_as_source(duckdb_path: Path) -> bool:
    import duckdb

    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        got = con.execute("select count(*), sum(orders), count(distinct customer_id), count(*) filter "
                          "(where city = 'Changed') from pg__customers").fetchall()[0]
    finally:
        con.close()
    want = psql(f"select count(*), sum(orders), count(distinct customer_id), count(*) filter (where city = 'Changed') "
                f"from {SCHEMA}.customers")[0]
    return tuple(got) == tuple(want)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tap-runs", type=int, default=1)
    parser.add_argument("--changes", type=int, default=100_000)
    args = parser.parse_args()
    load_table(args.rows)
    rows = psql(f"select count(*) from {SCHEMA}.customers")[0][0]
    threadline = str(BIN / "threadline")
    with tempfile.TemporaryDirectory(prefix="b9_") as tmp:
        folder = Path(tmp)
        figures: dict[str, float] = {}
        job = threadline_job(folder, cdc=False, name="full")
        seconds = [wall([threadline, "sync", str(job)], cwd=folder) for _ in range(args.runs)]
        figures["threadline"] = rows / median(seconds)
        emit(bench="B9", case="threadline", rows=rows, rows_per_s=round(figures["threadline"]),
             seconds=[round(s, 2) for s in seconds], data=DATA_NOTE)
        for backend in ("pyarrow", "connectorx"):
            seconds = [run_dlt(folder, backend, i) for i in range(args.runs)]
            figures[f"dlt_{backend}"] = rows / median(seconds)
            emit(bench="B9", case=f"dlt_{backend}", rows=rows, rows_per_s=round(figures[f"dlt_{backend}"]),
                 seconds=[round(s, 2) for s in seconds])
        if args.tap_runs:
            seconds = [run_tap(folder, rows) for _ in range(args.tap_runs)]
            figures["tap_postgres"] = rows / median(seconds)
            emit(bench="B9", case="tap_postgres", rows=rows, rows_per_s=round(figures["tap_postgres"]),
                 seconds=[round(s, 2) for s in seconds], note="the tap alone, its records counted by grep -c")
        best_dlt = max(figures["dlt_pyarrow"], figures["dlt_connectorx"])
        emit(bench="B9", case="ratios", threadline_over_dlt_best=round(figures["threadline"] / best_dlt, 2),
             threadline_over_dlt_pyarrow=round(figures["threadline"] / figures["dlt_pyarrow"], 2),
             threadline_over_dlt_connectorx=round(figures["threadline"] / figures["dlt_connectorx"], 2),
             threadline_over_tap_postgres=(round(figures["threadline"] / figures["tap_postgres"], 2)
                                           if "tap_postgres" in figures else None),
             goals="threadline >= 5x tap_postgres, >= 1x dlt")

        psql("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'tl\\_bench\\_b9%'")
        psql("drop publication if exists tl_bench_b9")
        cdc_job = threadline_job(folder, cdc=True, name="cdc")
        snapshot = wall([threadline, "sync", str(cdc_job)], cwd=folder)
        emit(bench="B9", case="cdc_snapshot", rows=rows, seconds=round(snapshot, 2), rows_per_s=round(rows / snapshot))
        applied, counts = [], []
        for round_ in range(args.runs):
            counts.append(apply_changes(args.changes, args.rows, round_))
            applied.append(wall([threadline, "sync", str(cdc_job)], cwd=folder))
            if not same_as_source(folder / "cdc.duckdb"):
                raise SystemExit("the CDC sync did not leave DuckDB equal to the source")
        emit(bench="B9", case="cdc_apply", changes=counts, seconds=[round(s, 2) for s in applied],
             median_seconds=round(median(applied), 2), changes_per_s=round(median(counts) / median(applied)),
             mix="45% updates, 35% inserts, 20% deletes; 1,000 per transaction", equal_to_source=True)
        psql("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'tl\\_bench\\_b9%'")
        psql("drop publication if exists tl_bench_b9")


if __name__ == "__main__":
    main()
