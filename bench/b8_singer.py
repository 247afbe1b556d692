"""B8: a singer-sdk tap through threadline's `singer` source, against the same tap piped into a
Singer target the usual way — side by side, in the same run.

    python bench/b8_singer.py [--rows 50000] [--runs 3]

The tap is tap-jsonl (singer-sdk, from PyPI; in bench/requirements.txt) reading the B1
customer rows (bench/common.py: 10 flat columns) as JSON lines. Figures, each the median of
--runs runs, records per second of wall time, process start-up included:

- tap_to_devnull       the tap alone, its stdout thrown away: the ceiling for any consumer
- tap_pipe_target_csv  tap-jsonl | target-csv (meltanolabs, singer-sdk): the usual way
- singer_subprocess    threadline's singer source running the tap as a subprocess, every
                       batch consumed as Arrow (no destination)
- singer_in_process    the same tap class run in-process (no JSON between tap and Arrow)
- job_subprocess_duckdb / job_in_process_duckdb  a whole threadline job: tap → engine → DuckDB
- decode_only          threadline's share alone: the tap's captured stdout decoded to Arrow
                       batches (SCHEMA/RECORD/STATE lines in 1 MiB chunks, as from a pipe)

target-csv is installed on first use into its own cached venv (threadline_singer.testing).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, dataset, emit, median_of  # noqa: E402

from threadline.contracts import Batch, ReadRequest, SyncMode  # noqa: E402
from threadline_singer.source import SingerSource, SingerSourceConfig  # noqa: E402
from threadline_singer.testing import TARGET_CSV, tool  # noqa: E402

BIN = Path(sys.executable).parent
DATA_NOTE = "bench/common.py customers(): 10 flat columns (ids, names, email, phone, city, postal code, date, money, count)"


def tap_config(path: Path) -> dict:
    return {"path": str(path), "stream_name": "customers", "primary_keys": ["customer_id"]}


def write_config(folder: Path, name: str, data: dict) -> str:
    import json

    target = folder / name
    target.write_text(json.dumps(data))
    return str(target)


def shell_run(command: str, cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{command!r} failed:\n{done.stderr[-2000:]}")
    return seconds


def tap_to_devnull(path: Path) -> float:
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        cfg = write_config(Path(tmp), "tap.json", tap_config(path))
        return shell_run(f"{BIN / 'tap-jsonl'} --config {cfg} > /dev/null 2>&1", Path(tmp))


def tap_pipe_target(path: Path, target: Path) -> float:
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        cfg = write_config(Path(tmp), "tap.json", tap_config(path))
        tcfg = write_config(Path(tmp), "target.json", {"output_path": tmp})
        return shell_run(f"{BIN / 'tap-jsonl'} --config {cfg} 2>/dev/null | {target} --config {tcfg} > /dev/null 2>&1", Path(tmp))


def singer_source(path: Path, rows: int, *, in_process: bool) -> float:
    how = {"tap_class": "tap_jsonl.tap:TapJsonl"} if in_process else {"executable": str(BIN / "tap-jsonl")}
    config = SingerSourceConfig(**how, tap_config=tap_config(path))
    t0 = time.perf_counter()
    source = SingerSource()
    stream = source.discover(config).get("customers")
    seen = 0
    for message in source.read(config, ReadRequest(stream=stream, sync_mode=SyncMode.FULL_REFRESH)):
        if isinstance(message, Batch):
            seen += message.records.num_rows
    seconds = time.perf_counter() - t0
    if seen != rows:
        raise SystemExit(f"the singer source read {seen} rows, expected {rows}")
    return seconds


def singer_job(path: Path, rows: int, *, in_process: bool) -> float:
    from threadline.engine import run_job
    from threadline.job import job_from_dict

    how = {"tap_class": "tap_jsonl.tap:TapJsonl"} if in_process else {"executable": str(BIN / "tap-jsonl")}
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        job = job_from_dict(
            {
                "name": "b8",
                "sources": {"shop": {"connector": "singer", "config": {**how, "tap_config": tap_config(path)}}},
                "destinations": {"db": {"connector": "duckdb", "config": {"path": "store.duckdb"}}},
            },
            Path(tmp),
        )
        t0 = time.perf_counter()
        report = run_job(job)
        seconds = time.perf_counter() - t0
        if not report.ok or report.stream("shop", "customers").rows_written != rows:
            raise SystemExit(f"the threadline job failed: {report.error}")
        return seconds


def decode_only(path: Path, rows: int) -> float:
    from threadline_singer.protocol import StreamDecoder
    from threadline_singer.schema import json_schema_to_arrow

    capture = OUT / f"b8_tap_output_{rows}.singer"
    if not capture.exists():
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            cfg = write_config(Path(tmp), "tap.json", tap_config(path))
            shell_run(f"{BIN / 'tap-jsonl'} --config {cfg} > {capture} 2>/dev/null", Path(tmp))
    data = capture.read_bytes()
    first = __import__("json").loads(data.split(b"\n", 1)[0])
    decoder = StreamDecoder("customers", json_schema_to_arrow(first["schema"]), where="bench")
    t0 = time.perf_counter()
    seen, pending, start = 0, b"", 0
    while start < len(data):  # 1 MiB reads split into lines, as SingerProcess.lines() does
        chunk = pending + data[start : start + (1 << 20)]
        start += 1 << 20
        cut = chunk.rfind(b"\n")
        pending = chunk[cut + 1 :]
        for message in decoder.feed_lines(chunk[:cut].split(b"\n")):
            seen += message.records.num_rows if isinstance(message, Batch) else 0
    for message in decoder.finish():
        seen += message.records.num_rows if isinstance(message, Batch) else 0
    seconds = time.perf_counter() - t0
    if seen != rows:
        raise SystemExit(f"decoded {seen} rows, expected {rows}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="run only these cases")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    path = dataset(args.rows, "jsonl")
    target = tool(TARGET_CSV)

    cases = {
        "tap_to_devnull": lambda: tap_to_devnull(path),
        "tap_pipe_target_csv": lambda: tap_pipe_target(path, target),
        "singer_subprocess": lambda: singer_source(path, args.rows, in_process=False),
        "singer_in_process": lambda: singer_source(path, args.rows, in_process=True),
        "job_subprocess_duckdb": lambda: singer_job(path, args.rows, in_process=False),
        "job_in_process_duckdb": lambda: singer_job(path, args.rows, in_process=True),
        "decode_only": lambda: decode_only(path, args.rows),
    }
    rates: dict[str, float] = {}
    for name, case in cases.items():
        if args.only and name not in args.only:
            continue
        seconds, runs = median_of(args.runs, case)
        rates[name] = args.rows / seconds
        emit(bench="B8", case=name, rows=args.rows, runs=args.runs, median_s=round(seconds, 3),
             records_per_s=round(rates[name]), all_s=[round(s, 3) for s in runs])
    if "tap_pipe_target_csv" not in rates:
        return
    baseline = rates["tap_pipe_target_csv"]
    emit(
        bench="B8", case="ratios_vs_tap_pipe_target_csv", rows=args.rows, data=DATA_NOTE,
        **{name: round(rate / baseline, 2) for name, rate in rates.items() if name != "tap_pipe_target_csv"},
    )


if __name__ == "__main__":
    main()
