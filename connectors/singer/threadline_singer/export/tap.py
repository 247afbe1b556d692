"""`tap-threadline`: any installed threadline source, run as a Singer tap.

    tap-threadline --about
    tap-threadline --config config.json --discover > catalog.json
    tap-threadline --config config.json --catalog catalog.json [--state state.json]

with a config naming the connector and its own config:

    {"connector": "files", "config": {"streams": [{"name": "customers", "path": "customers.csv"}]}}

Built on singer-sdk, so it speaks the protocol the way Meltano expects (capabilities, stream
selection, state). A cursor stream is INCREMENTAL with its cursor as replication key: the
engine's cursor travels as the bookmark's `replication_key_value` and the source's own
checkpoint under "threadline", and both are handed back to the source on the next run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from singer_sdk import Stream as SdkStream
from singer_sdk import Tap

from threadline.engine.coerce import coerce
from threadline.engine.runner import CURSOR_KEY, StreamCursor  # the engine's cursor: one rule for both
from threadline.contracts import Batch, Checkpoint, ReadRequest, Rejected, Stream, SyncMode
from threadline_singer.export.common import CONFIG_SCHEMA, ExportError, load_connector, run_cli
from threadline_singer.schema import arrow_to_json_schema, is_json_field

BOOKMARK_KEY = "threadline"  # the source's own checkpoint, inside the stream's Singer bookmark
REPLICATION_INCREMENTAL = "INCREMENTAL"  # Singer's replication method


def _rows(batch: pa.RecordBatch) -> Iterable[dict[str, Any]]:
    """Records of a batch as dicts; JSON-text columns go back to being JSON values."""
    json_columns = [f.name for f in batch.schema if is_json_field(f)]
    for row in batch.to_pylist():
        for name in json_columns:
            if row[name] is not None:
                row[name] = json.loads(row[name])
        yield row


class ThreadlineStream(SdkStream):
    """One stream of a threadline source, as a singer-sdk stream.

    A stream with a cursor is INCREMENTAL with that cursor as its replication key; one that
    resumes from its own state alone (a file's position, a replication slot) is INCREMENTAL
    without one. The bookmark holds the engine's cursor as `replication_key_value` and the
    source's checkpoint under "threadline"; a catalog that forces FULL_TABLE reads in full.
    """

    def __init__(self, tap: Tap, stream: Stream) -> None:
        super().__init__(tap, schema=arrow_to_json_schema(stream.schema), name=stream.name)
        self.primary_keys = list(stream.primary_key)
        self._stream = stream
        if stream.cursor_field:
            self.replication_key = stream.cursor_field
        elif SyncMode.INCREMENTAL in stream.sync_modes:
            self.forced_replication_method = REPLICATION_INCREMENTAL

    @property
    def is_sorted(self) -> bool:
        """Whether the source returns records in cursor order (then the bookmark moves at every checkpoint)."""
        return self._stream.cursor_sorted

    def _increment_stream_state(self, latest_record: dict[str, Any], *, context: dict | None = None) -> None:
        """The bookmark is moved per batch by the engine's cursor (see get_records), not per record."""

    def get_records(self, context: dict | None) -> Iterable[dict[str, Any]]:
        """Read the stream from the threadline source, from its bookmark: the cursor and the source's checkpoint."""
        tap: TapThreadline = self._tap  # type: ignore[assignment]
        incremental = (self.replication_method == REPLICATION_INCREMENTAL
                       and SyncMode.INCREMENTAL in self._stream.sync_modes)
        state = self.stream_state
        start = self.get_starting_replication_key_value(context) if incremental and self.replication_key else None
        # the engine's own cursor rules: max value written, capped at the run's start, inclusive next time
        cursor = StreamCursor(self._stream, start, tap.started_at)
        request = ReadRequest(
            stream=self._stream,
            sync_mode=SyncMode.INCREMENTAL if incremental else SyncMode.FULL_REFRESH,
            state=(state.get(BOOKMARK_KEY) or {}) if incremental else {},
            cursor_start=cursor.start,
        )
        for message in tap.source.read(tap.source_config, request):
            if isinstance(message, Batch):
                # what the engine does between a source and a destination: types as declared
                coerced = coerce(message.records, self._stream.schema, self._stream.primary_key)
                if coerced.rejected_count:
                    self.logger.warning(
                        "stream %s: %d rows did not fit the schema and were skipped: %s",
                        self.name, coerced.rejected_count, "; ".join(sorted(set(coerced.reasons or [])))[:500],
                    )
                cursor.observe(coerced.good)
                yield from _rows(coerced.good)
            elif isinstance(message, Checkpoint) and incremental:
                # every record before it was already written out: the bookmark may move
                state[BOOKMARK_KEY] = message.state
                # an unsorted stream keeps the cursor it started from until it finishes
                self._bookmark_cursor(cursor.save_into if self.is_sorted else cursor.keep_start_in)
                self._is_state_flushed = False
                self._write_state_message()
            elif isinstance(message, Rejected):
                self.logger.warning(
                    "stream %s: %d records could not be read: %s", self.name, len(message.records), message.reason
                )
        if incremental:
            self._bookmark_cursor(cursor.save_into)

    def _bookmark_cursor(self, save_into: Callable[[dict[str, Any]], None]) -> None:
        """Put the engine's cursor into the bookmark as Singer's replication_key_value."""
        if not self.replication_key:
            return
        held: dict[str, Any] = {}
        save_into(held)
        if CURSOR_KEY in held:
            self.stream_state["replication_key"] = self.replication_key
            self.stream_state["replication_key_value"] = held[CURSOR_KEY]


class TapThreadline(Tap):
    """A Singer tap running the threadline source named in its config."""

    name = "tap-threadline"
    config_jsonschema = CONFIG_SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connector: tuple[Any, Any] | None = None
        self.started_at = datetime.now(UTC)  # timestamp cursors never move past it, as in the engine
        super().__init__(*args, **kwargs)

    @property
    def source(self) -> Any:
        """The threadline source named in the config."""
        return self._load()[0]

    @property
    def source_config(self) -> Any:
        """Its validated config."""
        return self._load()[1]

    def _load(self) -> tuple[Any, Any]:
        if self._connector is None:
            self._connector = load_connector("source", dict(self.config))
        return self._connector

    def discover_streams(self) -> list[ThreadlineStream]:
        """One Singer stream per stream the source discovers."""
        return [ThreadlineStream(self, stream) for stream in self.source.discover(self.source_config)]


def main() -> None:
    """Console script `tap-threadline`."""
    run_cli(TapThreadline.cli)


__all__ = ["ExportError", "TapThreadline", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
