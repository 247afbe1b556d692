"""Arrow record batches to Singer RECORD lines, in bulk.

DuckDB builds every line in one SQL statement (`json_object` per row, in C++), and the
result's string buffer — the lines back to back, each ending in a newline — is handed to the
target as one block of bytes. No Python runs per record.

Dates come out as YYYY-MM-DD and timestamps as RFC 3339 in UTC (naive timestamps are UTC by
threadline's convention); columns holding JSON text are embedded as JSON, not as strings.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from threadline_singer.schema import is_json_field

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _value(field: pa.Field) -> str:
    column = _ident(field.name)
    t = field.type
    if is_json_field(field):
        return f"CAST({column} AS JSON)"
    if pa.types.is_timestamp(t):
        return f"strftime({column}, '{_TIMESTAMP_FORMAT}')"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return f"base64({column})"
    return column


class RecordSerializer:
    """Serialises batches of one schema into RECORD message lines for one Singer stream."""

    def __init__(self, stream: str, schema: pa.Schema, *, version: int | None = None) -> None:
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        pairs = ", ".join(f"{_literal(f.name)}, {_value(f)}" for f in schema)
        envelope = f"'type', 'RECORD', 'stream', {_literal(stream)}, 'record', json_object({pairs})"
        if version is not None:
            envelope += f", 'version', {int(version)}"
        self._sql = f"SELECT json_object({envelope}) || chr(10) AS line FROM batch"

    def lines(self, batch: pa.RecordBatch) -> bytes:
        """The RECORD lines of `batch`, newline-terminated, as one block."""
        if batch.num_rows == 0:
            return b""
        self._con.register("batch", pa.Table.from_batches([batch]))
        try:
            relation = self._con.sql(self._sql)
            table = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        finally:
            self._con.unregister("batch")
        return b"".join(_string_bytes(chunk) for chunk in table.column(0).chunks)

    def close(self) -> None:
        """Release the DuckDB connection."""
        self._con.close()


def _string_bytes(array: pa.Array) -> bytes:
    """The concatenated values of a string array, straight from its data buffer."""
    if len(array) == 0:
        return b""
    kind = np.int64 if pa.types.is_large_string(array.type) else np.int32
    if pa.types.is_string_view(array.type):
        array = array.cast(pa.large_string())
        kind = np.int64
    offsets = np.frombuffer(array.buffers()[1], dtype=kind)[array.offset : array.offset + len(array) + 1]
    return memoryview(array.buffers()[2])[int(offsets[0]) : int(offsets[-1])].tobytes()


def message(kind: str, **fields: Any) -> bytes:
    """One non-RECORD Singer message line (SCHEMA, STATE, ACTIVATE_VERSION)."""
    return (json.dumps({"type": kind, **fields}, separators=(",", ":"), default=str) + "\n").encode()
