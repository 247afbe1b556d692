"""Saved state never hides data: a failed stream saves nothing past its last good checkpoint,
state belongs to the destination it was written for, and a selector typo is an error.
Run through the real engine with the files source and the DuckDB destination."""

import sqlite3
from pathlib import Path

import duckdb
import pytest

from threadline.contracts import ConfigError
from threadline.engine import run_job
from threadline.engine.runner import EARLY_STOP_ROWS
from threadline.job import job_from_dict
from threadline.state import StateStore
from threadline_duckdb.destination import close_all


@pytest.fixture
def files_job(tmp_path):
    """files_job(**options) → a job reading in/*.csv (ids typed int64) into out.duckdb."""
    (tmp_path / "in").mkdir()

    def make(db: str = "out.duckdb", **options):
        stream = {"name": "orders", "path": "in/*.csv", "primary_key": ["id"],
                  "columns": {"id": {"type": "int64"}}, **options.pop("stream", {})}
        return job_from_dict({
            "name": "statejob",
            "sources": {"shop": {"connector": "files", "config": {"streams": [stream]}}},
            "destinations": {"db": {"connector": "duckdb", "config": {"path": db}}},
            **options,
        }, tmp_path)

    yield make
    close_all()


def write_csv(folder: Path, name: str, ids: list[str]) -> None:
    (folder / "in" / name).write_text("id,amount\n" + "".join(f"{i},1.5\n" for i in ids))


def table_rows(path: Path) -> int:
    close_all()
    con = duckdb.connect(str(path))
    try:
        return con.execute("select count(*) from shop__orders").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------- item 2: failed streams


def test_a_stream_over_its_rejected_share_saves_no_state_past_its_last_good_checkpoint(tmp_path, files_job):
    write_csv(tmp_path, "a.csv", [str(i) for i in range(100)])
    write_csv(tmp_path, "b.csv", [f"x{i}" for i in range(50)])  # every id unusable
    failed = run_job(files_job())
    assert failed.outcome == "failed" and "max_rejected_share" in failed.error
    saved = StateStore(tmp_path / ".threadline").get("statejob", "shop", "orders")
    assert list(saved["files"]) == ["in/a.csv"], "b.csv must not be recorded as read"

    # following the error's advice now works: b.csv is read again
    rerun = run_job(files_job(max_rejected_share=1))
    assert rerun.ok, rerun.error
    assert rerun.stream("shop", "orders").rows_read == 50


def test_a_stream_rejecting_nearly_everything_stops_early_instead_of_reading_to_the_end(tmp_path, files_job):
    total = EARLY_STOP_ROWS * 6
    write_csv(tmp_path, "a.csv", [f"x{i}" for i in range(total)])
    report = run_job(files_job(stream={"batch_bytes": 1 << 16}))
    orders = report.stream("shop", "orders")
    assert orders.outcome == "failed" and "stopped early" in orders.error
    assert EARLY_STOP_ROWS <= orders.rows_read < total


# ---------------------------------------------------------------- item 3: state and destination


def test_state_belongs_to_the_destination_it_was_written_for(tmp_path, files_job):
    write_csv(tmp_path, "a.csv", [str(i) for i in range(10)])
    assert run_job(files_job()).ok
    moved = run_job(files_job(db="new.duckdb"))  # the same job pointed at a new file
    assert moved.ok and moved.stream("shop", "orders").rows_read == 10
    assert table_rows(tmp_path / "new.duckdb") == 10


def test_a_destination_whose_table_is_gone_makes_the_stream_read_in_full_and_the_run_says_why(tmp_path, files_job):
    write_csv(tmp_path, "a.csv", [str(i) for i in range(10)])
    assert run_job(files_job()).ok
    close_all()
    (tmp_path / "out.duckdb").unlink()
    report = run_job(files_job())
    orders = report.stream("shop", "orders")
    assert report.ok and orders.rows_read == 10
    assert "saved state ignored" in orders.note and "shop__orders" in orders.note
    assert table_rows(tmp_path / "out.duckdb") == 10
    again = run_job(files_job())
    assert again.stream("shop", "orders").rows_read == 0 and again.stream("shop", "orders").note is None


def test_state_saved_before_it_was_keyed_by_destination_still_resumes(tmp_path, files_job):
    write_csv(tmp_path, "a.csv", [str(i) for i in range(10)])
    assert run_job(files_job()).ok
    # rewrite the state file as an older threadline kept it: keyed by job, source and stream only
    db_path = tmp_path / ".threadline" / "state.sqlite"
    with sqlite3.connect(db_path) as db:
        (state, at), = db.execute("select state, updated_at from stream_state").fetchall()
        db.executescript("drop table stream_state; create table stream_state (job text not null, source text not null, "
                         "stream text not null, state text not null, updated_at text not null, "
                         "primary key (job, source, stream));")
        db.execute("insert into stream_state values ('statejob', 'shop', 'orders', ?, ?)", (state, at))
    db.close()
    assert run_job(files_job()).stream("shop", "orders").rows_read == 0
    assert [d for _, _, d, _, _ in StateStore(tmp_path / ".threadline").all_states("statejob")] == [
        f"duckdb:{(tmp_path / 'out.duckdb').resolve()}#main.shop__orders"]


# ---------------------------------------------------------------- item 4: selectors


def test_an_unknown_only_source_is_an_error_with_did_you_mean(tmp_path, files_job):
    write_csv(tmp_path, "a.csv", ["1"])
    with pytest.raises(ConfigError) as caught:
        run_job(files_job(), only=["shopx"])
    assert "no source named 'shopx'" in caught.value.message and "did you mean 'shop'" in caught.value.hint
    assert StateStore(tmp_path / ".threadline").runs("statejob") == [], "no run is recorded"


def test_an_unknown_only_stream_is_an_error_with_did_you_mean(tmp_path, files_job):
    write_csv(tmp_path, "a.csv", ["1"])
    with pytest.raises(ConfigError) as caught:
        run_job(files_job(), only=["shop.order"])
    assert "no stream of source 'shop' named 'order'" in caught.value.message
    assert "did you mean 'orders'" in caught.value.hint
