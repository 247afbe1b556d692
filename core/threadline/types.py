"""Arrow types from the short names used in job files and declarative streams.

    string  int64  int32  float64  bool  date  timestamp  timestamp(tz=UTC)
    decimal(18,2)  json  binary  list<string>

`json` is a string column holding a JSON document (nested data kept as text); `timestamp`
without a zone is microseconds, UTC.
"""

from __future__ import annotations

import re

import pyarrow as pa

from threadline.contracts import ConfigError

_SIMPLE: dict[str, pa.DataType] = {
    "string": pa.string(),
    "str": pa.string(),
    "text": pa.string(),
    "json": pa.string(),
    "int": pa.int64(),
    "int64": pa.int64(),
    "integer": pa.int64(),
    "int32": pa.int32(),
    "float": pa.float64(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "number": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "datetime": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
}
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_TIMESTAMP = re.compile(r"^timestamp\(\s*(?:tz\s*=\s*)?([^)]*)\)$")
_LIST = re.compile(r"^list<(.+)>$")


def parse_type(name: str, *, where: str = "") -> pa.DataType:
    """The Arrow type for a short type name; a ConfigError listing the valid names if unknown."""
    text = name.strip().lower()
    if text in _SIMPLE:
        return _SIMPLE[text]
    if m := _DECIMAL.match(text):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if m := _TIMESTAMP.match(name.strip()):
        tz = m.group(1).strip()
        return pa.timestamp("us", tz=tz or None) if tz.lower() != "none" else pa.timestamp("us")
    if m := _LIST.match(text):
        return pa.list_(parse_type(m.group(1), where=where))
    raise ConfigError(
        f"unknown type {name!r}",
        where=where,
        hint=f"use one of: {', '.join(sorted(set(_SIMPLE)))}, decimal(P,S), timestamp(tz=ZONE), list<TYPE>",
    )


def type_name(t: pa.DataType) -> str:
    """The short name for an Arrow type (the inverse of parse_type where one exists)."""
    for name, candidate in _SIMPLE.items():
        if candidate == t and name not in ("str", "text", "json", "int", "integer", "float", "double", "number", "boolean", "datetime"):
            return name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return f"timestamp(tz={t.tz})" if t.tz else "timestamp(tz=none)"
    if pa.types.is_list(t):
        return f"list<{type_name(t.value_type)}>"
    return str(t)
