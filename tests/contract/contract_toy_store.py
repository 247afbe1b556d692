"""A small destination keeping each table as a JSON file, used to test the destination contract
suite itself — plus two deliberately broken twins the suite must catch:

- `LosesCommitsStore` only writes at `finish`, so rows committed before a failure are lost;
- `UpsertAppendsStore` appends where it should upsert, so a key can appear twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from threadline.contracts import ConfigError, Destination, Spec, StreamTarget, StreamWriter, WriteDisposition, WriteReport
from threadline.testing import DestinationContract


class ToyStoreConfig(Spec):
    folder: str = Field(description="where each table is kept as <table>.json")


class ToyStore(Destination[ToyStoreConfig]):
    name = "toy_store"
    spec = ToyStoreConfig

    def check(self, config: ToyStoreConfig) -> None:
        folder = Path(config.folder)
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError(f"{folder} is not a writable folder", field="folder")

    def open_stream(self, config: ToyStoreConfig, target: StreamTarget) -> StreamWriter:
        return ToyStoreWriter(Path(config.folder), target)


class ToyStoreWriter(StreamWriter):
    write_on_commit = True  # the broken twins switch these off
    upserts = True

    def __init__(self, folder: Path, target: StreamTarget) -> None:
        self.path = folder / f"{target.table}.json"
        self.target, self.pending, self.rows = target, [], 0
        self.replace = target.disposition is WriteDisposition.REPLACE
        self.table: list[dict[str, Any]] = [] if self.replace else read_table(self.path)

    def write(self, batch: pa.RecordBatch) -> None:
        self.pending += batch.to_pylist()
        self.rows += batch.num_rows

    def commit(self) -> None:
        if self.write_on_commit:
            self._apply()
            if not self.replace:  # replace shows nothing until finish swaps the table in
                self._save()

    def finish(self) -> WriteReport:
        self._apply()
        self._save()
        return WriteReport(rows_written=self.rows)

    def abort(self) -> None:
        self.pending = []

    def _apply(self) -> None:
        if self.target.disposition is WriteDisposition.UPSERT and self.upserts:
            key = self.target.stream.primary_key
            merged = {tuple(r.get(k) for k in key): r for r in self.table}
            merged.update({tuple(r.get(k) for k in key): r for r in self.pending})
            self.table = list(merged.values())
        else:
            self.table += self.pending
        self.pending = []

    def _save(self) -> None:
        names = list(dict.fromkeys(n for r in self.table for n in r))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{n: r.get(n) for n in names} for r in self.table]))
        os.replace(tmp, self.path)


def read_table(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


class LosesCommitsStore(ToyStore):
    """BROKEN: commit() does nothing; rows reach the file only at finish()."""

    name = "toy_store_loses_commits"

    def open_stream(self, config: ToyStoreConfig, target: StreamTarget) -> StreamWriter:
        writer = super().open_stream(config, target)
        writer.write_on_commit = False
        return writer


class UpsertAppendsStore(ToyStore):
    """BROKEN: upsert appends, so a key written twice is there twice."""

    name = "toy_store_upsert_appends"

    def open_stream(self, config: ToyStoreConfig, target: StreamTarget) -> StreamWriter:
        writer = super().open_stream(config, target)
        writer.upserts = False
        return writer


class ToyStoreContract(DestinationContract):
    """The destination suite's settings for the toy stores (a test class adds `destination`)."""

    bad_config = {"folder": "/no/such/folder"}

    def config(self, tmp_path):
        return {"folder": str(tmp_path)}

    def read_rows(self, config, table):
        return read_table(Path(config.folder) / f"{table}.json")
