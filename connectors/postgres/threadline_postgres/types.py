"""Postgres column types → Arrow types, and the text → Arrow conversions CDC needs.

One mapping serves both ways of reading, so a table's rows have the same Arrow schema
whether they came from a bulk read (the ADBC driver's binary COPY) or from the replication
slot (pgoutput's text values):

    bool → bool             int2/int4/int8 → int16/int32/int64    float4/float8 → float32/float64
    numeric(p,s) → decimal128(p,s), decimal256 beyond 38 digits; numeric without a precision → string
    text, varchar, char, name → string      date → date32     time → time64[us]
    timestamp → timestamp[us]   timestamptz → timestamp[us, UTC]    interval → month_day_nano
    uuid → arrow.uuid           json, jsonb → arrow.json            bytea → binary
    arrays of the types above (one dimension) → list<…>
    anything else (enums, inet, money, ranges, geometry, composite types …) → string, as Postgres
    prints it (the type's output function)

The CDC conversions are column-at-a-time Arrow kernels, with two exceptions kept out of the
hot path: intervals and arrays whose text has quoted elements are parsed per value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from threadline_postgres.sql import quote_ident

_SCALARS: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(),
    "float4": pa.float32(), "float8": pa.float64(),
    "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(), "name": pa.string(),
    "date": pa.date32(), "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
    "uuid": pa.uuid(), "json": pa.json_(), "jsonb": pa.json_(),
    "bytea": pa.binary(), "interval": pa.month_day_nano_interval(),
}
# element types whose arrays the bulk reader returns natively as Arrow lists
_ARRAY_ELEMENTS = {"bool", "int2", "int4", "int8", "float4", "float8", "text", "varchar", "bpchar",
                   "date", "timestamp", "timestamptz"}


@dataclass(frozen=True)
class Column:
    """One column as the catalog describes it."""

    name: str
    typname: str  # pg_type.typname of the column's (base) type; arrays start with "_"
    typmod: int = -1
    elem: str | None = None  # the element's typname, for arrays
    not_null: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.typname, self.typmod, self.elem)

    @property
    def as_text(self) -> bool:
        """Whether the select must cast this column to text (a type read as string)."""
        t = self.arrow_type
        return pa.types.is_string(t) and self.typname not in ("text", "varchar", "bpchar", "name")

    def select_expr(self) -> str:
        name = quote_ident(self.name)
        if not self.as_text:
            return name
        # format() prints through the type's output function, as pgoutput does (a cast to text
        # may differ: inet's keeps the /32)
        return f"case when {name} is null then null else format('%s', {name}) end AS {name}"


def numeric_type(typmod: int) -> pa.DataType:
    """numeric(p,s) as a decimal; an unconstrained numeric (any precision) stays exact as text."""
    if typmod < 4:
        return pa.string()
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    if scale > precision or precision == 0:  # a negative scale (Postgres 15) wraps around
        return pa.string()
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def arrow_type(typname: str, typmod: int = -1, elem: str | None = None) -> pa.DataType:
    if typname == "numeric":
        return numeric_type(typmod)
    if typname in _SCALARS:
        return _SCALARS[typname]
    if elem and typname.startswith("_") and elem in _ARRAY_ELEMENTS:
        return pa.list_(_SCALARS[elem])
    return pa.string()


def is_json(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.json"


def is_uuid(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid"


# --------------------------------------------------------------------------- bulk read results


def plain(array: pa.Array) -> pa.Array:
    """The driver's opaque extension columns (numeric arrives as `arrow.opaque` text) as their
    storage, so the engine's cast kernel can type them."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array.type, pa.BaseExtensionType) and array.type.extension_name == "arrow.opaque":
        return array.storage
    return array


def plain_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A bulk-read batch without the driver's per-field metadata and opaque wrappers."""
    arrays = [plain(c) for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


# --------------------------------------------------------------------------- text → Arrow (CDC)


def from_text(values: pa.Array, target: pa.DataType) -> pa.Array:
    """pgoutput's text values of one column → `target`, as Postgres prints them with
    DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601 and bytea_output hex.

    A value that does not convert stays text for the engine's cast, which quarantines its row
    with the reason rather than failing the batch.
    """
    if pa.types.is_string(target):
        return values
    if pa.types.is_boolean(target):
        return pc.equal(values, "t")
    if is_uuid(target):
        return _uuid_from_text(values)
    if is_json(target):
        return pc.cast(values, target)
    if pa.types.is_binary(target):
        return _bytea_from_text(values)
    if pa.types.is_time(target):
        return pc.cast(pc.cast(pc.binary_join_element_wise("1970-01-01 ", values, ""), pa.timestamp("us")), target)
    if pa.types.is_interval(target):
        return pa.array([_interval(v) for v in values.to_pylist()], target)  # rare: per value
    if pa.types.is_list(target):
        return _array_from_text(values, target.value_type)
    return values  # numbers, decimals, dates, timestamps: the engine's cast kernel types them


_HEX = np.full(256, 0, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _hex_pairs(chars: np.ndarray) -> np.ndarray:
    return (_HEX[chars[0::2]] << 4) | _HEX[chars[1::2]]


def _offsets(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets and bytes of a string array (not a slice of another one)."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[: len(strings) + 1]
    data = strings.buffers()[2]
    return offsets, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))


def _uuid_from_text(values: pa.Array) -> pa.Array:
    """'a0eebc99-9c0b-…' (36 characters) → arrow.uuid, for the whole column at once."""
    digits = pc.replace_substring(pc.fill_null(values, "0" * 32), "-", "")
    offsets, data = _offsets(digits)
    raw = _hex_pairs(data[offsets[0]: offsets[-1]])
    storage = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(values), [None, pa.py_buffer(raw.tobytes())])
    storage = pc.if_else(values.is_valid(), storage, pa.scalar(None, pa.binary(16)))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def _bytea_from_text(values: pa.Array) -> pa.Array:
    """'\\x00ff…' → binary, for the whole column at once."""
    hexes = pc.utf8_slice_codeunits(pc.fill_null(values, "\\x"), 2)  # drop the "\x"
    offsets, data = _offsets(hexes)
    raw = _hex_pairs(data[offsets[0]: offsets[-1]])
    starts = ((offsets - offsets[0]) // 2).astype(np.int32)
    out = pa.BinaryArray.from_buffers(pa.binary(), len(values), [None, pa.py_buffer(starts.tobytes()),
                                                                 pa.py_buffer(raw.tobytes())])
    return pc.if_else(values.is_valid(), out, pa.scalar(None, pa.binary()))


def _array_from_text(values: pa.Array, element: pa.DataType) -> pa.Array:
    """'{1,2,NULL}' → list<element>. Arrays without quoted elements are split by kernels;
    the rest (text with commas, quotes or braces inside) by a small parser per value."""
    if pc.any(pc.match_substring(values, '"')).as_py():
        items = pa.array([_parse_array(v) for v in values.to_pylist()], pa.list_(pa.string()))
        flat = pc.list_flatten(items)
    else:
        inner = pc.utf8_slice_codeunits(values, 1, -1)
        items = pc.split_pattern(inner, ",")
        items = pc.if_else(pc.equal(inner, ""), pa.scalar([], pa.list_(pa.string())), items)
        flat = pc.list_flatten(items)
        flat = pc.if_else(pc.equal(flat, "NULL"), pa.scalar(None, pa.string()), flat)
    typed = pc.cast(from_text(flat, element), element)
    return pa.ListArray.from_arrays(items.offsets, typed, mask=pc.invert(items.is_valid()))


def _parse_array(text: str | None) -> list[str | None] | None:
    if text is None:
        return None
    out: list[str | None] = []
    i, n = 1, len(text) - 1
    while i < n:
        if text[i] == '"':
            j, buf = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    j += 1
                buf.append(text[j])
                j += 1
            out.append("".join(buf))
            i = j + 2
        else:
            j = text.find(",", i)
            j = n if j < 0 else j
            token = text[i:j]
            out.append(None if token == "NULL" else token)
            i = j + 1
    return out


_ISO_INTERVAL = re.compile(
    r"^(?P<sign>-)?P(?:(?P<y>-?\d+)Y)?(?:(?P<mo>-?\d+)M)?(?:(?P<w>-?\d+)W)?(?:(?P<d>-?\d+)D)?"
    r"(?:T(?:(?P<h>-?\d+)H)?(?:(?P<mi>-?\d+)M)?(?:(?P<s>-?[\d.]+)S)?)?$")


def _interval(text: str | None) -> pa.MonthDayNano | None:
    if text is None:
        return None
    m = _ISO_INTERVAL.match(text)
    if m is None:
        return None
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    months = int(g.get("y", 0)) * 12 + int(g.get("mo", 0))
    days = int(g.get("w", 0)) * 7 + int(g.get("d", 0))
    nanos = round((int(g.get("h", 0)) * 3600 + int(g.get("mi", 0)) * 60 + float(g.get("s", 0))) * 1e9)
    return pa.MonthDayNano([months, days, nanos])
