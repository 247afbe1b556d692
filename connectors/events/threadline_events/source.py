"""The `events` source: the collector's log, read as streams of Arrow batches.

A stream per write key name and per webhook (see config.py). Its checkpoint is a byte offset
in the stream's log: the engine saves it only after the destination has committed everything
before it, so the record flow's commit-then-state rule holds unchanged, and a reader killed
anywhere reads again from its last saved offset.

Reading is bulk: the log's whole lines go to `pyarrow.json` a few megabytes at a time
(`batch_bytes`) with the envelope's schema, and duplicates of a message id inside a batch are
dropped by an Arrow group-by (a retried call's copy). Across batches and runs the stream's
primary key, `message_id`, deduplicates: the default write is an upsert by it.

At the start of each incremental read the source records its saved offset as its follower's
position in the log (`follower` in the config), which is what lets the collector remove
segments every follower has read past.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from threadline.contracts import (
    Batch,
    Catalog,
    Checkpoint,
    ConfigError,
    Message,
    ReadRequest,
    Rejected,
    Source,
    Stream,
    SyncMode,
)

from threadline_events.config import EventsConfig
from threadline_events.envelope import SCHEMA
from threadline_events.log import StreamLog

log = logging.getLogger("threadline.events")

OFFSET_KEY = "offset"
BLOCK_BYTES = 4 << 20  # pyarrow.json's block: lines are parsed in parallel blocks of this size
# Parsed with every field nullable: a line the collector wrote always has a message id, and the
# engine's coercion to the stream's schema is the place that enforces it.
_PARSE_SCHEMA = pa.schema([f.with_nullable(True) for f in SCHEMA])


class EventsSource(Source[EventsConfig]):
    """Events and webhooks the collector accepted, from its durable log."""

    name = "events"
    spec = EventsConfig

    def check(self, config: EventsConfig) -> None:
        try:
            config.log.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"the event log's folder {config.log} cannot be created: {exc.strerror}", field="log",
                              hint="point `log` at a folder this user can write") from None

    def discover(self, config: EventsConfig) -> Catalog:
        return Catalog(tuple(
            Stream(name, SCHEMA, primary_key=("message_id",), sync_modes=(SyncMode.INCREMENTAL, SyncMode.FULL_REFRESH),
                   arrival_field="received_at",
                   description=f"events the collector accepted for {name!r}, one row per message id")
            for name in config.streams()))

    def read(self, config: EventsConfig, request: ReadRequest) -> Iterator[Message]:
        stream = request.stream.name
        events = StreamLog(config.log / stream)
        incremental = request.sync_mode is SyncMode.INCREMENTAL
        offset = int(request.state.get(OFFSET_KEY, 0)) if incremental else 0
        if incremental:
            events.commit_follower(config.follower, offset)  # the engine saved this state after committing
        first = events.start()
        if offset < first:
            log.warning("%s: events before offset %s were removed from the log before this reader read them "
                        "(it was not a recorded follower); reading from %s", stream, f"{offset:,}", f"{first:,}")
            offset = first
        end = events.end()  # a run reads what had arrived when it started; later events are the next run's
        while offset < end:
            data, after = events.read(offset, config.batch_bytes, until=end)
            if not data:
                break
            table, rejected = parse_lines(data)
            if rejected:
                yield Rejected(stream, rejected, "a log line that is not an event envelope (the log was damaged)")
            for batch in first_per_message(table).to_batches():
                yield Batch(stream, batch)
            offset = after
            yield Checkpoint(stream, {OFFSET_KEY: offset})

    def pending(self, config: EventsConfig, stream: Stream, state: dict[str, Any], up_to: int) -> int | None:
        return StreamLog(config.log / stream.name).count_lines(int(state.get(OFFSET_KEY, 0)), up_to)


def parse_lines(data: bytes) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Whole log lines as an Arrow table of the envelope's schema, in bulk; lines that are not
    envelopes (only a damaged log has them) come back apart, as text, for the quarantine."""
    try:
        return _read_json(data, BLOCK_BYTES), []
    except pa.ArrowInvalid:
        pass
    try:  # one line longer than a block: parse the data as one block
        return _read_json(data, len(data) + 1), []
    except pa.ArrowInvalid:
        pass
    good, bad = [], []
    for text in data.splitlines(keepends=True):  # a damaged log only: find the lines at fault
        try:
            _read_json(text, len(text) + 1)
            good.append(text)
        except pa.ArrowInvalid as exc:
            bad.append({"line": text.decode("utf-8", "replace"), "error": str(exc)})
    table = _read_json(b"".join(good), len(data) + 1) if good else _PARSE_SCHEMA.empty_table()
    return table, bad


def _read_json(data: bytes, block_size: int) -> pa.Table:
    return pajson.read_json(
        io.BytesIO(data),
        read_options=pajson.ReadOptions(block_size=max(block_size, 1 << 16)),
        parse_options=pajson.ParseOptions(explicit_schema=_PARSE_SCHEMA, unexpected_field_behavior="ignore"),
    )


def first_per_message(table: pa.Table) -> pa.Table:
    """The first row of each message id, in log order (a retried call's copies are dropped)."""
    if table.num_rows < 2:
        return table
    positions = pa.table({"message_id": table.column("message_id"), "_row": np.arange(table.num_rows)})
    firsts = positions.group_by("message_id", use_threads=False).aggregate([("_row", "min")]).column("_row_min")
    if len(firsts) == table.num_rows:
        return table
    firsts = firsts.combine_chunks() if isinstance(firsts, pa.ChunkedArray) else firsts
    return table.take(firsts.take(pc.sort_indices(firsts)))
