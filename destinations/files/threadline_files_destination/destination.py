"""The `files` destination: each stream becomes a folder of Parquet, CSV or JSON lines parts.

Writes are atomic: a part is written under a temporary name and renamed into place when the
engine commits, so a reader (or a crash) never sees half a file. Layout:

    <path>/<table>/part-<run id>-<n>.<ext>

- append:  every commit adds a part;
- replace: parts go to a hidden staging folder that is swapped in when the stream ends.
Upsert is not offered: files have no keys to update by (use the duckdb destination).
A table name follows the core's name rule (`threadline.names`), so a stream's folder is
always directly under `path` and a replace never swaps or deletes anything outside it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from threadline.contracts import (
    ConfigError,
    Destination,
    JobPath,
    Spec,
    StreamTarget,
    StreamWriter,
    WriteDisposition,
    WriteReport,
)
from threadline.names import inside, safe_name

_EXT = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


class FilesDestinationConfig(Spec):
    path: JobPath  # the folder streams are written under, relative to the job file
    format: Literal["parquet", "csv", "jsonl"] = "parquet"


class FilesDestination(Destination[FilesDestinationConfig]):
    name = "files"
    spec = FilesDestinationConfig
    dispositions = (WriteDisposition.APPEND, WriteDisposition.REPLACE)

    def check(self, config: FilesDestinationConfig) -> None:
        try:
            config.path.mkdir(parents=True, exist_ok=True)
            probe = config.path / f".threadline-check-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write to {config.path}: {exc.strerror}", field="path",
                              hint="choose a folder this user can write to") from None

    def open_stream(self, config: FilesDestinationConfig, target: StreamTarget) -> StreamWriter:
        return FilesWriter(config, target)

    def locate(self, config: FilesDestinationConfig, target: StreamTarget) -> str:
        return f"files:{Path(config.path).resolve() / target.table}"

    def table_exists(self, config: FilesDestinationConfig, target: StreamTarget) -> bool:
        return (Path(config.path) / target.table).is_dir()


class FilesWriter(StreamWriter):
    def __init__(self, config: FilesDestinationConfig, target: StreamTarget) -> None:
        self.format = config.format
        self.final_dir = config.path / safe_name(target.table, "table")
        if not inside(config.path, self.final_dir):  # a symlink planted where the table's folder goes
            raise ConfigError(f"{self.final_dir} leads outside {config.path}", field="path",
                              hint="remove the link, or point `path` at the folder it leads to")
        self.replace = target.disposition is WriteDisposition.REPLACE
        self.dir = config.path / f".{target.table}.staging-{target.run_id}" if self.replace else self.final_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_id = target.run_id
        self.pending: list[pa.RecordBatch] = []
        self.parts = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.rows += batch.num_rows

    def commit(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending).combine_chunks()
        self.parts += 1
        final = self.dir / f"part-{self.run_id}-{self.parts:05d}.{_EXT[self.format]}"
        tmp = self.dir / f".{final.name}.tmp"
        if self.format == "parquet":
            pq.write_table(table, tmp)
        elif self.format == "csv":
            pacsv.write_csv(table, tmp)
        else:
            import json

            with tmp.open("w", encoding="utf-8") as out:  # JSON lines: no Arrow writer exists
                for row in table.to_pylist():
                    out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)  # atomic: the part appears whole or not at all
        self.pending = []

    def finish(self) -> WriteReport:
        self.commit()
        if self.replace:
            old = self.final_dir.with_name(f".{self.final_dir.name}.old-{self.run_id}")
            if self.final_dir.exists():
                os.replace(self.final_dir, old)
            os.replace(self.dir, self.final_dir)
            shutil.rmtree(old, ignore_errors=True)
        return WriteReport(rows_written=self.rows)

    def abort(self) -> None:
        self.pending = []
        for tmp in self.dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        if self.replace:
            shutil.rmtree(self.dir, ignore_errors=True)
