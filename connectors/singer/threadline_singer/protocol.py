"""Singer messages of one stream to threadline messages.

`StreamDecoder` is fed what a tap says, in order — raw stdout lines from a subprocess, or
message dicts from an in-process tap — and yields `Batch`, `Checkpoint` and `Rejected` for
the one stream being read:

- SCHEMA sets the Arrow schema records are parsed with. The same schema sent again is a
  no-op; a changed one is accepted only if every field it has is in the catalog with a type
  the stream can take — otherwise the read stops rather than silently drop columns.
- RECORD lines are buffered raw and parsed a block at a time (see `records.py`).
- STATE flushes the buffer, then becomes a Checkpoint: the engine saves it only after the
  destination committed everything before it.
- BATCH points at files (JSON lines or Parquet, optionally gzipped) holding records.
- ACTIVATE_VERSION marks the end of a full-table version; records are flushed there. The
  equivalent in threadline is the `replace` write disposition, chosen in the job file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from itertools import repeat
from typing import Any

import pyarrow as pa

from threadline.contracts import Batch, Checkpoint, FatalError, Message, Rejected
from threadline.secrets import redact
from threadline_singer.batch_files import read_batch_files
from threadline_singer.records import InvalidJSONLine, Parsed, RecordParser
from threadline_singer.schema import Nested, is_json_field, json_schema_to_arrow

log = logging.getLogger("threadline.singer")

STATE_KEY = "singer_state"  # where a Checkpoint keeps the tap's STATE value

# A RECORD line as nearly every tap writes it: type first, then stream. Lines in any other
# shape take the slow path (a full json.loads), which is correct, just slower.
_RECORD_HEAD = re.compile(rb'\s*\{\s*"type"\s*:\s*"RECORD"\s*,\s*"stream"\s*:\s*"([^"\\]*)"')
_SNIPPET = 160


def snippet(line: bytes | str) -> str:
    """A short, redacted excerpt of a line for an error message."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = redact(text.strip())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def _compatible(declared: pa.DataType, sent: pa.DataType) -> bool:
    """Whether values of type `sent` can land in a column declared as `declared`."""
    if declared == sent:
        return True
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(f(declared) for f in numeric) and any(f(sent) for f in numeric):
        return pa.types.is_floating(declared) or pa.types.is_integer(sent)
    return pa.types.is_string(declared)  # anything can be kept as text (JSON text included)


class StreamDecoder:
    """Decodes one tap run for one stream. `where` names the tap and stream in errors."""

    def __init__(
        self,
        stream: str,
        declared: pa.Schema,
        *,
        where: str,
        nested: Nested = "struct",
        batch_rows: int = 20_000,
        batch_bytes: int = 32 << 20,
    ) -> None:
        self.stream = stream
        self.declared = declared
        self.where = where
        self.nested = nested
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.line_number = 0  # lines of tap output seen so far
        self.records_read = 0
        self.parser: RecordParser | None = None
        self._prefix = b""  # how this stream's RECORD lines start when a tap writes them compactly
        self._schema_sent: dict[str, Any] | None = None
        self._lines: list[bytes] = []
        self._first_buffered_line = 0
        self._dicts: list[dict[str, Any]] = []
        self._bytes = 0
        self.other_streams: set[str] = set()
        self.activated_versions: list[int] = []

    # ------------------------------------------------------------------ input: raw lines

    def feed_lines(self, lines: list[bytes]) -> Iterator[Message]:
        """Decode complete stdout lines (without their newline)."""
        if self.parser is not None and all(map(bytes.startswith, lines, repeat(self._prefix))):
            # The common case, a chunk of nothing but this stream's records in the usual
            # layout: checked and buffered in C, no Python per line.
            if not self._lines:
                self._first_buffered_line = self.line_number + 1
            self.line_number += len(lines)
            self._lines.extend(lines)
            self._bytes += sum(map(len, lines))
            if len(self._lines) >= self.batch_rows or self._bytes >= self.batch_bytes:
                yield from self.flush(whole_batches_only=True)
            return
        for line in lines:
            self.line_number += 1
            head = _RECORD_HEAD.match(line)
            if head is not None:
                if head.group(1).decode() == self.stream:
                    yield from self._buffer_line(line)
                else:
                    self.other_streams.add(head.group(1).decode())
                continue
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError as exc:
                raise self._invalid_json(line, str(exc), self.line_number) from None
            if isinstance(message, dict) and message.get("type") == "RECORD":
                if message.get("stream") == self.stream:
                    yield from self._buffer_line(line)
                else:
                    self.other_streams.add(str(message.get("stream")))
                continue
            yield from self.feed_message(message)

    def _buffer_line(self, line: bytes) -> Iterator[Message]:
        if self.parser is None:
            raise self._record_before_schema()
        if not self._lines:
            self._first_buffered_line = self.line_number
        self._lines.append(line)
        self._bytes += len(line)
        if len(self._lines) >= self.batch_rows or self._bytes >= self.batch_bytes:
            yield from self.flush()

    # ------------------------------------------------------------------ input: dicts (in-process)

    def feed_records(self, stream: str, records: list[dict[str, Any]]) -> Iterator[Message]:
        """Decode record dicts handed over by an in-process tap."""
        self.line_number += len(records)
        if stream != self.stream:
            self.other_streams.add(stream)
            return
        if self.parser is None:
            raise self._record_before_schema()
        self._dicts.extend(records)
        if len(self._dicts) >= self.batch_rows:
            yield from self.flush()

    def feed_message(self, message: Any) -> Iterator[Message]:
        """Decode one non-RECORD message (already parsed)."""
        if not isinstance(message, dict) or "type" not in message:
            raise FatalError(
                f"line {self.line_number} is not a Singer message (no \"type\"): {snippet(json.dumps(message))}",
                where=self.where,
                hint="a tap must write only Singer messages to stdout; logs belong on stderr",
            )
        kind = message["type"]
        stream = message.get("stream")
        if kind == "RECORD":
            yield from self.feed_records(stream, [message.get("record") or {}])
        elif kind == "SCHEMA":
            if stream == self.stream:
                yield from self._on_schema(message)
        elif kind == "STATE":
            yield from self.flush()
            yield Checkpoint(self.stream, {STATE_KEY: message.get("value")})
        elif kind == "BATCH":
            if stream == self.stream:
                yield from self._on_batch(message)
        elif kind == "ACTIVATE_VERSION":
            if stream == self.stream:
                yield from self.flush()
                self.activated_versions.append(message.get("version"))
                log.info("%s: ACTIVATE_VERSION %s", self.where, message.get("version"))
        else:
            log.debug("%s: ignoring a %r message (line %d)", self.where, kind, self.line_number)

    # ------------------------------------------------------------------ message handlers

    def _on_schema(self, message: dict[str, Any]) -> Iterator[Message]:
        sent = message.get("schema") or {}
        if sent == self._schema_sent:
            return  # taps resend the same SCHEMA freely (per partition, per page)
        yield from self.flush()
        schema = json_schema_to_arrow(sent, nested=self.nested)
        if self._schema_sent is not None or not self._matches_declared(schema):
            self._check_change(schema)
        self._schema_sent = sent
        self.parser = RecordParser(schema)
        self._prefix = b'{"type":"RECORD","stream":' + json.dumps(self.stream).encode() + b","

    def _matches_declared(self, schema: pa.Schema) -> bool:
        return all(
            self.declared.get_field_index(f.name) >= 0
            and self.declared.field(f.name).type == f.type
            for f in schema
        )

    def _check_change(self, schema: pa.Schema) -> None:
        """A schema the catalog did not declare: fine if every field still fits, else stop."""
        problems = []
        for f in schema:
            index = self.declared.get_field_index(f.name)
            if index < 0:
                problems.append(f"new field {f.name!r} ({f.type})")
                continue
            declared = self.declared.field(index)
            if not (is_json_field(declared) or _compatible(declared.type, f.type)):
                problems.append(f"field {f.name!r} changed from {declared.type} to {f.type}")
        if problems:
            raise FatalError(
                f"the tap changed the schema of stream {self.stream!r} mid-stream "
                f"(line {self.line_number}): {'; '.join(problems)}",
                where=self.where,
                hint="nothing after the last checkpoint was saved; run discovery again "
                "(`threadline discover`) so the catalog has the new schema, then sync again",
            )
        log.info("%s: stream %r schema changed compatibly at line %d", self.where, self.stream, self.line_number)

    def _on_batch(self, message: dict[str, Any]) -> Iterator[Message]:
        if self.parser is None:
            raise self._record_before_schema(kind="BATCH")
        yield from self.flush()
        try:
            parts = list(read_batch_files(message, self.parser))
        except InvalidJSONLine as bad:
            raise self._invalid_json(bad.line, bad.error, self.line_number) from None
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise FatalError(
                f"cannot read the files of a BATCH message (line {self.line_number}): {exc}",
                where=self.where,
                hint="the tap's batch_config must point at storage this machine can read "
                "(file:// paths), in jsonl or parquet format",
            ) from exc
        for parsed in parts:
            yield from self._emit(parsed)

    # ------------------------------------------------------------------ output

    def flush(self, *, whole_batches_only: bool = False) -> Iterator[Message]:
        """Parse and yield what is buffered (or only full `batch_rows` batches of it, keeping
        the rest for the next chunk, so batches stay large)."""
        if self.parser is None or not (self._lines or self._dicts):
            return
        if self._lines:
            lines, self._lines, self._bytes = self._lines, [], 0
            first = self._first_buffered_line
            if whole_batches_only and len(lines) > self.batch_rows:
                keep = len(lines) % self.batch_rows
                if keep:
                    lines, self._lines = lines[:-keep], lines[-keep:]
                    self._bytes = sum(map(len, self._lines))
                    self._first_buffered_line = first + len(lines)
            for start in range(0, len(lines), self.batch_rows):
                try:
                    parsed = self.parser.parse_lines(lines[start : start + self.batch_rows])
                except InvalidJSONLine as bad:
                    raise self._invalid_json(bad.line, bad.error, first + start + bad.index) from None
                yield from self._emit(parsed)
        else:
            records, self._dicts = self._dicts, []
            yield from self._emit(self.parser.parse_records(records))

    def _emit(self, parsed: Parsed) -> Iterator[Message]:
        if parsed.batch is not None and parsed.batch.num_rows:
            self.records_read += parsed.batch.num_rows
            yield Batch(self.stream, parsed.batch)
        for raw, reason in parsed.rejected:
            yield Rejected(self.stream, [{"message": raw}], f"{self.where}: {reason}")

    def finish(self) -> Iterator[Message]:
        """The tap exited cleanly: flush the rest."""
        yield from self.flush()
        if self.other_streams:
            log.debug("%s: ignored records of other streams: %s", self.where, sorted(self.other_streams))

    # ------------------------------------------------------------------ errors

    def _invalid_json(self, line: bytes, error: str, number: int) -> FatalError:
        return FatalError(
            f"line {number} of the tap's output is not valid JSON ({error}): {snippet(line)}",
            where=self.where,
            hint="the tap wrote something other than a Singer message to stdout; nothing after the "
            "last checkpoint was saved. Fix the tap (logs belong on stderr) and sync again",
        )

    def _record_before_schema(self, kind: str = "RECORD") -> FatalError:
        return FatalError(
            f"the tap sent a {kind} for stream {self.stream!r} before any SCHEMA message for it "
            f"(line {self.line_number})",
            where=self.where,
            hint="a Singer tap must send a stream's SCHEMA before its records; this is a bug in the tap",
        )
