"""Stream schemas written as `column: type` strings, the way job files and declarations say them.

    string  int64  int32  float64  bool  date  timestamp  timestamp(tz=Europe/Paris)
    decimal(18,2)  list<string>  struct<city: string, postcode: string>  json

Type names are `threadline.types.parse_type`'s (one vocabulary for every connector). `json`
keeps a nested value as JSON text (a string column carrying the JSON mark of
`threadline.contracts`) for objects whose shape varies; `struct<...>` keeps it as an Arrow
struct. A bare `struct` is an error: a struct's fields must be declared, or `json` chosen.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from threadline.contracts import ConfigError, is_json_field, json_field
from threadline.types import parse_type

__all__ = ["field_for", "is_json_field", "parse_type", "schema_from_mapping"]


def field_for(name: str, type_text: str, where: str = "schema") -> pa.Field:
    """One schema field; `json` columns carry the JSON mark so parsers serialise them."""
    if type_text.strip().lower() == "json":
        return json_field(name)
    return pa.field(name, parse_type(type_text, f"{where}.{name}"), nullable=True)


def schema_from_mapping(columns: Mapping[str, str], where: str = "schema") -> pa.Schema:
    """`{"id": "int64", "email": "string"}` → an Arrow schema, in the mapping's order."""
    if not columns:
        raise ConfigError("a stream needs at least one column in its schema", field=where)
    return pa.schema([field_for(name, kind, where) for name, kind in columns.items()])
