"""Run a `postgres → duckdb` job through the real engine, and read what landed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from threadline.engine.runner import RunReport, run_job
from threadline.job import job_from_dict
from threadline_postgres.testing import TEST_DSN, execute


def source_config(schema: str, cdc: bool = False, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"dsn": TEST_DSN, "schemas": [schema], "checkpoint_rows": 1000, **extra}
    if cdc:
        config["replication"] = {"slot": schema, "publication": schema, **config.get("replication", {})}
    return config


def run(workdir: Path, config: dict[str, Any], streams: dict[str, Any] | None = None,
        destination: dict[str, Any] | None = None) -> RunReport:
    job = job_from_dict({
        "name": "pgtest",
        "sources": {"db": {"connector": "postgres", "config": config,
                           **({"streams": streams} if streams is not None else {})}},
        "destinations": {"wh": destination or {"connector": "duckdb", "config": {"path": str(workdir / "wh.duckdb")}}},
        "state": str(workdir / ".threadline"),
        "concurrency": 2,
        "max_rejected_share": 0,
    }, base_dir=workdir)
    return run_job(job)


def landed(workdir: Path, table: str, columns: str = "*", order: str = "id") -> list[tuple]:
    from threadline_duckdb.destination import close_all

    close_all()
    con = duckdb.connect(str(workdir / "wh.duckdb"), read_only=True)
    try:
        return con.sql(f'select {columns} from "{table}" order by {order}').fetchall()
    finally:
        con.close()


def source_rows(schema: str, table: str, columns: str = "*", order: str = "id") -> list[tuple]:
    return execute(f'select {columns} from "{schema}"."{table}" order by {order}')


def problem(report: RunReport) -> str:
    return f"{report.outcome}: {report.error}"
