"""Arrow types from the short names used in job files and declarative streams: the one
`parse_type` every connector uses.

    string  int64  int32  float64  bool  date  timestamp  timestamp(tz=Europe/Paris)
    decimal(18,2)  json  binary  list<string>  struct<city: string, postcode: string>
    list<struct<price: decimal(12,2), qty: int64>>

`json` is a string column holding a JSON document (nested data kept as text; a field made
with `threadline.http.schema.field_for` carries the JSON mark of `threadline.contracts`);
`struct<...>` keeps a nested value as an Arrow struct, and must name its fields;
`timestamp` without a zone is microseconds, UTC.
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
_HINT = f"use one of: {', '.join(sorted(set(_SIMPLE)))}, decimal(P,S), timestamp(tz=ZONE), list<TYPE>, struct<name: type, ...>"


def parse_type(name: str, where: str = "") -> pa.DataType:
    """The Arrow type for a type string; a ConfigError naming `where` (the config field) and
    listing the valid names when it is unknown."""
    spec = name.strip()
    text = spec.lower()
    if text in _SIMPLE:
        return _SIMPLE[text]
    if m := _DECIMAL.match(text):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if m := _TIMESTAMP.match(spec):
        tz = m.group(1).strip()
        return pa.timestamp("us", tz=tz or None) if tz.lower() != "none" else pa.timestamp("us")
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(parse_type(spec[5:-1], where))
    if text.startswith("struct<") and text.endswith(">"):
        return pa.struct([pa.field(n, parse_type(kind, f"{where}.{n}" if where else n))
                          for n, kind in split_fields(spec[7:-1], where)])
    if text == "struct":
        raise ConfigError("a struct needs its fields, e.g. struct<city: string, postcode: string>", field=where,
                          where=where, hint="or use `json` to keep the nested object as JSON text")
    raise ConfigError(f"unknown type {name!r}", field=where, where=where, hint=_HINT)


def split_fields(body: str, where: str = "") -> list[tuple[str, str]]:
    """`a: string, b: struct<c: int64, d: string>` → [(a, string), (b, struct<...>)]."""
    parts, depth, current = [], 0, ""
    for ch in body:  # commas inside <...> or (...) (as in decimal(18,2)) do not split fields
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    fields = []
    for part in parts:
        field_name, sep, kind = part.partition(":")
        if not sep or not field_name.strip():
            raise ConfigError(f"struct field {part.strip()!r} should read `name: type`", field=where, where=where)
        fields.append((field_name.strip(), kind.strip()))
    return fields


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
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in t) + ">"
    return str(t)
