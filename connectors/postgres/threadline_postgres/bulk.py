"""Bulk reads: a SELECT streamed as Arrow record batches by the ADBC driver (binary COPY,
decoded in C++), and the SQL for each way a stream is read.

    full refresh  select … from t [where (key) > (after)] order by key      resumable by key
    incremental   select … from t [where cursor >= start] order by cursor  the engine keeps the cursor
    snapshot      a full refresh inside the replication slot's exported snapshot
"""

from __future__ import annotations

import datetime as dt
import decimal
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import Batch, Checkpoint, ConfigError, FatalError, Message, Stream, ThreadlineError

from threadline_postgres.config import PostgresConfig
from threadline_postgres.connect import ConnectionLost, is_connection_lost
from threadline_postgres.sql import quote_ident, quote_literal
from threadline_postgres.types import Column, plain_batch


def literal(value: Any, column: Column) -> str:
    """A value of `column` as a typed SQL literal (keys and cursors from saved state)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        text = value.isoformat()
    else:
        text = str(value)
    cast = column.typname if not column.typname.startswith("_") else "text"
    return f"{quote_literal(text)}::{quote_ident(cast) if cast != 'bpchar' else 'bpchar'}"


def jsonable(value: Any) -> Any:
    """A key value as saved state keeps it (JSON), re-typed by `literal` when read back."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def select(source: str, columns: list[Column], where: str = "", order: list[str] | None = None) -> str:
    exprs = ", ".join(c.select_expr() for c in columns)
    sql = f"select {exprs} from {source}"
    if where:
        sql += f" where {where}"
    if order:
        sql += " order by " + ", ".join(quote_ident(c) for c in order)
    return sql


def after_key(columns: list[Column], key: tuple[str, ...], values: list[Any]) -> str:
    """`(k1, k2) > (v1, v2)`: the rows after a saved key, as the key's index orders them."""
    by_name = {c.name: c for c in columns}
    left = ", ".join(quote_ident(k) for k in key)
    right = ", ".join(literal(v, by_name[k]) for k, v in zip(key, values))
    return f"({left}) > ({right})"


def stream_batches(con: Any, sql: str, what: str) -> Iterator[pa.RecordBatch]:
    """Run `sql` on an ADBC connection and yield its rows as record batches. The next batch is
    fetched (in C++, without the GIL) while the destination writes the last one."""
    cursor = con.cursor()
    try:
        try:
            cursor.execute(sql)
            for batch in prefetched(cursor.fetch_record_batch()):
                if batch.num_rows:
                    yield plain_batch(batch)
        except Exception as exc:  # noqa: BLE001 - the driver's own classes
            raise read_error(exc, what) from None
    finally:
        try:
            cursor.close()
        except Exception:  # noqa: BLE001 - the connection may be gone already
            pass


def prefetched(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """`batches`, read ahead by a thread (at most `depth` waiting): reading overlaps writing."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        slots.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            slots.put(exc)

    reader = threading.Thread(target=read, name="postgres-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def read_error(exc: BaseException, what: str) -> Exception:
    """A driver error while reading, classified."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if is_connection_lost(exc):
        return ConnectionLost(f"lost the connection to Postgres while reading {what}: {first}",
                              hint="what was committed is kept; the next sync resumes from the last checkpoint")
    lower = text.lower()
    if "permission denied" in lower:
        return ConfigError(f"permission denied while reading {what}: {first}",
                           hint="GRANT SELECT on the table (and USAGE on its schema) to this user")
    if "does not exist" in lower:
        return ConfigError(f"{what}: {first}", hint="the table or a column was dropped or renamed since the job was "
                                                    "written; check `tables:` and `queries:`")
    return FatalError(f"Postgres failed reading {what}: {first}")


def constant(value: str, n: int) -> pa.Array:
    """A string column holding `value` n times, without a Python list of n."""
    return pc.take(pa.array([value], pa.string()), pa.array(np.zeros(n, np.int32)))


def keyed_batches(config: PostgresConfig, stream: Stream, con, sql: str, what: str, state_for,
                  extra: dict[str, str] | None = None, begin: list[str] | None = None,
                  final: bool = True) -> Iterator[Message]:
    """Yield the rows of `sql` as batches, with a checkpoint every `checkpoint_rows` rows (and
    at the end, when `final`); `state_for(last key values)` is the checkpoint's state. `extra`
    columns get one value for every row. `begin` statements run first (a transaction and its
    snapshot). Closes `con`."""
    key = stream.primary_key
    since = 0
    last: list | None = None
    try:
        cursor = con.cursor()
        for statement in begin or []:
            cursor.execute(statement)
        for batch in stream_batches(con, sql, what):
            if extra:
                for name, value in extra.items():
                    batch = batch.append_column(name, constant(value, batch.num_rows))
            yield Batch(stream.name, batch)
            since += batch.num_rows
            if key:
                last = [jsonable(batch.column(k)[batch.num_rows - 1].as_py()) for k in key]
            if since >= config.checkpoint_rows:
                yield Checkpoint(stream.name, state_for(last))
                since = 0
        if begin:
            cursor.execute("commit")
    except ThreadlineError:
        raise
    except Exception as exc:  # noqa: BLE001 - the driver's own classes
        raise read_error(exc, what) from None
    finally:
        try:
            con.close()
        except Exception:  # noqa: BLE001
            pass
    if final and (since or last is None):
        yield Checkpoint(stream.name, state_for(last))
