"""Stage 1, landing: raw tables per source stream, upserted by primary key, with lineage."""

from __future__ import annotations

import threading

import pyarrow as pa
from threadline.contracts import WriteDisposition


def raw_rows(lander, table: str, order: str = "id") -> list[dict]:
    with lander.store() as store:
        return store.engine.rows(f"SELECT * FROM {table} ORDER BY {order}")


def test_a_stream_lands_in_its_own_raw_table_with_lineage_columns(lander):
    lander.land("crm", "contacts", [{"id": 1, "email": "a@x.com"}, {"id": 2, "email": "b@x.com"}], run_id="run-7")
    rows = raw_rows(lander, "raw_crm__contacts")
    assert [r["email"] for r in rows] == ["a@x.com", "b@x.com"]
    assert {(r["_tl_source"], r["_tl_stream"], r["_tl_run_id"], r["_tl_key"]) for r in rows} == {
        ("crm", "contacts", "run-7", "1"), ("crm", "contacts", "run-7", "2"),
    }
    assert all(r["_tl_landed_at"] is not None for r in rows)


def test_landing_again_upserts_by_primary_key(lander):
    lander.land("crm", "contacts", [{"id": 1, "email": "old@x.com"}, {"id": 2, "email": "b@x.com"}], run_id="r1")
    lander.land("crm", "contacts", [{"id": 1, "email": "new@x.com"}, {"id": 3, "email": "c@x.com"}], run_id="r2")
    rows = raw_rows(lander, "raw_crm__contacts")
    assert [(r["id"], r["email"], r["_tl_run_id"]) for r in rows] == [
        (1, "new@x.com", "r2"), (2, "b@x.com", "r1"), (3, "c@x.com", "r2"),
    ]


def test_the_last_row_of_a_key_within_one_commit_wins(lander):
    lander.land("crm", "contacts", [{"id": 1, "email": "first@x.com"}, {"id": 1, "email": "second@x.com"}], batch_rows=1)
    assert [r["email"] for r in raw_rows(lander, "raw_crm__contacts")] == ["second@x.com"]


def test_a_composite_primary_key_is_joined_into_the_record_key(lander):
    lander.land("shop", "lines", [{"order": 7, "line": 1, "sku": "a"}, {"order": 7, "line": 2, "sku": "b"}], pk=("order", "line"))
    assert [r["_tl_key"] for r in raw_rows(lander, "raw_shop__lines", order='"line"')] == ["7|1", "7|2"]


def test_rows_without_a_primary_key_value_are_rejected_and_counted(lander):
    report = lander.land("crm", "contacts", [{"id": 1, "email": "a@x.com"}, {"id": None, "email": "b@x.com"}])
    assert (report.rows_written, report.rows_rejected) == (1, 1)
    assert "primary key" in report.rejections[0] and "b@x.com" not in report.rejections[0]


def test_replace_swaps_the_table_for_this_runs_rows_at_finish(lander):
    lander.land("crm", "contacts", [{"id": 1, "email": "a@x.com"}, {"id": 2, "email": "b@x.com"}])
    lander.land("crm", "contacts", [{"id": 3, "email": "c@x.com"}], disposition=WriteDisposition.REPLACE, run_id="r2")
    assert [r["id"] for r in raw_rows(lander, "raw_crm__contacts")] == [3]


def test_uncommitted_rows_of_an_aborted_stream_do_not_land(lander):
    from threadline.contracts import Stream, StreamTarget

    table = pa.table({"id": [1], "email": ["a@x.com"]})
    target = StreamTarget("crm", Stream("contacts", table.schema, primary_key=("id",)), WriteDisposition.UPSERT, "crm__contacts", "r1")
    writer = lander.destination.open_stream(lander.config, target)
    writer.write(table.to_batches()[0])
    writer.abort()
    assert raw_rows(lander, "raw_crm__contacts") == []


def test_a_stream_that_gains_a_column_keeps_its_rows_and_adds_the_column(lander):
    lander.land("crm", "contacts", [{"id": 1, "email": "a@x.com"}])
    lander.land("crm", "contacts", [{"id": 2, "email": "b@x.com", "phone": "555"}])
    rows = raw_rows(lander, "raw_crm__contacts")
    assert [(r["id"], r["phone"]) for r in rows] == [(1, None), (2, "555")]


def test_streams_of_one_run_land_concurrently_from_threads(lander):
    errors: list[BaseException] = []

    def land(name: str) -> None:
        try:
            rows = [{"id": i, "email": f"{name}{i}@x.com"} for i in range(2000)]
            lander.land("crm", name, rows, batch_rows=100)
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=land, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with lander.store() as store:
        assert [store.engine.scalar(f"SELECT COUNT(*) FROM raw_crm__s{i}") for i in range(4)] == [2000] * 4
