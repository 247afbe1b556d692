"""LoyaltyLion's nested JSON as flat Arrow columns, declared as dotted paths.

    COLUMNS = {"tier_name": "loyalty_tier_membership.loyalty_tier.name", "phone": "properties.phone"}

A page's records become one Arrow struct array in a single conversion (`pa.array(records,
raw_type)`), and each column is then a chain of `struct_field` kernels: no Python per record
for the values. A column whose type is `json` keeps its value as JSON text. When a value does
not fit its declared type (a points balance of "12,000"), the page is read again path by path
in Python and that column is handed over as text; the engine then quarantines the rows it
cannot coerce, each with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from threadline.http.schema import is_json_field


def raw_type(schema: pa.Schema, paths: Mapping[str, str]) -> pa.StructType:
    """The nested struct type that holds every (non-json) column of `schema` at its path."""
    tree: dict[str, Any] = {}
    for f in schema:
        if is_json_field(f):
            continue
        *parents, leaf = paths.get(f.name, f.name).split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        # Dates and times stay ISO text here: the engine casts them in bulk (Arrow cannot
        # convert text to a timestamp while building from Python objects).
        node[leaf] = pa.string() if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type) else f.type
    return _struct(tree)


def _struct(tree: dict[str, Any]) -> pa.StructType:
    return pa.struct([(k, _struct(v) if isinstance(v, dict) else v) for k, v in tree.items()])


def to_batch(records: list[dict[str, Any]], schema: pa.Schema, paths: Mapping[str, str],
             kind: pa.StructType | None = None) -> pa.RecordBatch:
    """`records` (dicts as the API sent them) as a batch of `schema`'s columns."""
    kind = kind or raw_type(schema, paths)
    try:
        nested = pa.array(records, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return _careful(records, schema, paths)
    arrays = []
    for f in schema:
        path = paths.get(f.name, f.name).split(".")
        if is_json_field(f):
            arrays.append(pa.array([_dumps(_get(r, path)) for r in records], pa.string()))
            continue
        column: pa.Array = nested
        for key in path:
            column = pc.struct_field(column, key)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


def _careful(records: list[dict[str, Any]], schema: pa.Schema, paths: Mapping[str, str]) -> pa.RecordBatch:
    arrays = []
    for f in schema:
        values = [_get(r, paths.get(f.name, f.name).split(".")) for r in records]
        if is_json_field(f):
            arrays.append(pa.array([_dumps(v) for v in values], pa.string()))
            continue
        try:
            arrays.append(pa.array(values, f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            arrays.append(pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values], pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


def _get(record: Any, path: list[str]) -> Any:
    for key in path:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)
