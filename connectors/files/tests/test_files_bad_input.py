"""Files that cannot be read never crash threadline nor show a stack trace: each one fails
its stream with the file, the place and the fix (the files before it stay committed), or its
bad lines are quarantined with file, line and text."""

import gzip
import json
import os
import threading

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from threadline.contracts import ConfigError
from threadline.engine import plan_job, run_job
from threadline.job import job_from_dict
from threadline.state import StateStore
from threadline_duckdb.destination import close_all
from threadline_files.source import MAX_JSON_DEPTH


@pytest.fixture
def sync(tmp_path):
    """sync(stream_config, **job_options) → (report, rows landed) for one files stream into DuckDB."""

    def run(stream, **options):
        job = job_from_dict({
            "name": "bad_input",
            "sources": {"src": {"connector": "files", "config": {"streams": [{"name": "s", **stream}]}}},
            "destinations": {"db": {"connector": "duckdb", "config": {"path": "out.duckdb"}}},
            **options,
        }, tmp_path)
        report = run_job(job)
        close_all()
        con = duckdb.connect(str(tmp_path / "out.duckdb"))
        try:
            rows = con.sql("select * exclude (_threadline_run_id, _threadline_loaded_at) from src__s").fetchall()
        except duckdb.CatalogException:
            rows = []
        con.close()
        return report, rows

    yield run
    close_all()


def quarantined(report):
    return [json.loads(line)["record"] for line in open(f"{report.quarantine}/src__s.jsonl")]


# ---------------------------------------------------------------- bad lines are quarantined


def test_a_ragged_csv_row_is_quarantined_with_its_file_line_and_text(tmp_path, sync):
    (tmp_path / "a.csv").write_text("id,name\n1,a\n2,b,extra\n3,c\n4\n")
    report, rows = sync({"path": "a.csv"}, max_rejected_share=0.5)
    assert sorted(r[0] for r in rows) == [1, 3]
    assert [(q["file"], q["line"], q["text"]) for q in quarantined(report)] == [("a.csv", 3, "2,b,extra"), ("a.csv", 5, "4")]


@pytest.mark.parametrize("position", ["first file", "second file"])
def test_json_nested_20000_deep_is_quarantined_instead_of_crashing_the_process(tmp_path, sync, position):
    deep = '{"id": 9, "x": ' + "[" * 20_000 + "]" * 20_000 + "}\n"
    if position == "first file":
        (tmp_path / "a.jsonl").write_text(deep + '{"id": 1}\n')
    else:
        (tmp_path / "a.jsonl").write_text('{"id": 1}\n')
        (tmp_path / "b.jsonl").write_text('{"id": 2}\n' + deep)
    report, rows = sync({"path": "*.jsonl"}, max_rejected_share=0.5)
    assert report.ok, report.error
    (bad,) = quarantined(report)
    assert bad["problem"] == f"nested deeper than {MAX_JSON_DEPTH} levels" and bad["line"] in (1, 2)
    assert len(rows) == (1 if position == "first file" else 2)


def test_integers_past_int64_in_json_lines_land_or_are_quarantined_without_an_overflow(tmp_path, sync):
    (tmp_path / "a.jsonl").write_text('{"id": 1, "n": 9223372036854775808}\n{"id": 2, \n'
                                      '{"id": 3, "n": 340282366920938463463374607431768211456}\n')
    report, rows = sync({"path": "a.jsonl"}, max_rejected_share=0.5)
    assert report.ok, report.error
    assert sorted(r[0] for r in rows) == [1, 3]
    assert [q["line"] for q in quarantined(report)] == [2]


def test_zoneless_timestamps_in_a_timestamp_column_are_taken_as_utc(tmp_path, sync):
    (tmp_path / "a.csv").write_text("id,at\n1,2020-01-01 00:00:00\n2,2020-01-01T00:00:00\n3,2020-01-01T02:00:00+02:00\n")
    report, rows = sync({"path": "a.csv", "columns": {"at": {"type": "timestamp"}}})
    assert report.ok, report.error
    assert {r[1].isoformat() for r in rows} == {"2020-01-01T00:00:00+00:00"}


# ---------------------------------------------------------------- unreadable files fail cleanly


UNREADABLE = {
    "gzip": (gzip.compress(b"id,name\n1,a\n"), "b.csv is gzip-compressed", "gunzip b.csv"),
    "binary": (b"\x00\x01\x02" + os.urandom(500), "b.csv holds NUL bytes (line 1)", "encoding: utf-16"),
    "utf-16": ("id,name\n1,a\n".encode("utf-16"), "b.csv is UTF-16 text", "encoding: utf-16"),
    "utf-32": ("id,name\n1,a\n".encode("utf-32"), "b.csv is UTF-32 text", "encoding: utf-32"),
    "invalid utf-8": (b"id,name\n1,a\n2,M\xfcller\n", "b.csv is not valid utf-8 text (line 3, byte 0xfc)", "encoding: latin-1"),
    "empty column name": (b"id,,name\n1,2,3\n", "column 2 of b.csv has no name in the header", "column_names"),
    "NUL in a column name": (b"id,na\x00me\n1,2\n", "b.csv holds NUL bytes (line 1)", "encoding"),
    "control character in a column name": (b"id,na\x07me\n1,2\n", "column 2 of b.csv has a control character", "column_names"),
    "duplicate column names": (b"id,name,name\n1,2,3\n", "columns 2 and 3 of b.csv are both named 'name'", "rename one"),
    "100k-character header": (("id," + "x" * 100_000 + "\n1,2\n").encode(), "column 2 of b.csv has a name 100,000 characters long",
                              "delimiter"),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_an_unreadable_csv_fails_its_stream_naming_the_file_and_the_fix_and_keeps_the_files_before_it(tmp_path, sync, case):
    content, problem, fix = UNREADABLE[case]
    (tmp_path / "a.csv").write_text("id,name\n1,a\n")
    (tmp_path / "b.csv").write_bytes(content)
    report, rows = sync({"path": "*.csv"})
    stream = report.stream("src", "s")
    assert stream.outcome == "failed" and problem in stream.error and fix in stream.error
    assert "unexpected" not in stream.error, "a bad file is not a bug"
    assert rows == [(1, "a")]
    assert list(StateStore(tmp_path / ".threadline").get("bad_input", "src", "s")["files"]) == ["a.csv"]


@pytest.mark.parametrize("case", ["gzip", "utf-16", "duplicate column names", "100k-character header"])
def test_an_unreadable_first_file_is_a_config_error_at_planning(tmp_path, case):
    content, problem, _ = UNREADABLE[case]
    (tmp_path / "b.csv").write_bytes(content)
    job = job_from_dict({"name": "j", "sources": {"src": {"connector": "files", "config": {
        "streams": [{"name": "s", "path": "b.csv"}]}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": "x.duckdb"}}}}, tmp_path)
    with pytest.raises(ConfigError) as caught:
        plan_job(job)
    assert problem in caught.value.render() and "sources.src.config.streams[0]" in caught.value.render()


def test_json_with_20000_keys_fails_its_stream_before_the_destination_runs_out_of_memory(tmp_path, sync):
    (tmp_path / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "b.jsonl").write_text(json.dumps({f"k{i}": i for i in range(20_000)}) + "\n")
    report, rows = sync({"path": "*.jsonl"})
    assert "has 20,001 columns; threadline lands at most 5,000 per stream" in report.stream("src", "s").error
    assert rows == [(1,)]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_parquet_file_fails_its_stream_naming_the_file(tmp_path, sync, damage):
    pq.write_table(pa.table({"id": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": list(range(1000))}), tmp_path / "b.parquet")
    data = (tmp_path / "b.parquet").read_bytes()
    (tmp_path / "b.parquet").write_bytes(data[: len(data) // 2] if damage == "truncated" else b"PAR1" + os.urandom(900) + b"PAR1")
    report, rows = sync({"path": "*.parquet"})
    error = report.stream("src", "s").error
    assert "b.parquet cannot be read as parquet" in error and "export it again" in error
    assert rows == [(1,)]


# ---------------------------------------------------------------- named pipes


def test_a_csv_named_pipe_is_read_once_in_full(tmp_path, sync):
    (tmp_path / "a.csv").write_text("id,name\n1,a\n")
    os.mkfifo(tmp_path / "b.csv")
    body = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(2, 50_002))

    def feed():
        with (tmp_path / "b.csv").open("w") as pipe:
            pipe.write(body)

    writer = threading.Thread(target=feed)
    writer.start()
    report, rows = sync({"path": "*.csv"})
    writer.join(timeout=30)
    assert report.ok, report.error
    assert len(rows) == 50_001


# ---------------------------------------------------------------- found by the fuzz test


def test_an_empty_json_key_fails_the_stream_naming_the_column(tmp_path, sync):
    (tmp_path / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "b.jsonl").write_text('{"id": 2, "": 5}\n')
    report, rows = sync({"path": "*.jsonl"})
    error = report.stream("src", "s").error
    assert "column 2 ('') of stream 's' has no name" in error and "unexpected" not in error
    assert rows == [(1,)]


def test_invalid_utf8_inside_a_json_string_is_quarantined_with_its_line(tmp_path, sync):
    (tmp_path / "a.jsonl").write_bytes(b'{"id": 1, "v": "ok"}\n{"id": 2, "v": "M\xfcller"}\n{"id": 3, "v": "ok"}\n')
    report, rows = sync({"path": "a.jsonl"}, max_rejected_share=0.5)
    assert report.ok, report.error
    assert sorted(r[0] for r in rows) == [1, 3]
    (bad,) = quarantined(report)
    assert bad["line"] == 2 and bad["problem"].startswith("not valid UTF-8 (byte 0xfc")


def test_invalid_utf8_text_in_a_parquet_file_fails_its_stream_naming_the_file(tmp_path, sync):
    pq.write_table(pa.table({"id": [1], "v": ["a"]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": [2], "v": ["Zoe-Zoe-Zoe"]}), tmp_path / "b.parquet", compression="none")
    data = (tmp_path / "b.parquet").read_bytes()
    (tmp_path / "b.parquet").write_bytes(data.replace(b"Zoe-Zoe-Zoe", b"Zo\xff-Zoe-Zoe"))
    report, rows = sync({"path": "*.parquet"})
    error = report.stream("src", "s").error
    assert "b.parquet cannot be read as parquet" in error and "UTF8" in error
    assert rows == [(1, "a")]


def test_two_columns_whose_names_differ_only_in_case_fail_the_stream_naming_both(tmp_path, sync):
    # DuckDB (and SQL without quotes) reads `id` and `Id` as one column: say so, instead of
    # DuckDB's "Column with name id already exists" from deep inside the load
    (tmp_path / "a.csv").write_text("id,name,Id\n1,a,c1\n")
    report, rows = sync({"path": "a.csv"})
    error = report.stream("src", "s").error
    assert "column 3 ('Id') of stream 's' has the same name as column 1 ('id') but for case" in error
    assert rows == []
