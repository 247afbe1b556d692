"""Coerce a source's record batch to its stream's Arrow schema, in bulk.

The happy path is one compute-kernel cast per column. Only when a cast fails does the
engine look for the offending rows, by bisection: a column of a million values with three
bad ones costs about 3 × log2(1M) ≈ 60 small casts, never a Python loop over the rows. Bad
rows are split off with a reason per row and go to quarantine; nothing is dropped silently.

Rules:
- a column missing from the batch becomes nulls; a column the schema does not know is kept
  after the declared ones (connectors keep custom fields; destinations add columns);
- in text columns cast to another type, "" means null (that is what CSV exports mean by it);
- a string field whose metadata carries `format` (e.g. `%m/%d/%y`) is parsed with it;
- text without a zone (`2020-01-01 00:00:00`, `2020-01-01T00:00`, `2020-01-01`) cast to a
  timestamp with a zone is taken as UTC, as types.py promises;
- a row with an empty primary key cannot be upserted and is rejected.

`pyarrow.compute` is imported by the functions that use it: a sync whose files the destination
loads itself (Parquet or CSV into DuckDB) coerces no batch, and its import is ~0.03 CPU-s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from threadline.arrays import bool_mask
from threadline.contracts import FORMAT_KEY, FatalError



@dataclass
class Coerced:
    """The rows that fit the schema, and the ones that did not with a reason each."""

    good: pa.RecordBatch
    rejected: pa.Table | None = None
    reasons: list[str] | None = None

    @property
    def rejected_count(self) -> int:
        return 0 if self.rejected is None else self.rejected.num_rows


def coerce(batch: pa.RecordBatch, schema: pa.Schema, primary_key: tuple[str, ...] = ()) -> Coerced:
    """Cast `batch` to `schema`; rows that cannot be cast are returned apart with reasons."""
    import pyarrow.compute as pc

    if batch.schema.equals(schema) and not primary_key:
        return Coerced(batch)
    n = batch.num_rows
    columns: list[pa.Array] = []
    fields: list[pa.Field] = []
    problems: list[tuple[str, pa.Array]] = []  # (reason, boolean mask of the rows it applies to)
    unparsable: dict[str, pa.Array] = {}

    for field in schema:
        index = batch.schema.get_field_index(field.name)
        source = batch.column(index) if index >= 0 else pa.nulls(n, field.type)
        array, bad, reason = _convert(source, field)
        if bad is not None:
            problems.append((reason, bad))
            unparsable[field.name] = bad
        columns.append(array)
        fields.append(field.with_nullable(True))
    for name in primary_key:
        missing = pc.is_null(columns[schema.get_field_index(name)])
        if name in unparsable:  # already rejected with a better reason
            missing = pc.and_(missing, pc.invert(unparsable[name]))
        if pc.any(missing).as_py():
            problems.append((f"{name}: primary key is empty", missing))
    for i, field in enumerate(batch.schema):  # keep what the schema does not declare
        if schema.get_field_index(field.name) < 0:
            columns.append(batch.column(i))
            fields.append(field)

    out = pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields, metadata=schema.metadata))
    if not problems:
        return Coerced(out)
    any_bad = problems[0][1]
    for _, mask in problems[1:]:
        any_bad = pc.or_(any_bad, mask)
    keep = pc.invert(any_bad)
    bad_rows = pc.indices_nonzero(any_bad).to_pylist()  # only rejected rows from here: cold path
    per_row: dict[int, list[str]] = {i: [] for i in bad_rows}
    for reason, mask in problems:
        for i in pc.indices_nonzero(mask).to_pylist():
            per_row[i].append(reason)
    rejected = pa.Table.from_batches([batch.filter(any_bad)])
    return Coerced(out.filter(keep), rejected, ["; ".join(per_row[i]) for i in bad_rows])


def _convert(array: pa.Array, field: pa.Field) -> tuple[pa.Array, pa.Array | None, str]:
    """Cast one column. Returns (array with bad values nulled, mask of bad rows or None, reason)."""
    import pyarrow.compute as pc

    target = field.type
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type == target:
        return array, None, ""
    text = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    if text and not (pa.types.is_string(target) or pa.types.is_large_string(target)):
        # No Python value goes into a compute call here: converting one makes pyarrow import
        # pandas when it is installed (~0.3 CPU-s on the first batch of every sync)
        blank = pc.invert(pc.cast(pc.utf8_length(pc.utf8_trim_whitespace(array)), pa.bool_()))
        array = pc.if_else(blank, pa.nulls(len(array), array.type), array)
    fmt = (field.metadata or {}).get(FORMAT_KEY)
    if text and fmt and (pa.types.is_timestamp(target) or pa.types.is_date(target)):
        return _parse_with_format(array, field, fmt.decode())
    zoned = text and pa.types.is_timestamp(target) and target.tz
    for attempt in ("as given", "zoneless as UTC") if zoned else ("as given",):
        if attempt == "zoneless as UTC":  # only after a failed cast: the happy path pays nothing
            array = _zoneless_as_utc(array)
        try:
            return pc.cast(array, target), None, ""
        except pa.ArrowNotImplementedError as exc:
            raise FatalError(
                f"column {field.name!r} arrives as {array.type} and cannot be converted to {target} at all ({exc})",
                hint="the connector declares the wrong type for this column; fix its schema",
            ) from None
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    bad_rows = _bisect_failures(array, target)
    mask = _mask(len(array), bad_rows)
    cleaned = pc.if_else(mask, pa.nulls(len(array), array.type), array)
    return pc.cast(cleaned, target), mask, f"{field.name}: not a valid {_type_name(target)}"


_DATE_ONLY = r"^\s*(\d{4}-\d{2}-\d{2})\s*$"
_NO_ZONE = r"^\s*(\d{4}-\d{2}-\d{2}[T ]\d{2}(?::\d{2}){0,2}(?:\.\d+)?)\s*$"


def _zoneless_as_utc(array: pa.Array) -> pa.Array:
    """ISO dates and date-times written without a zone, marked as UTC (`Z`); others unchanged."""
    import pyarrow.compute as pc

    array = pc.replace_substring_regex(array, pattern=_DATE_ONLY, replacement="\\1T00:00:00Z")
    return pc.replace_substring_regex(array, pattern=_NO_ZONE, replacement="\\1Z")


def _parse_with_format(array: pa.Array, field: pa.Field, fmt: str) -> tuple[pa.Array, pa.Array | None, str]:
    import pyarrow.compute as pc

    target = field.type
    unit = target.unit if pa.types.is_timestamp(target) else "s"
    parsed = pc.strptime(array, format=fmt, unit=unit, error_is_null=True)
    bad = pc.and_(pc.is_valid(array), pc.is_null(parsed))
    if pa.types.is_timestamp(target) and target.tz:
        parsed = pc.assume_timezone(parsed, target.tz)
    result = pc.cast(parsed, target)
    if not pc.any(bad).as_py():
        return result, None, ""
    return result, bad, f"{field.name}: not a date in the format {fmt}"


def _bisect_failures(array: pa.Array, target: pa.DataType, offset: int = 0) -> list[int]:
    """Indices of the values that fail to cast, found by halving the failing slices."""
    import pyarrow.compute as pc

    try:
        pc.cast(array, target)
        return []
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if len(array) == 1:
            return [offset]
    half = len(array) // 2
    return _bisect_failures(array.slice(0, half), target, offset) + _bisect_failures(
        array.slice(half), target, offset + half
    )


def _mask(length: int, rows: list[int]) -> pa.Array:
    flags = np.zeros(length, dtype=bool)
    flags[rows] = True
    return bool_mask(flags)


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_boolean(t):
        return "boolean"
    return str(t)
