"""The destination contract suite against the `duckdb` destination."""

from threadline_duckdb import DuckDBDestination
from threadline_duckdb.destination import connect

from threadline.testing import DestinationContract


class TestDuckDBDestination(DestinationContract):
    destination = DuckDBDestination
    bad_config = {"path": "/proc/no-such-place/warehouse.duckdb"}

    def config(self, tmp_path):
        return {"path": str(tmp_path / "warehouse.duckdb")}

    def read_rows(self, config, table):
        cursor = connect(config.path).cursor()  # a second reader of the same database
        return cursor.sql(f'select * from "{table}"').to_arrow_table().to_pylist()
