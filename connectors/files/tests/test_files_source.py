"""The files source, synced through the real engine into a real DuckDB file."""

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from threadline.contracts import ConfigError
from threadline.engine import plan_job, run_job
from threadline.job import job_from_dict
from threadline_duckdb.destination import close_all


def run_sync(folder, stream, **options):
    """Run a job with one files stream `s` into DuckDB in `folder`; (report, rows as dicts
    ordered by the first column)."""
    job = job_from_dict({
        "name": "files_test",
        "sources": {"src": {"connector": "files", "config": {"streams": [{"name": "s", **stream}]}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": "out.duckdb"}}},
        **options,
    }, folder)
    report = run_job(job)
    close_all()
    con = duckdb.connect(str(folder / "out.duckdb"))
    try:
        rel = con.sql('select * exclude (_threadline_run_id, _threadline_loaded_at) from src__s order by 1')
        rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    except duckdb.CatalogException:
        rows = []
    con.close()
    return report, rows


@pytest.fixture
def sync(tmp_path):
    """sync(stream_config, **job_options): `run_sync` in the test's folder."""
    yield lambda stream, **options: run_sync(tmp_path, stream, **options)
    close_all()


def test_csv_options_delimiter_encoding_and_header(tmp_path, sync):
    (tmp_path / "a.csv").write_bytes("1;Müller;x\n2;Zoë;y\n".encode("latin-1"))
    report, rows = sync({"path": "a.csv", "csv": {"delimiter": ";", "encoding": "latin-1", "header": False,
                                                   "column_names": ["id", "name", "tag"]}, "primary_key": ["id"]})
    assert report.ok, report.error
    assert [(r["id"], r["name"]) for r in rows] == [(1, "Müller"), (2, "Zoë")]


def test_each_column_can_declare_its_own_date_format(tmp_path, sync):
    (tmp_path / "a.csv").write_text("id,us,eu\n1,12/31/24,31.12.2024\n")
    _, rows = sync({"path": "a.csv", "columns": {"us": {"format": "%m/%d/%y"}, "eu": {"format": "%d.%m.%Y"}}})
    assert str(rows[0]["us"]) == str(rows[0]["eu"]) == "2024-12-31"


def test_a_glob_reads_every_matching_file_in_name_order(tmp_path, sync):
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"part{i}.csv").write_text(f"id,v\n{i},{i * 10}\n")
    (tmp_path / "in" / "ignore.txt").write_text("not me")
    report, rows = sync({"path": "in/part*.csv"})
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert report.streams[0].rows_read == 3


def test_incremental_reads_only_new_or_changed_files(tmp_path, sync):
    (tmp_path / "a.csv").write_text("id,v\n1,a\n")
    (tmp_path / "b.csv").write_text("id,v\n2,b\n")
    stream = {"path": "*.csv", "primary_key": ["id"]}
    assert sync(stream)[0].streams[0].rows_read == 2
    (tmp_path / "c.csv").write_text("id,v\n3,c\n")
    (tmp_path / "a.csv").write_text("id,v\n1,A\n")  # changed: same size, new mtime
    os.utime(tmp_path / "a.csv", ns=(1, 10**18))
    report, rows = sync(stream)
    assert report.streams[0].rows_read == 2
    assert [(r["id"], r["v"]) for r in rows] == [(1, "A"), (2, "b"), (3, "c")]
    assert sync(stream)[0].streams[0].rows_read == 0


def test_a_ragged_csv_row_is_quarantined_and_the_others_land(tmp_path, sync):
    (tmp_path / "a.csv").write_text("id,name,email\n1,Ann,a@x.io\n2,Bob\n3,Cy,c@x.io\n")
    report, rows = sync({"path": "a.csv"}, max_rejected_share=0.5)
    assert [r["id"] for r in rows] == [1, 3]
    quarantined = [json.loads(x) for x in open(f"{report.quarantine}/src__s.jsonl")]
    assert [(q["reason"], q["record"]["text"]) for q in quarantined] == [
        ("malformed CSV line (wrong number of columns)", "2,Bob")]


def test_a_bad_date_sends_its_row_to_quarantine_with_the_reason(tmp_path, sync):
    (tmp_path / "a.csv").write_text("id,d\n1,01/02/24\n2,yesterday\n")
    report, rows = sync({"path": "a.csv", "columns": {"d": {"format": "%m/%d/%y"}}}, max_rejected_share=0.5)
    assert [r["id"] for r in rows] == [1]
    q = json.loads(open(f"{report.quarantine}/src__s.jsonl").readline())
    assert q["reason"] == "d: not a date in the format %m/%d/%y" and q["record"]["d"] == "yesterday"


def test_a_column_whose_type_changes_mid_file_quarantines_only_the_rows_that_do_not_fit(tmp_path, sync):
    # past the first MiB that schema inference samples, so `amount` is inferred as a number
    n = 150_000
    lines = ["id,amount"] + [f"{i},{i}" for i in range(n)] + [f"{n},twelve", f"{n + 1},5"]
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    report, rows = sync({"path": "a.csv", "batch_bytes": 65536})
    s = report.streams[0]
    assert (s.rows_read, s.rows_written, s.rows_rejected) == (n + 2, n + 1, 1)
    assert rows[-1] == {"id": n + 1, "amount": 5}


def test_a_wrong_encoding_is_a_clear_error_that_loses_nothing(tmp_path, sync):
    (tmp_path / "a.csv").write_bytes("id,name\n1,Müller\n".encode("latin-1"))
    report, rows = sync({"path": "a.csv"})
    assert not report.ok
    assert "a.csv is not valid utf-8 text" in report.error and "encoding: latin-1" in report.error
    assert rows == []
    # fixed config: the same file lands in full
    report, rows = sync({"path": "a.csv", "csv": {"encoding": "latin-1"}})
    assert report.ok and rows == [{"id": 1, "name": "Müller"}]


def test_json_lines_with_a_broken_line_land_the_rest_and_quarantine_it(tmp_path, sync):
    (tmp_path / "a.jsonl").write_text('{"id": 1, "v": "a"}\n{"id": 2, "v": \n{"id": 3, "v": "c"}\n')
    report, rows = sync({"path": "a.jsonl"}, max_rejected_share=0.5)
    assert [r["id"] for r in rows] == [1, 3]
    q = json.loads(open(f"{report.quarantine}/src__s.jsonl").readline())
    assert q["reason"] == "malformed JSON line" and q["record"]["line"] == 2


def test_parquet_files_are_read_with_their_own_types(tmp_path, sync):
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32()), "x": [0.5, 1.5]}), tmp_path / "a.parquet")
    report, rows = sync({"path": "a.parquet", "primary_key": ["id"]})
    assert report.ok and rows == [{"id": 1, "x": 0.5}, {"id": 2, "x": 1.5}]


def test_a_glob_that_matches_nothing_is_a_config_error_naming_the_field(tmp_path):
    job = job_from_dict({"name": "j", "sources": {"src": {"connector": "files", "config": {
        "streams": [{"name": "s", "path": "nothing/*.csv"}]}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": "x.duckdb"}}}}, tmp_path)
    with pytest.raises(ConfigError) as exc:
        plan_job(job)
    assert "no file matches 'nothing/*.csv'" in exc.value.render()
    assert "sources.src.config.streams[0].path" in exc.value.render()


def test_a_configured_column_missing_from_the_file_lists_the_columns_it_has(tmp_path):
    (tmp_path / "a.csv").write_text("id,email\n1,a@x.io\n")
    job = job_from_dict({"name": "j", "sources": {"src": {"connector": "files", "config": {
        "streams": [{"name": "s", "path": "a.csv", "columns": {"emial": {"type": "string"}}}]}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": "x.duckdb"}}}}, tmp_path)
    with pytest.raises(ConfigError) as exc:
        plan_job(job)
    assert "column 'emial' is configured but a.csv has no such column" in exc.value.render()
    assert "email, id" in exc.value.hint


def read_messages(tmp_path, stream_config, native_formats=frozenset()):
    from threadline.contracts import ReadRequest, SyncMode
    from threadline_files.source import FilesSource

    source = FilesSource()
    config = source.spec.model_validate({"streams": [{"name": "s", **stream_config}]}, context={"base_dir": tmp_path})
    stream = source.discover(config).get("s")
    return list(source.read(config, ReadRequest(stream, SyncMode.FULL_REFRESH, native_formats=native_formats)))


def test_a_parquet_file_that_needs_no_coercion_is_handed_whole_to_a_destination_that_reads_parquet(tmp_path):
    from threadline.contracts import Batch, NativeFile

    pq.write_table(pa.table({"id": [1, 2], "x": [0.5, 1.5]}), tmp_path / "a.parquet")
    native = read_messages(tmp_path, {"path": "a.parquet"}, frozenset({"parquet"}))
    assert [type(m).__name__ for m in native] == ["NativeFile", "Checkpoint"]
    assert isinstance(native[0], NativeFile) and native[0].rows == 2
    # no destination asked for it: batches, as for every other reader of the source
    assert isinstance(read_messages(tmp_path, {"path": "a.parquet"})[0], Batch)
    # a column typed in the config needs the engine's coercion: batches again
    typed = read_messages(tmp_path, {"path": "a.parquet", "columns": {"x": {"type": "string"}}}, frozenset({"parquet"}))
    assert isinstance(typed[0], Batch)


# the destination looks for empty keys only where the file's null counts leave room for them:
# a file written without statistics is scanned for them as before
@pytest.mark.parametrize("statistics", [True, False], ids=["with-null-counts", "without-statistics"])
def test_parquet_loaded_by_duckdb_itself_quarantines_empty_keys_and_upserts_across_files(tmp_path, sync, statistics):
    pq.write_table(pa.table({"id": pa.array([1, None, 2], pa.int64()), "v": ["a", "lost", "b"]}), tmp_path / "a.parquet",
                   write_statistics=statistics)
    pq.write_table(pa.table({"id": pa.array([2, 3], pa.int64()), "v": ["B", "c"]}), tmp_path / "b.parquet",
                   write_statistics=statistics)
    report, rows = sync({"path": "*.parquet", "primary_key": ["id"]}, max_rejected_share=0.5)
    assert report.ok, report.error
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
    s = report.streams[0]
    assert (s.rows_read, s.rows_written, s.rows_rejected) == (5, 4, 1)
    q = json.loads(open(f"{report.quarantine}/src__s.jsonl").readline())
    assert q["reason"] == "id: primary key is empty" and q["record"]["v"] == "lost"


def test_json_lines_with_a_date_column_are_parsed_in_bulk_and_only_a_bad_line_goes_to_python(tmp_path, sync, monkeypatch):
    import threadline_files.source as files_source

    slow_lines = []
    real = files_source._read_json_line_slowly
    monkeypatch.setattr(files_source, "_read_json_line_slowly", lambda raw, number, *a: slow_lines.append(number) or real(raw, number, *a))
    lines = [json.dumps({"id": i, "day": f"2024-01-{i % 28 + 1:02d}", "n": i}) for i in range(5_000)]
    lines[3_000] = '{"id": 3000, "day": "2024-01-01", "n": "three thousand"}'  # the type changes here
    lines[4_000] = '{"id": 4000, "day": '  # broken
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    report, rows = sync({"path": "a.jsonl", "primary_key": ["id"], "batch_bytes": 65536,
                         "columns": {"day": {"type": "date"}, "n": {"type": "int64"}}}, max_rejected_share=0.5)
    assert slow_lines == [3_001, 4_001]  # line numbers of the two lines Arrow could not parse
    assert len(rows) == 4_998 and str(rows[0]["day"]) == "2024-01-01"
    s = report.streams[0]
    assert (s.rows_read, s.rows_written, s.rows_rejected) == (5_000, 4_998, 2)
    reasons = sorted(json.loads(x)["reason"] for x in open(f"{report.quarantine}/src__s.jsonl"))
    assert reasons == ["malformed JSON line", "n: not a valid integer"]


def test_json_lines_keep_timestamps_and_numbers_in_a_text_column_without_going_line_by_line(tmp_path, sync, monkeypatch):
    import threadline_files.source as files_source

    monkeypatch.setattr(files_source, "_read_json_line_slowly", lambda *a: pytest.fail("a line went to Python"))
    lines = [json.dumps({"id": i, "at": f"2024-01-02T10:00:{i % 60:02d}Z", "code": i}) for i in range(3_000)]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    report, rows = sync({"path": "a.jsonl", "primary_key": ["id"], "batch_bytes": 65536,
                         "columns": {"at": {"type": "timestamp"}, "code": {"type": "string"}}})
    assert report.ok, report.error
    assert rows[5]["code"] == "5" and rows[5]["at"].second == 5


def test_a_plain_csv_file_is_handed_whole_to_a_destination_that_reads_csv(tmp_path):
    from threadline.contracts import Batch, NativeFile

    (tmp_path / "a.csv").write_text("id,day,n\n1,2024-01-01,5\n")
    native = read_messages(tmp_path, {"path": "a.csv", "columns": {"day": {"type": "date"}}}, frozenset({"csv"}))
    assert [type(m).__name__ for m in native] == ["NativeFile", "Checkpoint"]
    assert isinstance(native[0], NativeFile) and native[0].schema.field("day").type == pa.date32()
    # no destination asked for it, a date with a format, or another encoding: batches, for the engine to coerce
    assert isinstance(read_messages(tmp_path, {"path": "a.csv"})[0], Batch)
    formatted = {"path": "a.csv", "columns": {"day": {"type": "date", "format": "%Y-%m-%d"}}}
    assert isinstance(read_messages(tmp_path, formatted, frozenset({"csv"}))[0], Batch)
    assert isinstance(read_messages(tmp_path, {"path": "a.csv", "csv": {"encoding": "latin-1"}}, frozenset({"csv"}))[0], Batch)


# Every rule the engine applies to CSV, in one file: values that convert, values that do not
# (quarantined with the column named), text the engine's cast reads that DuckDB's check leaves
# to it (" 7", "1e3"), null markers, an empty key, a line with too many columns, a quoted comma
# and a key written twice (the last row wins).
RULES_CSV = (
    "id,name,day,n,v\n"
    "1,Ann,2024-01-01,5,1.5\n"
    "2,Bob,2024-02-30,6,2\n"          # no such day
    "3,Cy,2024-01-03,x,3\n"           # not an integer
    "4,\"Dee, D\",2024-01-04,NULL,\n"  # quoted comma, null markers
    "5,Eve,2024-01-05,8,4,extra\n"    # too many columns
    ",NoKey,2024-01-06,9,5\n"         # empty key
    "6,  sp  ,,  ,1e3\n"              # blank number, exponent
    "1,Ann again,2024-01-07,10,6.25\n"  # key 1 again: this row wins
)


def _rules_sync(folder, monkeypatch, native: bool, key: list[str] | None = None, text: str = RULES_CSV):
    from threadline_duckdb.destination import DuckDBWriter

    loads = []
    real = DuckDBWriter.load_file
    monkeypatch.setattr(DuckDBWriter, "load_file", lambda self, file: loads.append(file.format) or real(self, file))
    if not native:
        monkeypatch.setattr(DuckDBWriter, "native_formats", frozenset({"parquet"}))
    folder.mkdir()
    (folder / "a.csv").write_text(text)
    report, rows = run_sync(folder, {"path": "a.csv", **({"primary_key": key} if key else {}),
                                     "columns": {"day": {"type": "date"}, "n": {"type": "int64"}, "v": {"type": "float64"}}},
                            max_rejected_share=0.9)
    kept = Path(f"{report.quarantine}/src__s.jsonl")  # written only when a record is quarantined
    quarantined = sorted((q["reason"], json.dumps(q["record"], sort_keys=True))
                         for q in map(json.loads, kept.open())) if kept.exists() else []
    s = report.streams[0]
    return loads, rows, quarantined, (s.rows_read, s.rows_written, s.rows_rejected)


def test_csv_loaded_by_duckdb_itself_meets_the_same_coercion_and_quarantine_rules_as_the_arrow_path(tmp_path, monkeypatch):
    native = _rules_sync(tmp_path / "native", monkeypatch, native=True)  # no key: appended
    arrow = _rules_sync(tmp_path / "arrow", monkeypatch, native=False)
    assert native[0] == ["csv"] and arrow[0] == []  # each path was the one taken
    assert native[1] == arrow[1]  # the same table
    assert [r["id"] for r in native[1]] == [1, 1, 4, 6, None] and native[1][1]["name"] == "Ann again"
    assert native[1][3]["n"] is None and native[1][3]["v"] == 1000.0
    assert native[3] == arrow[3] == (8, 5, 3)  # rows read, written, rejected
    reasons = [reason for reason, _ in native[2]]
    assert native[2] == arrow[2]  # the same records, with the same reasons
    assert reasons == ["day: not a valid date", "malformed CSV line (wrong number of columns)", "n: not a valid integer"]


def test_an_upserted_csv_loaded_by_duckdb_itself_lands_the_same_table_and_quarantine_as_the_arrow_path(tmp_path, monkeypatch):
    native = _rules_sync(tmp_path / "native", monkeypatch, native=True, key=["id"])
    arrow = _rules_sync(tmp_path / "arrow", monkeypatch, native=False, key=["id"])
    assert native[0] == ["csv"] and arrow[0] == []
    assert native[1:] == arrow[1:]  # table, quarantine, and rows read, written, rejected
    assert [(r["id"], r["name"]) for r in native[1]] == [(1, "Ann again"), (4, "Dee, D"), (6, "  sp  ")]
    assert native[3] == (8, 4, 4)  # the empty key is quarantined too


# A key's rows in an upsert where some are held back for the engine ("1e3", " 7": text only its
# cast reads, landed after the file's other rows) and some are loaded by DuckDB: whichever is
# last in the file wins, as on the Arrow path, whether or not the held-back row lands.
@pytest.mark.parametrize("text, winner", [
    ("6,First,2024-01-01,1,1e3\n6,Last,2024-01-02,2,2.5\n", ("Last", 2.5)),   # held back, then loaded
    ("6,First,2024-01-01,1,2.5\n6,Last,2024-01-02,2,1e3\n", ("Last", 1000.0)),  # loaded, then held back
    ("6,A,2024-01-01,1,1.5\n6,B,2024-01-01, 7,1e3\n6,C,2024-01-02,3,2\n6,D,2024-01-02,x,3\n", ("C", 2.0)),
    ("7,A,2024-01-01,1,1.5\n6,B,2024-01-01,2,1e3\n7,C,2024-01-02,3,2\n", ("B", 1000.0)),  # another key only
], ids=["held-back-then-loaded", "loaded-then-held-back", "a-rejected-row-last", "no-shared-key"])
def test_an_upserted_csv_lands_the_last_row_of_each_key_in_file_order(tmp_path, monkeypatch, text, winner):
    header = "id,name,day,n,v\n"
    native = _rules_sync(tmp_path / "native", monkeypatch, native=True, key=["id"], text=header + text)
    arrow = _rules_sync(tmp_path / "arrow", monkeypatch, native=False, key=["id"], text=header + text)
    assert native[0] == ["csv"] and arrow[0] == []
    assert native[1:] == arrow[1:]  # table, quarantine, and rows read, written, rejected
    assert next((r["name"], r["v"]) for r in native[1] if r["id"] == 6) == winner


def test_a_malformed_line_in_a_csv_loaded_by_duckdb_itself_is_quarantined_with_its_file_line_and_text(tmp_path, monkeypatch):
    _, rows, quarantined, counts = _rules_sync(tmp_path / "native", monkeypatch, native=True, key=["id"])
    malformed = [json.loads(record) for reason, record in quarantined if reason.startswith("malformed")]
    assert malformed == [{"file": "a.csv", "line": 6, "text": "5,Eve,2024-01-05,8,4,extra",
                          "problem": "expected 5 columns, found 6"}]
    assert 5 not in [r["id"] for r in rows]


def test_csv_loaded_by_duckdb_itself_fails_its_stream_on_text_that_is_not_utf8_past_the_sample(tmp_path, sync):
    lines = b"".join(b"%d,n%d\n" % (i, i) for i in range(200_000))  # past the 1 MiB schema sample
    (tmp_path / "a.csv").write_bytes(b"id,name\n" + lines + b"200000,M\xfcller\n")
    report, rows = sync({"path": "a.csv"})  # appended: DuckDB reads it itself
    assert "a.csv is not valid utf-8 text (line 200002)" in report.stream("src", "s").error
    assert rows == []  # nothing of the file is kept
