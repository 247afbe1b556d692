"""JSON records to Arrow columns, one column at a time, by a path into each record.

`PageParser` maps top-level keys to columns; many APIs nest what matters — JSON:API under
`attributes` and `relationships` (`attributes.email`, `relationships.profile.data.id`),
Mailchimp under `merge_fields.FNAME` or `tags[].name` — and write unknown timestamps as ""
rather than null. A column here is a dotted path or a function of the record; values that do
not fit the declared type are handed over as text, so the engine quarantines those rows with
a reason instead of the read crashing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from threadline.http.schema import is_json_field

Getter = str | Callable[[dict[str, Any]], Any]


def get_path(record: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def to_batch(records: list[dict[str, Any]], schema: pa.Schema, getters: Mapping[str, Getter]) -> pa.RecordBatch:
    """`records` as a batch of `schema`; column `c` is `getters[c]` (default: the key `c`)."""
    columns = []
    for field in schema:
        getter = getters.get(field.name, field.name)
        if callable(getter):
            values = [getter(r) for r in records]
        elif "." in getter:
            values = [get_path(r, getter) for r in records]
        else:
            values = [r.get(getter) for r in records]
        columns.append(to_array(values, field))
    return pa.RecordBatch.from_arrays(columns, names=schema.names)


def to_array(values: list[Any], field: pa.Field) -> pa.Array:
    if is_json_field(field):
        return pa.array([None if v is None else json.dumps(v, separators=(",", ":")) for v in values], pa.string())
    if pa.types.is_timestamp(field.type) or pa.types.is_date(field.type):
        # "" means unknown in these APIs; a number or an object is not a time: text, so the
        # engine quarantines the row rather than reading 12345 as microseconds after 1970.
        text = pa.array([None if v in ("", None) else v if isinstance(v, str) else json.dumps(v) for v in values],
                        pa.string())
        try:
            return text.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return text  # the engine says which rows do not parse
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        # A value of an unexpected type: text, for the engine to coerce or quarantine.
        return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values], pa.string())
