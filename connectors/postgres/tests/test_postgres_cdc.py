"""Change data capture through the engine into DuckDB: every kind of change lands exactly,
the slot is acknowledged only after the destination committed, its lag is in the run history,
and a slot that is gone, a truncate or a column that changed type stop with what to do."""

from __future__ import annotations

import pytest

from threadline.contracts import Batch, Checkpoint, FatalError, ReadRequest, SyncMode
from threadline_postgres import PostgresSource
from threadline.state import StateStore
from threadline_postgres.testing import execute

from pg_jobs import landed, problem, run, source_config, source_rows


def _customers(schema: str, n: int = 50) -> None:
    execute(f'create table "{schema}".customers (id int primary key, email text, visits int, note text)')
    execute(f'''insert into "{schema}".customers select g, 'c' || g || '@example.com', 0, null
                from generate_series(1, {n}) g''')


def _same(tmp_path, schema: str, columns: str = "id, email, visits") -> None:
    assert landed(tmp_path, "db__customers", columns) == source_rows(schema, "customers", columns)


def _slot(schema: str) -> tuple[int, int] | None:
    rows = execute("select (confirmed_flush_lsn - '0/0')::int8 from pg_replication_slots where slot_name = %s",
                   (f"{schema}_customers",))
    return rows[0][0] if rows else None


def test_inserts_updates_deletes_and_key_changes_land_exactly(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema)
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    execute(f'''insert into "{schema}".customers select g, 'new' || g, 1, null from generate_series(51, 80) g;
        update "{schema}".customers set visits = visits + 1 where id % 3 = 0;
        delete from "{schema}".customers where id % 5 = 0;
        update "{schema}".customers set id = 1000 + id where id between 1 and 4;
        insert into "{schema}".customers values (5, 'back again', 9, null)''')
    execute(f'''begin; delete from "{schema}".customers where id = 7; insert into "{schema}".customers
        values (7, 'replaced in one transaction', 2, null); commit''')
    report = run(tmp_path, config)
    assert report.ok, problem(report)
    _same(tmp_path, schema)
    assert landed(tmp_path, "db__customers", "count(*)", "1") == [(len(source_rows(schema, "customers")),)]


def test_a_column_added_at_the_source_is_added_to_the_destination(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema, 5)
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    execute(f'alter table "{schema}".customers add column city text')
    execute(f'update "{schema}".customers set city = \'Porto\' where id = 2')
    report = run(tmp_path, config)
    assert report.ok, problem(report)
    assert landed(tmp_path, "db__customers", "id, city") == [(1, None), (2, "Porto"), (3, None), (4, None), (5, None)]


def test_an_update_that_leaves_a_large_value_alone_keeps_it(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema, 3)
    big = "(select string_agg(md5(random()::text || g), '') from generate_series(1, 400) g)"  # ~13 kB: out of line
    execute(f'update "{schema}".customers set note = {big}')
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    execute(f'update "{schema}".customers set visits = 42 where id = 2')  # pgoutput does not resend `note`
    report = run(tmp_path, config)
    assert report.ok, problem(report)
    _same(tmp_path, schema, "id, visits, note")
    assert landed(tmp_path, "db__customers", "length(note)", "id")[1][0] > 10_000


def test_the_slot_moves_on_only_after_the_destination_committed(cdc_schema, tmp_path, monkeypatch):
    schema = cdc_schema
    _customers(schema, 5)
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    acknowledged = _slot(schema)
    execute(f'insert into "{schema}".customers select g, \'x\', 0, null from generate_series(6, 3000) g')

    from threadline_duckdb.destination import DuckDBWriter

    def failing_commit(self):  # the destination cannot commit: nothing after the last checkpoint is durable
        raise FatalError("the destination's disk is full (simulated)")

    monkeypatch.setattr(DuckDBWriter, "commit", failing_commit)
    failed = run(tmp_path, config)
    assert not failed.ok and "disk is full" in failed.error
    assert _slot(schema) == acknowledged, "the slot was acknowledged past what the destination committed"
    monkeypatch.undo()
    report = run(tmp_path, config)
    assert report.ok, problem(report)
    _same(tmp_path, schema)
    assert _slot(schema) > acknowledged


def test_slot_lag_is_in_the_run_history(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema, 5)
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    store = StateStore(tmp_path / ".threadline")
    try:
        last = store.runs("pgtest", 1)[0]
    finally:
        store.close()
    metrics = last.streams[0].metrics
    assert "slot_lag_bytes" in metrics and metrics["slot_lag_bytes"] >= 0


def test_a_dropped_slot_is_an_error_saying_how_to_take_a_new_snapshot(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema, 5)
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    execute("select pg_drop_replication_slot(%s)", (f"{schema}_customers",))
    report = run(tmp_path, config)
    assert not report.ok
    assert "was dropped" in report.error and "threadline state reset" in report.error and "--stream customers" in report.error
    StateStore(tmp_path / ".threadline").reset("pgtest", "db", "customers")  # what the message says to do
    execute(f'delete from "{schema}".customers where id = 1')
    assert run(tmp_path, config).ok
    assert landed(tmp_path, "db__customers", "count(*)", "1") == [(5,)]  # re-snapshotted (the delete made meanwhile lingers, as said)


def test_a_truncate_stops_the_stream_saying_how_to_take_a_new_snapshot(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema, 5)
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    execute(f'insert into "{schema}".customers values (6, \'before\', 0, null)')
    execute(f'truncate "{schema}".customers')
    report = run(tmp_path, config)
    assert not report.ok and "truncated" in report.error and "state reset" in report.error
    assert (6, "before", 0) in landed(tmp_path, "db__customers", "id, email, visits"), "changes before the truncate land"


def test_a_column_type_change_while_reading_stops_at_the_change_and_the_next_read_carries_on(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema, 3)
    source = PostgresSource()
    config = source.spec.model_validate(source_config(schema, cdc=True))
    discovered = source.discover(config).get("customers")  # visits: int32
    state = _read_all(source, config, discovered, {})[1]
    execute(f'update "{schema}".customers set visits = 5 where id = 1')
    execute(f'alter table "{schema}".customers alter column visits type bigint')  # while a sync runs
    execute(f'update "{schema}".customers set visits = 9000000000 where id = 2')
    with pytest.raises(FatalError, match="changed type from int32 to int64") as stopped:
        _read_all(source, config, discovered, state, into=(messages := []))
    assert "sync again" in stopped.value.render()
    batches = [m.records.to_pylist() for m in messages if isinstance(m, Batch)]
    assert [(r["id"], r["visits"]) for b in batches for r in b] == [("1", "5")], "the change before it is read"
    state = [m.state for m in messages if isinstance(m, Checkpoint)][-1]
    rediscovered = source.discover(config).get("customers")  # the next sync: visits is int64
    rows, _ = _read_all(source, config, rediscovered, state)
    assert [(r["id"], r["visits"]) for r in rows] == [("2", "9000000000")]  # text, typed by the engine


def test_a_change_written_under_an_older_column_type_is_cast_to_the_discovered_one(cdc_schema, tmp_path):
    schema = cdc_schema
    _customers(schema, 3)
    config = source_config(schema, cdc=True)
    assert run(tmp_path, config).ok
    execute(f'update "{schema}".customers set visits = 5 where id = 1')
    execute(f'alter table "{schema}".customers alter column visits type bigint')
    execute(f'update "{schema}".customers set visits = 9000000000 where id = 2')
    report = run(tmp_path, config)  # discovers int64; the first change was written as int32
    assert report.ok, problem(report)
    _same(tmp_path, schema)


def _read_all(source, config, stream, state, into=None):
    rows, last = [], state
    for message in source.read(config, ReadRequest(stream, SyncMode.INCREMENTAL, state=state)):
        if into is not None:
            into.append(message)
        if isinstance(message, Batch):
            rows += message.records.to_pylist()
        elif isinstance(message, Checkpoint):
            last = message.state
    return rows, last
