"""Arrow types → Postgres column types, and fitting a batch to a table's columns.

Batches go in by binary COPY (the ADBC driver's bulk ingest), which needs every Arrow column
to be exactly the column's type (an int64 into an integer column is refused). So a batch is
first cast to the table's types — the reverse of the postgres source's mapping — and only
when that fails (a text value in what was an integer column: the source's type changed) is
the column altered to the new type.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import FatalError
from threadline.http.schema import is_json_field
from threadline_postgres.types import arrow_type, is_json, is_uuid

_INTEGERS = {8: "smallint", 16: "smallint", 32: "integer", 64: "bigint"}


def pg_type(f: pa.Field) -> str:
    """The column type a new column gets for an Arrow field."""
    t = f.type
    if is_uuid(t):
        return "uuid"
    if is_json(t) or ((pa.types.is_string(t) or pa.types.is_large_string(t)) and is_json_field(f)):
        return "jsonb"
    if pa.types.is_dictionary(t):
        return pg_type(f.with_type(t.value_type))
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_signed_integer(t):
        return _INTEGERS[t.bit_width]
    if pa.types.is_unsigned_integer(t):
        return {8: "smallint", 16: "integer", 32: "bigint"}.get(t.bit_width, "numeric(20,0)")
    if pa.types.is_floating(t):
        return "double precision" if t.bit_width == 64 else "real"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_interval(t) or pa.types.is_duration(t):
        return "interval"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = pg_type(pa.field("item", t.value_type))
        if inner.endswith("[]") or inner == "jsonb":
            raise _unsupported(f)
        return inner + "[]"
    raise _unsupported(f)


def _unsupported(f: pa.Field) -> FatalError:
    return FatalError(f"column {f.name!r} is {f.type}, which has no Postgres column type here",
                      hint="declare the column as `json` in the source (nested values land as jsonb)")


def column_arrow_type(typname: str, typmod: int, elem: str | None) -> pa.DataType:
    """What a table's existing column takes, as Arrow (the source's mapping)."""
    if typname in ("time", "timetz"):
        return pa.time64("us") if typname == "time" else pa.string()
    return arrow_type(typname, typmod, elem)


def fit(array: pa.Array, field: pa.Field, target: pa.DataType) -> pa.Array | None:
    """`array` as `target` (the column's type), or None when its values do not fit it."""
    if array.type == target:
        return array
    if isinstance(target, pa.BaseExtensionType):
        storage = array.storage if isinstance(array.type, pa.BaseExtensionType) else array
        if is_json(target) and (pa.types.is_string(storage.type) or pa.types.is_large_string(storage.type)):
            return pa.ExtensionArray.from_storage(target, pc.cast(storage, pa.string()))
        if is_uuid(target) and pa.types.is_fixed_size_binary(storage.type):
            return pa.ExtensionArray.from_storage(target, storage)
        return None
    if isinstance(array.type, pa.BaseExtensionType):
        array = array.storage
        if array.type == target:
            return array
        if pa.types.is_string(target) and pa.types.is_fixed_size_binary(array.type):
            return None
    try:
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
