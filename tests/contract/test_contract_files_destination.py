"""The destination contract suite against the `files` destination (Parquet parts; no upsert)."""

import pyarrow as pa
import pyarrow.parquet as pq
from threadline_files_destination import FilesDestination

from threadline.testing import DestinationContract


class TestFilesDestination(DestinationContract):
    destination = FilesDestination
    bad_config = {"path": "/proc/no-such-place/out"}

    def config(self, tmp_path):
        return {"path": str(tmp_path / "out")}

    def read_rows(self, config, table):
        parts = sorted((config.path / table).glob("part-*.parquet"))
        tables = [pq.read_table(part) for part in parts]
        return pa.concat_tables(tables, promote_options="default").to_pylist() if tables else []
