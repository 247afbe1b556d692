"""The commands bench/b1_ingest.py measures threadline against, each run as a whole process:

    python bench/b1_peers.py ctas FORMAT FILE DB [COL=TYPE,...]  # DuckDB alone: CREATE TABLE AS SELECT * FROM read_csv/read_parquet
    python bench/b1_peers.py dlt FORMAT FILE DB      # dlt's Arrow path: pyarrow batches → dlt → DuckDB

Each prints one JSON line, {"inner_s": ...}: the seconds of the load itself (after imports),
the peers' counterpart of the seconds threadline records for a stream in its run record.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ctas(fmt: str, path: str, db: str, types: str = "") -> float:
    """Values are inlined as literals, not bound as parameters: DuckDB 1.5's parameter binding
    imports pandas when it is installed (~0.6 CPU-s), which the limit must not pay."""
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(db)
    if os.environ.get("B1_DUCKDB_THREADS"):
        con.execute(f"set threads = {int(os.environ['B1_DUCKDB_THREADS'])}")
    if fmt == "parquet":
        con.execute(f"create table customers as select * from read_parquet({_literal(path)})")
    else:  # types: "col=TYPE,..." for columns the job declares (DuckDB would infer others alike)
        declared = dict(pair.split("=") for pair in types.split(",") if pair)
        spelled = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in declared.items())
        con.execute(f"create table customers as select * from read_csv({_literal(path)}"
                    + (f", types = {{{spelled}}})" if declared else ")"))
    con.close()  # the checkpoint is part of the work, as it is for threadline's command
    return time.perf_counter() - t0


def dlt_arrow(fmt: str, path: str, db: str) -> float:
    """dlt's documented fastest path into DuckDB: a resource that yields Arrow record batches."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no network from a bench
    os.environ.setdefault("DLT_DATA_DIR", str(Path(db).parent / "dlt-data"))
    import dlt
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    @dlt.resource(name="customers", write_disposition="append")
    def customers():
        if fmt == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=256_000)
        else:
            with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=4 << 20)) as reader:
                yield from reader

    t0 = time.perf_counter()
    pipeline = dlt.pipeline(pipeline_name="b1", destination=dlt.destinations.duckdb(db), dataset_name="main",
                            pipelines_dir=str(Path(db).parent / "dlt-pipelines"))
    pipeline.run(customers())
    return time.perf_counter() - t0


if __name__ == "__main__":
    tool, fmt, path, db, *extra = sys.argv[1:]
    seconds = {"ctas": ctas, "dlt": dlt_arrow}[tool](fmt, path, db, *extra)
    print(json.dumps({"inner_s": seconds}))
