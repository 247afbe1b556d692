"""JSON Schema (as Singer taps declare it) to Arrow and back.

Singer streams describe records with JSON Schema. The mapping:

    integer                    -> int64
    number                     -> float64
    boolean                    -> bool
    string                     -> string
    string, format date-time   -> timestamp[us, UTC]
    string, format date        -> date32
    object with properties     -> struct (or JSON text, with nested="json")
    array with typed items     -> list (or JSON text, with nested="json")
    anything else              -> JSON text: a string column holding a JSON document

"null" among the types (or an anyOf/oneOf with a null branch) makes the field nullable.
A JSON-text field carries the JSON mark of `threadline.contracts` (``encoding: json``) so that
readers know to serialise the value rather than expect a string.

The reverse direction (Arrow to JSON Schema) is used when threadline speaks Singer: the
`singer` destination and the `tap-threadline` export.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

from threadline.contracts import JSON_KEY, JSON_VALUE, is_json_field, json_field

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

Nested = Literal["struct", "json"]


__all__ = ["JSON_KEY", "JSON_VALUE", "is_json_field", "json_schema_to_arrow", "json_schema_to_field"]


def _json_field(name: str) -> pa.Field:
    return json_field(name)


def _types_of(schema: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The non-null alternatives of a JSON Schema node, and whether null is allowed."""
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        alternatives: list[dict[str, Any]] = []
        nullable = False
        for branch in branches:
            inner, inner_null = _types_of(branch)
            alternatives += inner
            nullable = nullable or inner_null
        return alternatives, nullable
    declared = schema.get("type")
    if declared is None:
        return ([schema] if schema.get("properties") else []), True
    names = [declared] if isinstance(declared, str) else list(declared)
    nullable = "null" in names
    return [{**schema, "type": name} for name in names if name != "null"], nullable


def json_schema_to_field(name: str, schema: dict[str, Any], *, nested: Nested = "struct") -> pa.Field:
    """The Arrow field for one JSON Schema property."""
    alternatives, nullable = _types_of(schema or {})
    kinds = {alt.get("type", "object") for alt in alternatives}
    if kinds == {"integer", "number"}:  # a common way to say "a number that may be whole"
        alternatives, kinds = [{"type": "number"}], {"number"}
    if len(alternatives) != 1 or len(kinds) != 1:
        return _json_field(name)  # empty schema, or several types: keep the JSON as text
    alt = alternatives[0]
    kind = alt.get("type", "object")
    if kind == "integer":
        return pa.field(name, pa.int64(), nullable)
    if kind == "number":
        return pa.field(name, pa.float64(), nullable)
    if kind == "boolean":
        return pa.field(name, pa.bool_(), nullable)
    if kind == "string":
        fmt = alt.get("format")
        if fmt == "date-time":
            return pa.field(name, UTC_TIMESTAMP, nullable)
        if fmt == "date":
            return pa.field(name, pa.date32(), nullable)
        return pa.field(name, pa.string(), nullable)
    if kind == "object" and alt.get("properties") and nested == "struct":
        # nested members are always nullable: a missing key is a null, not a broken record
        children = [
            json_schema_to_field(k, v, nested=nested).with_nullable(True) for k, v in alt["properties"].items()
        ]
        if any(is_json_field(c) for c in children):
            return _json_field(name)  # a struct cannot hold raw JSON children: keep it whole
        return pa.field(name, pa.struct(children), nullable)
    if kind == "array" and nested == "struct" and isinstance(alt.get("items"), dict) and alt["items"]:
        item = json_schema_to_field("item", alt["items"], nested=nested).with_nullable(True)
        if not is_json_field(item):
            return pa.field(name, pa.list_(item), nullable)
    return _json_field(name)


def json_schema_to_arrow(schema: dict[str, Any], *, nested: Nested = "struct") -> pa.Schema:
    """The Arrow schema for a Singer stream's JSON Schema (its top-level properties)."""
    properties = (schema or {}).get("properties") or {}
    return pa.schema([json_schema_to_field(name, prop, nested=nested) for name, prop in properties.items()])


# --------------------------------------------------------------------------- Arrow -> JSON Schema


def arrow_type_to_json_schema(t: pa.DataType, nullable: bool = True) -> dict[str, Any]:
    """The JSON Schema for values of Arrow type `t`."""

    def typed(name: str, **extra: Any) -> dict[str, Any]:
        return {"type": [name, "null"] if nullable else name, **extra}

    if pa.types.is_dictionary(t):
        return arrow_type_to_json_schema(t.value_type, nullable)
    if pa.types.is_boolean(t):
        return typed("boolean")
    if pa.types.is_integer(t):
        return typed("integer")
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return typed("number")
    if pa.types.is_timestamp(t):
        return typed("string", format="date-time")
    if pa.types.is_date(t):
        return typed("string", format="date")
    if pa.types.is_time(t):
        return typed("string", format="time")
    if pa.types.is_struct(t):
        props = {t.field(i).name: arrow_type_to_json_schema(t.field(i).type) for i in range(t.num_fields)}
        return typed("object", properties=props)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return typed("array", items=arrow_type_to_json_schema(t.value_type))
    if pa.types.is_map(t):
        return typed("object")
    if pa.types.is_null(t):
        return {"type": "null"}
    return typed("string")  # strings, binaries (base64 is not implied), anything else as text


# Any JSON value, object first: Singer targets built on singer-sdk take the first anyOf branch
# they can type, so a JSON column becomes an object (JSONB in target-postgres), not text,
# while arrays and scalars still validate.
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "object"}, {"type": "array"}, {"type": ["string", "number", "boolean", "null"]}],
}


def arrow_field_to_json_schema(field: pa.Field) -> dict[str, Any]:
    """The JSON Schema of one Arrow field; JSON-text fields are declared as any JSON value."""
    if is_json_field(field):
        return {"anyOf": [dict(branch) for branch in JSON_VALUE_SCHEMA["anyOf"]]}
    return arrow_type_to_json_schema(field.type, field.nullable)


def arrow_to_json_schema(schema: pa.Schema) -> dict[str, Any]:
    """The JSON Schema (an object with properties) for records of an Arrow schema."""
    return {
        "type": "object",
        "properties": {field.name: arrow_field_to_json_schema(field) for field in schema},
    }
