"""Stream schemas written as `column: type` strings, the way job files and declarations say them.

    string  int64  int32  float64  bool  date  timestamp  timestamp(tz=Europe/Paris)
    decimal(18,2)  list<string>  struct<city: string, postcode: string>  json

`json` keeps a nested value as JSON text (a string column marked with field metadata) for
objects whose shape varies; `struct<...>` keeps it as an Arrow struct. A bare `struct` is
an error: a struct's fields must be declared, or `json` chosen.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from threadline import types as core_types
from threadline.contracts import ConfigError

JSON_METADATA = {b"threadline.json": b"true"}


def parse_type(text: str, where: str = "type") -> pa.DataType:
    """The Arrow type for a type string (`json` gives string; use `field_for` to keep the mark).

    Scalar names are `threadline.types.parse_type`'s (one vocabulary for every connector);
    this adds `struct<...>` and lists of structs, which nested JSON needs."""
    spec = text.strip()
    lowered = spec.lower()
    if lowered.startswith("list<") and lowered.endswith(">"):
        return pa.list_(parse_type(spec[5:-1], where))
    if lowered.startswith("struct<") and lowered.endswith(">"):
        return pa.struct([field_for(name, kind, where) for name, kind in _split_fields(spec[7:-1], where)])
    if lowered == "struct":
        raise ConfigError(
            "a struct needs its fields, e.g. struct<city: string, postcode: string>", field=where,
            hint="or use `json` to keep the nested object as JSON text",
        )
    try:
        return core_types.parse_type(spec)
    except ConfigError as exc:
        raise ConfigError(exc.message, field=where, hint=exc.hint + ", struct<name: type, ...>") from None


def field_for(name: str, type_text: str, where: str = "schema") -> pa.Field:
    """One schema field; `json` columns carry metadata so the page parser serialises them."""
    arrow_type = parse_type(type_text, f"{where}.{name}")
    metadata = JSON_METADATA if type_text.strip().lower() == "json" else None
    return pa.field(name, arrow_type, nullable=True, metadata=metadata)


def schema_from_mapping(columns: Mapping[str, str], where: str = "schema") -> pa.Schema:
    """`{"id": "int64", "email": "string"}` → an Arrow schema, in the mapping's order."""
    if not columns:
        raise ConfigError("a stream needs at least one column in its schema", field=where)
    return pa.schema([field_for(name, kind, where) for name, kind in columns.items()])


def is_json_field(f: pa.Field) -> bool:
    return bool(f.metadata and f.metadata.get(b"threadline.json") == b"true")


def _split_fields(body: str, where: str) -> list[tuple[str, str]]:
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
        name, sep, kind = part.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"struct field {part.strip()!r} should read `name: type`", field=where)
        fields.append((name.strip(), kind.strip()))
    return fields
