"""Event → audience latency, as the profile store sees it, for the report.

A stream that declares an `arrival_field` (the events source's `received_at`: when the
collector accepted the event) lets the store measure, for the records a run landed, how long
they took to reach each stage of that run: profiles, traits and audiences updated (the
build's end), then the membership changes pushed. `threadline sync --follow` runs one such
run per micro-batch; the report shows the latest ones, p50 and p99 per stage.

Figures only, never a record: the arrival times are read as one Arrow column per raw table.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from threadline_profiles.engines import lit

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

LATENCY_TABLE = (
    "CREATE TABLE IF NOT EXISTS tl_latency (run_id VARCHAR, stage VARCHAR, measured_at TIMESTAMP, "
    "records BIGINT, p50 DOUBLE, p95 DOUBLE, p99 DOUBLE, max DOUBLE)"
)
STAGES = {"built": "profiles, traits and audiences updated", "pushed": "membership changes pushed"}
SHOWN_RUNS = 10  # the report's table: the latest runs that measured anything


@dataclass(frozen=True)
class ArrivalColumn:
    """A raw table whose rows say when they arrived, in this column."""

    table: str
    column: str


def arrivals(store: ProfileStore, run_id: str, columns: list[ArrivalColumn]) -> np.ndarray:
    """Arrival times (microseconds since the epoch, UTC) of the rows `run_id` landed."""
    parts = []
    for c in columns:
        times = store.engine.query(f'SELECT "{c.column}" AS t FROM {c.table} WHERE _tl_run_id = {lit(run_id)} '
                                   f'AND "{c.column}" IS NOT NULL').column("t")
        # a naive timestamp is UTC (the engines store UTC); an aware one converts to it
        micros = times.cast(pa.timestamp("us", tz="UTC") if times.type.tz else pa.timestamp("us"))
        parts.append(micros.cast(pa.int64()).to_numpy(zero_copy_only=False))
    return np.concatenate(parts) if parts else np.array([], dtype=np.int64)


def record(store: ProfileStore, run_id: str, stage: str, arrived: np.ndarray, now: datetime | None = None) -> None:
    """Save how long the run's records took to reach `stage` (nothing when none arrived)."""
    if not len(arrived):
        return
    now = now or datetime.now(timezone.utc)
    seconds = (int(now.timestamp() * 1_000_000) - arrived) / 1e6
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
    at = now.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    with store.lock:
        store.engine.execute(LATENCY_TABLE)
        store.engine.execute(
            f"INSERT INTO tl_latency VALUES ({lit(run_id)}, {lit(stage)}, CAST({lit(at)} AS TIMESTAMP), "
            f"{len(seconds)}, {float(p50)}, {float(p95)}, {float(p99)}, {float(seconds.max())})")


def latest(store: ProfileStore, runs: int = SHOWN_RUNS) -> list[dict[str, Any]]:
    """One row per run (newest first): records, and p50/p99 seconds at each stage."""
    if not store.engine.table_exists("tl_latency"):
        return []
    rows = store.engine.rows(
        "SELECT l.* FROM tl_latency AS l JOIN (SELECT run_id, MIN(measured_at) AS first_at FROM tl_latency "
        f"GROUP BY run_id ORDER BY first_at DESC LIMIT {int(runs)}) AS r ON r.run_id = l.run_id "
        "ORDER BY r.first_at DESC, l.measured_at")
    by_run: dict[str, dict[str, Any]] = {}
    for r in rows:
        shown = by_run.setdefault(r["run_id"], {"run": r["run_id"], "at": str(r["measured_at"])[:19],
                                                "records": r["records"]})
        shown[f"{r['stage']} p50"] = f"{r['p50']:.2f}s"
        shown[f"{r['stage']} p99"] = f"{r['p99']:.2f}s"
    return list(by_run.values())


def render(store: ProfileStore, table: Any) -> str:
    """The report's section; empty when no landed stream says when its records arrived."""
    rows = latest(store)
    if not rows:
        return ""
    measured = [s for s in STAGES if any(f"{s} p50" in r for r in rows)]
    columns = ["run", "at", "records"] + [f"{s} {q}" for s in measured for q in ("p50", "p99")]
    stages = "; ".join(f"{s}: {STAGES[s]}" for s in measured)
    return ("<h2>Event → audience latency</h2><p class=muted>seconds from each record's arrival (e.g. the collector "
            f"accepting an event) to each stage of the run that landed it ({html.escape(stages)}); "
            "<code>threadline sync --follow</code> runs one per micro-batch</p>"
            + table(rows, columns, "nothing measured"))
