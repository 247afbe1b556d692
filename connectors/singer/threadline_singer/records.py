"""Singer RECORD messages to Arrow record batches, in bulk.

The hot path never builds a Python dict per record: the raw RECORD lines of one stream are
joined into one block and parsed by Arrow's JSON reader against an explicit schema (the
``record`` member of each message becomes a struct column). Date-time and date values arrive
as text and are cast with one compute kernel per column.

Two things are slower, on purpose and only where they happen:
- a block the reader rejects (a value of the wrong type) is bisected to find the offending
  lines, which come back as rejected rows with the reader's reason; the rest of the block is
  kept;
- fields whose schema is free-form (kept as JSON text) are serialised from a parsed dict per
  record, because Arrow's reader cannot keep a nested value as text.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from threadline_singer.schema import UTC_TIMESTAMP, is_json_field

_ZONE_SUFFIX = r"([Zz]|[+-]\d{2}(:?\d{2})?)$"


class InvalidJSONLine(Exception):
    """A line that is not JSON at all: a protocol error, not a bad value."""

    def __init__(self, index: int, line: bytes, error: str) -> None:
        self.index = index  # position of the line in the block handed to the parser
        self.line = line
        self.error = error
        super().__init__(error)


@dataclass
class Parsed:
    """Rows that fit, and the raw lines that did not (each with the reader's reason)."""

    batch: pa.RecordBatch | None
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (raw line, reason)


def _wire_type(t: pa.DataType) -> pa.DataType:
    """The type Arrow's JSON reader should produce for a target type (text for dates)."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_wire_type(f.type)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(_wire_type(t.value_type))
    return t


def cast_temporal(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast text to a date or timestamp column; on values Arrow cannot parse, keep the text.

    Timestamps without a zone are taken as UTC (Singer says date-time values are RFC 3339;
    taps that leave the zone off nearly always mean UTC). Text that still does not parse is
    handed on unchanged: the engine's coercion quarantines exactly those rows with a reason.
    """
    try:
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if pa.types.is_timestamp(target) and pa.types.is_string(array.type):
        zoned = pc.match_substring_regex(array, _ZONE_SUFFIX)
        text = pc.replace_substring_regex(array, r"^(\d{4}-\d{2}-\d{2}) ", r"\1T")
        text = pc.if_else(zoned, text, pc.binary_join_element_wise(text, pa.scalar("Z"), ""))
        try:
            return pc.cast(text, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return array


class RecordParser:
    """Turns RECORD lines (or in-process record dicts) of one stream into Arrow batches."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.json_fields = [f.name for f in schema if is_json_field(f)]
        typed = [f.with_type(_wire_type(f.type)).with_nullable(True) for f in schema if not is_json_field(f)]
        self.record_type = pa.struct(typed)  # what the JSON reader produces (dates as text)
        self._envelope = pa.schema([pa.field("record", self.record_type)])
        self._parse_options = pj.ParseOptions(explicit_schema=self._envelope, unexpected_field_behavior="ignore")

    # ------------------------------------------------------------------ from JSON lines

    def parse_lines(self, lines: list[bytes]) -> Parsed:
        """Parse raw RECORD message lines (without newlines). Raises InvalidJSONLine."""
        if not lines:
            return Parsed(None)
        structs: list[pa.StructArray] = []
        kept: list[bytes] = []
        rejected: list[tuple[str, str]] = []
        self._read_block(lines, 0, structs, kept, rejected)
        if not structs:
            return Parsed(None, rejected)
        records = pa.concat_arrays(structs) if len(structs) > 1 else structs[0]
        json_columns = self._json_columns_from_lines(kept if len(kept) != len(lines) else lines)
        return Parsed(self._finish(records, json_columns), rejected)

    def _read_block(
        self,
        lines: list[bytes],
        offset: int,
        structs: list[pa.StructArray],
        kept: list[bytes],
        rejected: list[tuple[str, str]],
    ) -> None:
        block = b"\n".join(lines)
        try:
            table = pj.read_json(
                io.BytesIO(block),
                read_options=pj.ReadOptions(block_size=max(1 << 20, len(block) + 1)),
                parse_options=self._parse_options,
            )
        except pa.ArrowInvalid as exc:
            if len(lines) == 1:
                self._explain(lines[0], offset, str(exc), rejected)
                return
            # Bisect: each failing line costs about log2(block) small parses, never a row loop.
            middle = len(lines) // 2
            self._read_block(lines[:middle], offset, structs, kept, rejected)
            self._read_block(lines[middle:], offset + middle, structs, kept, rejected)
            return
        column = table.column("record")
        if column.num_chunks:
            structs.append(column.combine_chunks())
        kept.extend(lines)

    @staticmethod
    def _explain(line: bytes, index: int, error: str, rejected: list[tuple[str, str]]) -> None:
        try:
            json.loads(line)
        except ValueError as exc:
            raise InvalidJSONLine(index, line, str(exc)) from None
        text = line.decode("utf-8", "replace")
        rejected.append((text, error.replace("JSON parse error: ", "").strip()))

    def _json_columns_from_lines(self, lines: list[bytes]) -> dict[str, pa.Array]:
        if not self.json_fields:
            return {}
        records = [json.loads(line).get("record") or {} for line in lines]
        return self._json_columns(records)

    def _json_columns(self, records: list[dict[str, Any]]) -> dict[str, pa.Array]:
        columns = {}
        for name in self.json_fields:
            values = [r.get(name) for r in records]
            columns[name] = pa.array(
                [None if v is None else json.dumps(v, default=str, separators=(",", ":")) for v in values],
                pa.string(),
            )
        return columns

    # ------------------------------------------------------------------ from dicts (in-process)

    def parse_records(self, records: list[dict[str, Any]]) -> Parsed:
        """Build a batch from record dicts (in-process taps): column by column, no JSON."""
        if not records:
            return Parsed(None)
        try:
            return Parsed(self._from_dicts(records))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            pass
        good: list[dict[str, Any]] = []
        rejected: list[tuple[str, str]] = []
        for record in records:  # only after the whole chunk failed: find the bad records
            try:
                self._from_dicts([record])
                good.append(record)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
                rejected.append((json.dumps(record, default=str), str(exc)))
        return Parsed(self._from_dicts(good) if good else None, rejected)

    def _from_dicts(self, records: list[dict[str, Any]]) -> pa.RecordBatch:
        arrays = []
        for f in self.record_type:
            values = [r.get(f.name) for r in records]
            target = self.schema.field(f.name).type
            if f.type != target:
                try:  # datetime objects go straight in; text goes through the same cast as JSON
                    arrays.append(pa.array(values, target))
                    continue
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                    values = [v.isoformat() if hasattr(v, "isoformat") else v for v in values]
            try:
                arrays.append(pa.array(values, f.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # Singer readers (singer-sdk targets among them) parse JSON numbers as Decimal
                arrays.append(pa.array([_plain_number(v) for v in values], f.type))
        records_array = pa.StructArray.from_arrays(arrays, names=[f.name for f in self.record_type])
        return self._finish(records_array, self._json_columns(records))

    # ------------------------------------------------------------------ shared

    def _finish(self, records: pa.StructArray, json_columns: dict[str, pa.Array]) -> pa.RecordBatch:
        # flatten() folds the struct's own nulls (a RECORD without "record") into each child
        children = dict(zip([f.name for f in records.type], records.flatten()))
        columns: list[pa.Array] = []
        fields: list[pa.Field] = []
        for target in self.schema:
            if target.name in json_columns:
                array = json_columns[target.name]
            else:
                array = children[target.name]
                if array.type != target.type:
                    array = cast_temporal(array, target.type)
            columns.append(array)
            fields.append(pa.field(target.name, array.type, True, target.metadata))
        return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def _plain_number(value: Any) -> Any:
    """A Decimal as the int or float Arrow expects; anything else unchanged."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _as_json_text(array: pa.Array) -> pa.Array:
    """Nested values as JSON documents (only for columns the schema keeps as JSON text)."""
    return pa.array(
        [None if v is None else json.dumps(v, default=str, separators=(",", ":")) for v in array.to_pylist()],
        pa.string(),
    )


def table_to_batch(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """Align a table read from a BATCH file (Parquet, JSON lines) to the stream's columns."""
    columns: list[pa.Array] = []
    fields: list[pa.Field] = []
    for target in schema:
        if target.name in table.column_names:
            array = table.column(target.name).combine_chunks()
            if is_json_field(target) and not pa.types.is_string(array.type):
                array = _as_json_text(array)  # Parquet keeps nested values nested
            elif array.type != target.type and not is_json_field(target):
                array = cast_temporal(array, target.type)
        else:
            array = pa.nulls(table.num_rows, target.type)
        columns.append(array)
        fields.append(pa.field(target.name, array.type, True, target.metadata))
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


__all__ = ["InvalidJSONLine", "Parsed", "RecordParser", "UTC_TIMESTAMP", "cast_temporal", "table_to_batch"]
