"""Change data capture for one table: a snapshot that joins its replication slot without a
gap or a double, then the slot's changes as rows with an operation column.

A stream's saved state walks through three phases:

    {}                                  first sync: a checkpoint names the slot BEFORE it is
                                        created, so a crash right after creating it finds it again
    {phase: creating, slot}             create the slot, exporting its snapshot; read the table
                                        inside that snapshot: exactly the rows committed before
                                        the slot's consistent point, every later change is in the slot
    {phase: snapshot, slot, snapshot_lsn, after}
                                        the snapshot was interrupted: its exported snapshot is gone,
                                        so the rest of the table (keys after `after`) is read in a
                                        fresh, later snapshot; the slot still holds every change
                                        since `snapshot_lsn` and replays them on top, so the
                                        destination ends exact (upserts make the overlap harmless)
    {phase: streaming, slot, lsn}       read the slot's changes committed after `lsn`, a page of
                                        at most `checkpoint_rows` changes at a time (whole
                                        transactions); each page ends with a checkpoint at its
                                        last commit, and the slot is advanced to it only when the
                                        engine resumes the read — after the destination committed
                                        and the state was saved. A run starts by advancing the
                                        slot to the saved lsn (a crash may have come in between).

Rows: the table's columns plus `_threadline_op` (insert, update, delete). A delete holds the
key (all columns with REPLICA IDENTITY FULL). An update that changed the key is a delete of
the old key followed by the new row. An update that left an out-of-line (TOAST) value as it
was does not carry it: it is filled from the old row (REPLICA IDENTITY FULL) or read from the
table by key (its current value; a later change in the slot brings it up to date anyway).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import (
    OPERATION_COLUMN,
    Batch,
    Checkpoint,
    ConfigError,
    FatalError,
    Message,
    Operation,
    Stream,
)

from threadline_postgres import bulk, replication
from threadline_postgres.catalog import Table
from threadline_postgres.config import PostgresConfig
from threadline_postgres.connect import ConnectionLost, bulk_connection, is_connection_lost, session
from threadline_postgres.pgoutput import Relation, decode
from threadline_postgres.replication import SlotLost
from threadline_postgres.sql import quote_ident, quote_literal
from threadline_postgres.types import arrow_type, from_text



def capturable(table: Table) -> bool:
    """Whether the slot can say which record each change is about: a table (not a view) whose
    replica identity is its primary key, or the whole row."""
    if not table.is_table or not table.primary_key:
        return False
    return table.replica_identity in ("d", "f")


def slot_name(config: PostgresConfig, table: Table, stream: str) -> str:
    if table.options and table.options.slot:
        return table.options.slot
    safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in stream.lower())
    return f"{config.replication.slot}_{safe}"[:63]  # type: ignore[union-attr]


def check_publication_rights(con: psycopg.Connection, config: PostgresConfig, tables: list[Table]) -> None:
    """Before any run: the publication exists with the tables, or this user could make it so."""
    repl = config.replication
    assert repl is not None
    listed = {f"{s}.{t}" for s, t in con.execute(
        "select schemaname, tablename from pg_publication_tables where pubname = %s", (repl.publication,)).fetchall()}
    missing = [t for t in tables if f"{t.schema}.{t.name}" not in listed]
    if not missing:
        return
    names = ", ".join(t.qualified for t in missing)
    exists = con.execute("select 1 from pg_publication where pubname = %s", (repl.publication,)).fetchone()
    sql = (f"ALTER PUBLICATION {quote_ident(repl.publication)} ADD TABLE {names};" if exists else
           f"CREATE PUBLICATION {quote_ident(repl.publication)} FOR TABLE {names} "
           "WITH (publish_via_partition_root = true);")
    if not repl.create_publication:
        raise ConfigError(f"publication {repl.publication!r} does not publish {names}", field="replication.publication",
                          hint=f"ask the tables' owner to run: {sql}  (or set replication.create_publication: true)")
    me = con.execute("select current_user").fetchone()[0]
    not_owned = [t.qualified for t in missing if not con.execute(
        "select pg_has_role(relowner, 'USAGE') from pg_class where oid = %s", (t.oid,)).fetchone()[0]]
    can_create = con.execute("select has_database_privilege(current_database(), 'CREATE')").fetchone()[0]
    if not_owned or (not exists and not can_create):
        raise ConfigError(
            f"user {me!r} cannot {'add tables to' if exists else 'create'} publication {repl.publication!r}"
            + (f" (it does not own {', '.join(not_owned)})" if not_owned else ""),
            field="replication.publication",
            hint=f"ask the tables' owner (or a superuser) to run: {sql}")


def read(config: PostgresConfig, table: Table, stream: Stream, state: dict[str, Any]) -> Iterator[Message]:
    repl = config.replication
    assert repl is not None
    name = slot_name(config, table, stream.name)
    with session(config.dsn, config.connect_timeout) as con:
        replication.check_server(con)
        _publish(con, config, table)
        info = replication.slot(con, name)
        if info is not None:
            replication.usable(con, info, stream.name)
    phase = state.get("phase")
    if phase and state.get("slot") != name:
        raise ConfigError(
            f"stream {stream.name!r} was synced through replication slot {state.get('slot')!r}, and the config now "
            f"names {name!r}", field="replication.slot",
            hint=f"put the old name back, or take a new snapshot through the new slot: `threadline state reset "
                 f"<job.yaml> --source <source> --stream {stream.name}`")
    if phase is None:
        if info is not None and not repl.reuse_slot:
            raise ConfigError(
                f"replication slot {name!r} already exists, and stream {stream.name!r} has never been synced through it",
                field="replication.reuse_slot",
                hint=f"if it is this stream's (its state was reset), drop it to start afresh: SELECT "
                     f"pg_drop_replication_slot({quote_literal(name)}); — or set replication.reuse_slot: true to read "
                     "on from it (another consumer of that slot would then miss what this one acknowledges)")
        yield Checkpoint(stream.name, {"phase": "creating", "slot": name})  # before the slot exists: see above
        phase = "creating"
    if phase in ("snapshot", "streaming") and info is None:
        raise SlotLost(name, stream.name, "was dropped")
    if phase == "creating":  # the slot is created here, or was by a first attempt that crashed (or is reused)
        lsn = yield from _snapshot(config, table, stream, name, info.confirmed if info else None, None)
    elif phase == "snapshot":
        lsn = yield from _snapshot(config, table, stream, name, int(state["snapshot_lsn"]), state.get("after"))
    else:
        lsn = int(state["lsn"])
    yield from _stream(config, table, stream, name, lsn)


def _publish(con: psycopg.Connection, config: PostgresConfig, table: Table) -> None:
    repl = config.replication
    assert repl is not None
    for attempt in range(3):  # streams of one source may create the publication at the same moment
        try:
            replication.ensure_publication(con, repl.publication, [table], repl.create_publication)
            return
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            if attempt == 2:
                raise


def _snapshot(config: PostgresConfig, table: Table, stream: Stream, name: str,
              snapshot_lsn: int | None, after: list | None) -> Iterator[Message]:
    """Read the table into the stream (rows marked insert) and return the lsn the slot's
    changes start after. With `snapshot_lsn` None the slot is created here and the table read
    in its exported snapshot; otherwise in a fresh one, from the key after `after`."""
    rep = None
    begin = ["begin isolation level repeatable read, read only"]
    if snapshot_lsn is None:
        try:
            rep, snapshot_lsn, snapshot = replication.create_slot(config.dsn, name, config.connect_timeout)
        except psycopg.errors.DuplicateObject:
            raise FatalError(f"replication slot {name!r} was created by someone else at the same moment",
                             hint="another sync of this stream is running; let it finish") from None
        begin.append(f"set transaction snapshot {quote_literal(snapshot)}")
    key = stream.primary_key
    sql = bulk.select(table.qualified, table.columns, bulk.after_key(table.columns, key, after) if after else "",
                      list(key))
    progress = {"phase": "snapshot", "slot": name, "snapshot_lsn": snapshot_lsn}
    try:
        yield from bulk.keyed_batches(config, stream, bulk_connection(config.dsn, config.connect_timeout), sql,
                                 f"table {table.schema}.{table.name}", lambda last: {**progress, "after": last},
                                 extra={OPERATION_COLUMN: Operation.INSERT.value}, begin=begin, final=False)
    finally:
        if rep is not None:  # the exported snapshot lives while this connection is open and idle
            rep.close()
    yield Checkpoint(stream.name, {"phase": "streaming", "slot": name, "lsn": snapshot_lsn})
    return snapshot_lsn


def _stream(config: PostgresConfig, table: Table, stream: Stream, name: str, lsn: int) -> Iterator[Message]:
    """The slot's changes committed after `lsn` and before this read started, page by page."""
    repl = config.replication
    assert repl is not None
    con = _control(config)
    reader = bulk_connection(config.dsn, config.connect_timeout)
    relation: Relation | None = None
    types = _TypeNames(con)
    try:
        replication.advance(con, name, lsn)  # the saved checkpoint is durable: acknowledge it
        if repl.heartbeat:
            replication.heartbeat(con)
        end = replication.flush_lsn(con)
        while True:
            page = _peek(reader, name, repl.publication, end, config.checkpoint_rows, stream.name)
            if page.num_rows == 0:
                break
            decoded = decode(page, table.oid, relation)
            for segment in decoded.segments:
                relation = segment.relation or relation
                if segment.changes is None or not segment.changes.num_rows:
                    continue
                try:
                    batch = _typed(segment.changes, stream, relation, types, segment.unchanged, reader, table)
                except TypeChanged:  # land what came before the change, then stop
                    yield from _stop_at(con, stream, name, segment.commit_before)
                    raise
                yield Batch(stream.name, batch)
            if decoded.truncated_at is not None:
                yield from _stop_at(con, stream, name, decoded.commit_before_truncate)
                _truncated(table, stream, name)
            if decoded.last_commit is None:
                break
            lsn = decoded.last_commit
            yield _checkpoint(con, stream, name, lsn)
            replication.advance(con, name, lsn)  # the engine resumed us: the destination committed
        yield _checkpoint(con, stream, name, lsn)
    except psycopg.Error as exc:
        if is_connection_lost(exc):
            raise ConnectionLost(f"lost the connection to Postgres while reading the slot of stream {stream.name!r}: "
                                 f"{str(exc).strip().splitlines()[0]}",
                                 hint="what was committed is kept; the next sync resumes from the last checkpoint") from None
        raise
    finally:
        con.close()
        try:
            reader.close()
        except Exception:  # noqa: BLE001 - the connection may be gone already
            pass


def _control(config: PostgresConfig) -> psycopg.Connection:
    from threadline_postgres.connect import connect

    return connect(config.dsn, timeout=config.connect_timeout)


def _checkpoint(con: psycopg.Connection, stream: Stream, name: str, lsn: int) -> Checkpoint:
    return Checkpoint(stream.name, {"phase": "streaming", "slot": name, "lsn": lsn},
                      metrics={"slot_lag_bytes": replication.lag_bytes(con, lsn)})


def _peek(reader: Any, name: str, publication: str, end: int, max_changes: int, stream: str) -> pa.Table:
    cursor = reader.cursor()
    try:
        cursor.execute(replication.peek_sql(name, publication, end, max_changes))
        return cursor.fetch_arrow_table()
    except Exception as exc:  # noqa: BLE001 - the driver's own classes
        text = str(exc)
        if "can no longer get changes from replication slot" in text or "has been invalidated" in text:
            raise SlotLost(name, stream, "was invalidated: the WAL it needed was removed") from None
        if "does not exist" in text and "replication slot" in text:
            raise SlotLost(name, stream, "was dropped") from None
        raise bulk.read_error(exc, f"the replication slot {name!r}") from None
    finally:
        try:
            cursor.close()
        except Exception:  # noqa: BLE001
            pass


class _TypeNames:
    """Type oid → (typname, element typname), looked up once per type (cold path)."""

    def __init__(self, con: psycopg.Connection) -> None:
        self.con = con
        self.known: dict[int, tuple[str, str | None]] = {}

    def arrow(self, oid: int, typmod: int) -> pa.DataType:
        if oid not in self.known:
            row = self.con.execute(
                "select coalesce(b.typname, t.typname), e.typname from pg_type t "
                "left join pg_type b on t.typtype = 'd' and b.oid = t.typbasetype "
                "left join pg_type e on e.oid = coalesce(b.typelem, t.typelem) "
                "and coalesce(b.typcategory, t.typcategory) = 'A' where t.oid = %s", (oid,)).fetchone()
            self.known[oid] = (row[0], row[1]) if row else ("text", None)
        typname, elem = self.known[oid]
        return arrow_type(typname, typmod, elem)


def _stop_at(con: psycopg.Connection, stream: Stream, name: str, lsn: int | None) -> Iterator[Message]:
    """Checkpoint (and acknowledge) the changes up to `lsn`, before the stream stops there."""
    if lsn is not None:
        yield _checkpoint(con, stream, name, lsn)
        replication.advance(con, name, lsn)


class TypeChanged(FatalError):
    """A column changed type while the stream was read (after discovery) and its new values do
    not fit the type discovered. The changes before it were landed and checkpointed; the next
    sync discovers the new type and carries on from there. (Values written under an older type
    than the one discovered are simply cast to it: the slot may lag behind the catalog.)"""

    def __init__(self, stream: str, relation: Relation, column: str, before: pa.DataType, after: pa.DataType) -> None:
        super().__init__(
            f"column {column!r} of {relation.schema}.{relation.name} changed type from {before} to {after} while "
            f"stream {stream!r} was being read; the changes before the change are landed",
            hint="sync again: the stream is discovered with the new type and reads on from the change. A destination "
                 "table whose column has the old type may refuse the new values: change that column's type there "
                 "(or drop the table to have it recreated)")


def _truncated(table: Table, stream: Stream, name: str) -> None:
    raise FatalError(
        f"table {table.schema}.{table.name} was truncated; a truncate removes every row at once and is not a change "
        "of any one record",
        hint=f"take a new snapshot: empty or drop the destination's table, then `threadline state reset <job.yaml> "
             f"--source <source> --stream {stream.name}` and sync; drop the old slot first: SELECT "
             f"pg_drop_replication_slot({quote_literal(name)});")


def _typed(changes: pa.Table, stream: Stream, relation: Relation | None, types: _TypeNames,
           unchanged: dict[str, pa.Array], reader: Any, table: Table) -> pa.RecordBatch:
    """Text columns → the stream's Arrow types (new columns: their own type)."""
    if unchanged:
        changes = _fill_unchanged(changes, unchanged, reader, table, stream)
    by_name = {c[0]: c for c in relation.columns} if relation else {}
    arrays, names = [], []
    for name in changes.column_names:
        values = changes.column(name).combine_chunks()
        if name == OPERATION_COLUMN:
            arrays.append(values)
            names.append(name)
            continue
        _, oid, typmod = by_name[name]
        sent = types.arrow(oid, typmod)  # the type the change was written under
        declared = stream.schema.field(name).type if stream.schema.get_field_index(name) >= 0 else None
        converted = from_text(values, sent)
        if declared is None or declared != sent:
            try:  # a new column (the engine does not know its type), or one whose type changed
                converted = pc.cast(pc.cast(converted, sent), declared or sent)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise TypeChanged(stream.name, relation, name, declared, sent) from None
        arrays.append(converted)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _fill_unchanged(changes: pa.Table, unchanged: dict[str, pa.Array], reader: Any, table: Table,
                    stream: Stream) -> pa.Table:
    """Rows whose out-of-line values the slot did not send get them from the table, by key."""
    key = list(stream.primary_key)
    needed = unchanged[next(iter(unchanged))]
    for mask in list(unchanged.values())[1:]:
        needed = pc.or_(needed, mask)
    rows = changes.filter(needed).select(key).to_pylist()
    by_name = {c.name: c for c in table.columns}
    tuples = ", ".join("(" + ", ".join(bulk.literal(r[k], by_name[k]) for k in key) + ")" for r in rows)
    cols = ", ".join(f"{quote_ident(c)}::text" for c in [*key, *unchanged])
    sql = (f"select {cols} from {table.qualified} where ({', '.join(quote_ident(k) for k in key)}) in ({tuples})")
    cursor = reader.cursor()
    try:
        cursor.execute(sql)
        current = cursor.fetch_arrow_table()
    finally:
        cursor.close()
    found = {tuple(r[i] for i in range(len(key))): r[len(key):] for r in zip(*[current.column(i).to_pylist()
                                                                              for i in range(current.num_columns)])}
    key_text = list(zip(*[changes.column(k).to_pylist() for k in key]))
    for j, (name, mask) in enumerate(unchanged.items()):
        values = changes.column(name).to_pylist()
        flags = mask.to_pylist()
        filled = [(found.get(k, (None,) * len(unchanged))[j] if flag else v) for k, v, flag in zip(key_text, values, flags)]
        changes = changes.set_column(changes.column_names.index(name), name, pa.array(filled, pa.string()))
    return changes
