"""MySQL/MariaDB column types → Arrow types (information_schema.columns → the stream schema).

    tinyint/smallint/mediumint/int/bigint → int8/int16/int32/int32/int64 (unsigned: uint8…uint64)
    decimal(p,s) → decimal128(p,s) (decimal256 beyond 38 digits)   float → float32   double → float64
    date → date32   datetime → timestamp[us]   timestamp → timestamp[us, UTC] (read with time_zone +00:00)
    time → time64[us] (hours beyond 0–23 do not fit: read as text with `columns`)   year → int16
    char/varchar/text/enum/set → string   json → arrow.json   binary/varbinary/blob/bit → binary
    anything else (geometry …) → binary, as the server sends it
"""

from __future__ import annotations

import pyarrow as pa

_INTS = {"tinyint": 8, "smallint": 16, "mediumint": 32, "int": 32, "integer": 32, "bigint": 64}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"}


def arrow_type(data_type: str, column_type: str, precision: int | None, scale: int | None) -> pa.DataType:
    kind = data_type.lower()
    unsigned = "unsigned" in column_type.lower()
    if kind in _INTS:
        bits = _INTS[kind]
        if unsigned:
            return {8: pa.uint8(), 16: pa.uint16(), 32: pa.uint32(), 64: pa.uint64()}[bits]
        return {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[bits]
    if kind in ("decimal", "numeric"):
        p, s = int(precision or 10), int(scale or 0)
        return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)
    if kind == "float":
        return pa.float32()
    if kind in ("double", "real"):
        return pa.float64()
    if kind == "date":
        return pa.date32()
    if kind == "datetime":
        return pa.timestamp("us")
    if kind == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if kind == "time":
        return pa.time64("us")
    if kind == "year":
        return pa.int16()
    if kind == "json":
        return pa.json_()
    if kind in _TEXT:
        return pa.string()
    return pa.binary()
