"""The duckdb destination: dispositions, commits, new columns and a locked file."""

import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.compute  # noqa: F401
import pytest

from threadline.contracts import ConfigError, Stream, StreamTarget, WriteDisposition
from threadline_duckdb.destination import DuckDBConfig, DuckDBDestination, close_all

SCHEMA = pa.schema([("id", pa.int64()), ("email", pa.string())])


@pytest.fixture
def dest(tmp_path):
    config = DuckDBConfig(path=tmp_path / "db.duckdb")

    def open_stream(disposition, run="r1", key=("id",)):
        stream = Stream("people", SCHEMA, key)
        return DuckDBDestination().open_stream(config, StreamTarget("src", stream, disposition, "people", run))

    def rows(sql="select id, email from people order by id"):
        close_all()
        con = duckdb.connect(str(config.path))
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()

    yield open_stream, rows
    close_all()


def batch(**cols):
    return pa.RecordBatch.from_pydict(cols)


def test_upsert_replaces_rows_with_the_same_key_and_the_last_row_in_a_batch_wins(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT)
    w.write(batch(id=[1, 2], email=["a", "b"]))
    w.commit()
    w.write(batch(id=[2, 3, 3], email=["B", "c", "C"]))
    w.finish()
    assert rows() == [(1, "a"), (2, "B"), (3, "C")]


def test_an_upsert_into_a_table_that_has_rows_replaces_them_by_key(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT, "r1")
    w.write(batch(id=[1, 2, 3], email=["a", "b", "c"]))
    w.finish()
    w = open_stream(WriteDisposition.UPSERT, "r2")  # not a first load: keys are joined against the table
    w.write(batch(id=[3, 4], email=["C", "d"]))
    w.commit()
    w.write(batch(id=[4, 1], email=["D", "A"]))
    w.finish()
    assert rows() == [(1, "A"), (2, "b"), (3, "C"), (4, "D")]


def test_a_first_load_keeps_the_last_row_of_keys_repeated_across_inserts(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT)
    w.insert_rows = 4  # several INSERTs per commit
    n = 10
    w.write(batch(id=list(range(n)), email=[f"old{i}" for i in range(n)]))
    w.write(batch(id=[7, 2, 7], email=["x", "new2", "new7"]))
    w.finish()
    expected = [(i, f"old{i}") for i in range(n)]
    expected[2], expected[7] = (2, "new2"), (7, "new7")
    assert rows() == expected


def test_upsert_by_a_composite_key(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT, key=("id", "email"))
    w.write(batch(id=[1, 1, 2], email=["a", "b", "a"]))
    w.write(batch(id=[1], email=["a"]))
    w.finish()
    assert rows("select id, email, count(*) from people group by all order by all") == [(1, "a", 1), (1, "b", 1), (2, "a", 1)]


def test_append_adds_rows(dest):
    open_stream, rows = dest
    for run in ("r1", "r2"):
        w = open_stream(WriteDisposition.APPEND, run, key=())
        w.write(batch(id=[1], email=["a"]))
        w.finish()
    assert rows() == [(1, "a"), (1, "a")]


def test_replace_swaps_in_the_new_rows_only_when_the_stream_finishes(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.REPLACE, "r1", key=())
    w.write(batch(id=[1, 2], email=["a", "b"]))
    w.finish()
    w = open_stream(WriteDisposition.REPLACE, "r2", key=())
    w.write(batch(id=[9], email=["z"]))
    w.commit()
    w.abort()  # the second run fails: the first run's table is untouched
    assert rows() == [(1, "a"), (2, "b")]
    w = open_stream(WriteDisposition.REPLACE, "r3", key=())
    w.write(batch(id=[9], email=["z"]))
    w.finish()
    assert rows() == [(9, "z")]


def test_rows_committed_before_a_failure_survive_and_uncommitted_ones_do_not(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT)
    w.write(batch(id=[1], email=["a"]))
    w.commit()
    w.write(batch(id=[2], email=["b"]))
    w.abort()
    assert rows() == [(1, "a")]


def test_new_columns_are_added_as_they_appear(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT)
    w.write(batch(id=[1], email=["a"]))
    w.write(batch(id=[2], email=["b"], tier=["gold"]))
    w.finish()
    assert rows("select id, tier from people order by id") == [(1, None), (2, "gold")]


def test_lineage_columns_record_the_run(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT, "run-42")
    w.write(batch(id=[1], email=["a"]))
    w.finish()
    assert rows("select _threadline_run_id, _threadline_loaded_at is not null from people") == [("run-42", True)]


def test_a_file_locked_by_another_process_is_a_clear_error(tmp_path):
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys,time; c=duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ConfigError) as exc:
            DuckDBDestination().check(DuckDBConfig(path=path))
        assert f"it is locked by another process (pid {holder.pid})" in exc.value.render()
    finally:
        holder.kill()
        holder.wait()


def test_an_upsert_checkpoint_of_more_than_a_million_rows_lands_every_row(dest):
    # DuckDB 2.0.0 reads back 0 rows from a table holding >~1M uncommitted rows in the same
    # transaction; the writer must not merge its stage inside such a transaction.
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT)
    n = 1_100_000
    for start in range(0, n, 200_000):
        ids = pa.array(range(start, min(start + 200_000, n)), pa.int64())
        w.write(pa.RecordBatch.from_arrays([ids, pa.compute.cast(ids, pa.string())], names=["id", "email"]))
    w.finish()
    assert rows("select count(*), count(distinct id), max(id) from people") == [(n, n, n - 1)]


def test_a_column_whose_type_the_stream_changed_is_converted(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT)
    w.write(pa.RecordBatch.from_pydict({"id": pa.array([1], pa.int32()), "email": ["a"]}))
    w.finish()
    w = open_stream(WriteDisposition.UPSERT, "r2")  # the source's id column became bigint
    w.write(pa.RecordBatch.from_pydict({"id": pa.array([9_000_000_000], pa.int64()), "email": ["b"]}))
    w.finish()
    assert rows() == [(1, "a"), (9_000_000_000, "b")]


def test_an_upsert_that_commits_early_to_bound_memory_still_keeps_the_last_row_per_key(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.UPSERT)
    w.insert_rows, w.commit_rows = 2, 4  # several early commits inside one checkpoint
    w.write(batch(id=[1, 2, 3, 4, 5], email=["a", "b", "c", "d", "e"]))
    w.write(batch(id=[5, 1, 6], email=["E", "A", "f"]))
    w.write(batch(id=[1], email=["AA"]))
    w.finish()
    assert rows() == [(1, "AA"), (2, "b"), (3, "c"), (4, "d"), (5, "E"), (6, "f")]


def test_an_upsert_of_a_change_stream_removes_keys_whose_last_change_is_a_delete(tmp_path):
    config = DuckDBConfig(path=tmp_path / "db.duckdb")
    schema = pa.schema([("id", pa.int64()), ("email", pa.string()), ("_threadline_op", pa.string())])

    def write(run, **cols):
        w = DuckDBDestination().open_stream(config, StreamTarget("src", Stream("people", schema, ("id",)),
                                                                  WriteDisposition.UPSERT, "people", run))
        w.write(pa.RecordBatch.from_pydict(cols, schema=schema))
        w.finish()

    write("r1", id=[1, 2, 3, 2], email=["a", "b", "c", None], _threadline_op=["insert", "insert", "insert", "delete"])
    write("r2", id=[3, 4], email=[None, "d"], _threadline_op=["delete", "insert"])  # into a table that has rows
    close_all()
    con = duckdb.connect(str(config.path))
    try:
        assert con.sql("select id, email from people order by id").fetchall() == [(1, "a"), (4, "d")]
    finally:
        con.close()
    close_all()


def test_a_column_that_differs_from_the_tables_only_in_case_lands_in_it(dest):
    open_stream, rows = dest
    w = open_stream(WriteDisposition.APPEND)
    w.write(batch(id=[1], email=["a@x.io"]))
    w.write(batch(id=[2], EMAIL=["b@x.io"]))  # DuckDB's identifiers ignore case: the same column
    w.finish()
    assert rows() == [(1, "a@x.io"), (2, "b@x.io")]


def test_two_columns_differing_only_in_case_fail_with_a_clear_error(dest):
    from threadline.contracts import FatalError

    open_stream, _ = dest
    w = open_stream(WriteDisposition.APPEND)
    with pytest.raises(FatalError, match="columns 'email' and 'Email' of people differ only in case"):
        w.write(batch(id=[1], email=["a@x.io"], Email=["b@x.io"]))
    w.abort()


def test_table_state_and_location_for_the_engine(tmp_path):
    config = DuckDBConfig(path=tmp_path / "db.duckdb")
    target = StreamTarget("src", Stream("people", SCHEMA, ("id",)), WriteDisposition.APPEND, "people", "r1")
    dest = DuckDBDestination()
    assert dest.locate(config, target) == f"duckdb:{(tmp_path / 'db.duckdb').resolve()}#main.people"
    assert dest.table_exists(config, target) is False and not config.path.exists(), "asking creates nothing"
    w = dest.open_stream(config, target)
    w.write(batch(id=[1], email=["a"]))
    w.finish()
    assert dest.table_exists(config, target) is True
    dest.release(config)
    other = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(config.path)!r}).execute('select 1')"],
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr


def test_a_schema_name_that_could_be_a_path_is_a_config_error(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="schema_name"):
        DuckDBConfig(path=tmp_path / "db.duckdb", schema_name="../x")


def test_threads_bounds_the_worker_threads_duckdb_uses(tmp_path):
    config = DuckDBConfig(path=tmp_path / "db.duckdb", threads=3)  # not any machine's default
    writer = DuckDBDestination().open_stream(
        config, StreamTarget("src", Stream("people", SCHEMA, ("id",)), WriteDisposition.UPSERT, "people", "r1"))
    try:
        assert writer.cur.execute("select current_setting('threads')").fetchall() == [(3,)]
    finally:
        writer.abort()
        close_all()


def test_threads_below_one_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="threads"):
        DuckDBConfig(path=tmp_path / "db.duckdb", threads=0)


def test_a_parquet_files_empty_keys_are_looked_for_only_where_its_null_counts_leave_room(dest, tmp_path):
    import pyarrow.parquet as pq

    from threadline.contracts import NativeFile

    open_stream, rows = dest
    files = {"counted.parquet": ([1, 2], ["a", "b"], True), "holed.parquet": ([3, None], ["c", "lost"], True),
             "uncounted.parquet": ([None, 4], ["gone", "d"], False)}  # no statistics: it may hold empty keys
    for name, (ids, emails, statistics) in files.items():
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "email": emails}), tmp_path / name,
                       write_statistics=statistics)
    w = open_stream(WriteDisposition.UPSERT)
    loads = {name: w.load_file(NativeFile("people", tmp_path / name, "parquet", SCHEMA, 2)) for name in files}
    w.finish()
    assert loads["counted.parquet"].held_back is None  # its footer counts no null key: nothing to look for
    assert loads["holed.parquet"].held_back.to_pylist() == [{"id": None, "email": "lost"}]
    assert loads["uncounted.parquet"].held_back.to_pylist() == [{"id": None, "email": "gone"}]
    assert [load.rows for load in loads.values()] == [2, 1, 1]
    assert rows() == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
