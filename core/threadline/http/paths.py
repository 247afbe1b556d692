"""Column paths: nested JSON records to flat Arrow columns, in bulk.

A stream's columns are declared as paths into each record:

    columns = {
        "email": "attributes.email",                                    # a dotted path
        "tags": "tags[].name",                                          # `[]`: every item of a list
        "profile_url": "entities.url.urls[0].expanded_url",             # `[0]`: the first item
        "first_name": Column("merge_fields.FNAME", blank_is_null=True), # "" read as null
    "visits": Column("properties.visits", text=True),               # sent as "12": cast in bulk
    }

A column without an entry is the record's key of the same name. A page's records become
one Arrow struct array holding only the declared paths (the *wire type*), either straight
from the raw bytes (`pyarrow.json`) or in one conversion from parsed JSON; each column is
then a chain of compute kernels over it: no Python runs per record for typed columns.
Columns of type `json` keep their value as JSON text (that text is made per value: it is
what a JSON column is). Times, dates and decimals travel as text and are cast in bulk;
"" is null there (APIs write unknown times as ""); a column whose values do not all cast
stays text, and the engine quarantines the rows at fault with a reason.

An absent list read through `[]` is an empty list; through `[0]`, null.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter, methodcaller
from typing import Any, Union

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import is_json_field

_STEP = re.compile(r"^([^\[\]]+)(\[\]|\[0\])?$")


@dataclass(frozen=True)
class Column:
    """A column's path, with how to read it. `blank_is_null`: "" is read as null. `text`: the
    API sends the value as a string whatever its type ("12", "true"); it is cast in bulk."""

    path: str
    blank_is_null: bool = False
    text: bool = False


ColumnSpec = Union[str, Column]


@dataclass(frozen=True)
class _Step:
    key: str
    over: str = ""  # "" (a value), "[]" (each item of a list) or "[0]" (the first item)


def parse_path(path: str) -> tuple[_Step, ...]:
    """`a.b[].c` → steps; a ValueError naming the path when it cannot be read."""
    steps = []
    for part in path.split("."):
        match = _STEP.match(part)
        if not match:
            raise ValueError(f"column path {path!r}: {part!r} is not a key, key[] or key[0]")
        steps.append(_Step(match.group(1), match.group(2) or ""))
    if sum(1 for s in steps if s.over) > 1:
        raise ValueError(f"column path {path!r}: at most one [] or [0] per path")
    return tuple(steps)


def wire_type_of(t: pa.DataType, text: bool = False) -> pa.DataType:
    """How a value travels before it is cast: times, dates and decimals as text (cast in bulk
    afterwards, "" as null); any scalar as text when the API sends it as a string."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_decimal(t):
        return pa.string()
    if text and not pa.types.is_nested(t):
        return pa.string()
    return t


def fast_wire_type_of(t: pa.DataType, text: bool = False) -> pa.DataType:
    """How a value is read by `pyarrow.json` from the raw bytes: in its own type (the reader
    parses ISO times, epoch numbers and decimal strings), except dates (which it cannot
    parse) and values the API sends as strings whatever their type."""
    if pa.types.is_date(t) or (text and not pa.types.is_nested(t)):
        return pa.string()
    return t


class ColumnPlan:
    """The columns of `schema` (plus helper columns not in it), read by path from records."""

    def __init__(self, schema: pa.Schema, columns: Mapping[str, ColumnSpec] | None = None, *,
                 fixed: frozenset[str] = frozenset(), other_fields: str | None = None) -> None:
        columns = dict(columns or {})
        self.schema = schema
        self.other_fields = other_fields  # a json column keeping the record's undeclared top-level fields
        self.fixed = fixed  # columns filled from outside the record (a partition's values)
        self.specs: dict[str, Column] = {}
        for f in schema:
            if f.name not in fixed:
                spec = columns.pop(f.name, f.name)
                self.specs[f.name] = spec if isinstance(spec, Column) else Column(spec)
        # helper columns: parsed for the paginator, never part of a batch
        self.helpers = {name: spec if isinstance(spec, Column) else Column(spec) for name, spec in columns.items()}
        self.types = {f.name: f for f in schema}
        self.steps = {name: parse_path(spec.path) for name, spec in {**self.specs, **self.helpers}.items()}
        self.json_columns = {name for name in self.specs if is_json_field(self.types[name])}
        if other_fields:
            self.json_columns.add(other_fields)
            self.steps.pop(other_fields, None)
            self.specs.pop(other_fields, None)
        self.declared_keys = {steps[0].key for steps in self.steps.values()}
        tree: dict[str, Any] = {}
        fast_tree: dict[str, Any] = {}
        for name, steps in self.steps.items():
            if name in self.json_columns:
                continue
            target = self.types[name].type if name in self.types else pa.string()
            if any(s.over == "[]" for s in steps):  # the path reaches each item: its type is the list's
                if not pa.types.is_list(target):
                    raise ValueError(f"column {name!r}: a path with [] gives a list, but the column is {target}")
                target = target.value_type
            spec = self.specs.get(name) or self.helpers[name]
            _plant(tree, steps, wire_type_of(target, spec.text), name)
            _plant(fast_tree, steps, fast_wire_type_of(target, spec.text), name)
        self.wire_type: pa.StructType = _struct(tree)  # for parsed JSON: `pa.array(records, wire_type)`
        self.fast_wire_type: pa.StructType = _struct(fast_tree)  # for the raw bytes: `pyarrow.json`

    # ------------------------------------------------------------------ records → columns

    def columns_from(self, nested: pa.Array) -> dict[str, pa.Array]:
        """Every typed column (and helper) from the wire struct array."""
        out = {}
        children: dict[tuple[str, ...], pa.Array] = {(): nested}  # struct paths already taken apart, this page
        for name, steps in self.steps.items():
            if name in self.json_columns:
                continue
            value = _follow(nested, steps, children)
            spec = self.specs.get(name) or self.helpers[name]
            if spec.blank_is_null and pa.types.is_string(value.type):
                value = pc.if_else(pc.equal(value, ""), pa.scalar(None, pa.string()), value)
            target = self.types[name].type if name in self.types else None
            out[name] = _cast(value, target) if target is not None else value
        return out

    def json_columns_from(self, records: list[Any]) -> dict[str, pa.Array]:
        """The `json` columns as JSON text, from parsed records (JSON objects: see `_from_body`)."""
        out = {}
        for name in self.json_columns:
            if name == self.other_fields:
                continue
            out[name] = json_texts(_values_at(records, self.steps[name]))
        if self.other_fields:
            out[self.other_fields] = self._others(records)
        return out

    def _others(self, records: list[Any]) -> pa.Array:
        """Each record's undeclared top-level fields as JSON (null when it has none); the keys
        of the whole page are gathered first, so a page without any costs no work per record."""
        extra = set().union(*records) - self.declared_keys if records else set()
        if not extra:
            return pa.nulls(len(records), pa.string())
        keys = sorted(extra)
        getter = itemgetter(*keys)
        try:  # every record has every one of them (the usual page): built in C loops, not a Python loop a record
            rows = list(map(getter, records)) if len(keys) > 1 else list(zip(map(getter, records)))
        except KeyError:
            pass
        else:
            return json_texts(list(map(dict, map(zip, repeat(keys), rows))))
        return pa.array([_dumps({k: r[k] for k in keys if k in r}) if not extra.isdisjoint(r) else None
                         for r in records], pa.string())

    def batch(self, columns: dict[str, pa.Array], length: int, fixed: Mapping[str, Any] | None = None) -> pa.RecordBatch:
        """The schema's columns in order (partition values filled in), plus helpers at the end."""
        fixed = fixed or {}
        arrays, names = [], []
        for f in self.schema:
            if f.name in self.fixed:
                arrays.append(pa.array([fixed.get(f.name)] * length, f.type))
            else:
                arrays.append(columns[f.name])
            names.append(f.name)
        for name in self.helpers:
            arrays.append(columns[name])
            names.append(name)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def from_records(self, records: list[Any]) -> pa.RecordBatch | None:
        """Parsed records in one conversion; None when a value does not fit its wire type."""
        try:
            nested = pa.array(records, self.wire_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            return None
        columns = self.columns_from(nested)
        columns.update(self.json_columns_from(records))
        return self.batch(columns, len(records))

    def careful(self, records: list[Any], convert: Callable[[pa.Field, list[Any]], pa.Array] | None = None,
                ) -> tuple[pa.RecordBatch, list[tuple[Any, str]]]:
        """Value by value, for a page with odd values: each column in its type where it fits,
        as text where it does not (the engine quarantines those rows, with the reason); a record
        whose list column holds something else than a list cannot be a row and is returned
        with the reason. A `convert` of the connector's own does every column instead (and
        answers for such records itself)."""
        rejected: list[tuple[Any, str]] = []
        for name, steps in self.steps.items():
            f = self.types.get(name)
            if convert is None and f is not None and pa.types.is_list(f.type) and not any(s.over for s in steps):
                for r in records:
                    value = _get(r, steps)
                    if value is not None and not isinstance(value, list):
                        rejected.append((r, f"{name}: expected a list, got {type(value).__name__}"))
        if rejected:
            bad = {id(r) for r, _ in rejected}
            records = [r for r in records if id(r) not in bad]
        columns = {self.other_fields: self._others(records)} if self.other_fields else {}
        for name, steps in self.steps.items():
            values = [_get(r, steps) for r in records]
            f = self.types.get(name)
            spec = self.specs.get(name) or self.helpers[name]
            if spec.blank_is_null:
                values = [None if v == "" else v for v in values]
            if name in self.json_columns:
                columns[name] = json_texts(values)
                continue
            if convert is not None and f is not None and not spec.text:
                columns[name] = convert(f, values)
                continue
            columns[name] = _careful_array(values, f.type if f is not None else pa.string(), spec.text)
        return self.batch(columns, len(records)), rejected


# ---------------------------------------------------------------------- the wire tree


def _plant(tree: dict[str, Any], steps: tuple[_Step, ...], leaf: pa.DataType, name: str) -> None:
    node = tree
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if step.over:
            item = node.setdefault(step.key, ["list", {}])
            if not isinstance(item, list):
                raise ValueError(f"column {name!r}: {step.key!r} is read both as a list and as a value")
            if last:
                item[1] = leaf
                return
            node = item[1]
        elif last:
            existing = node.get(step.key)
            if isinstance(existing, (dict, list)):
                raise ValueError(f"column {name!r}: {step.key!r} is read both as an object and as a value")
            node[step.key] = leaf
        else:
            node = node.setdefault(step.key, {})
            if not isinstance(node, dict):
                raise ValueError(f"column {name!r}: {step.key!r} is read both as an object and as a value")


def _struct(tree: dict[str, Any]) -> pa.StructType:
    return pa.struct([(k, _typed(v)) for k, v in tree.items()])


def _typed(node: Any) -> pa.DataType:
    if isinstance(node, dict):
        return _struct(node)
    if isinstance(node, list):
        return pa.list_(_typed(node[1]))
    return node


def _child(children: dict[tuple[str, ...], pa.Array], prefix: tuple[str, ...], key: str) -> pa.Array:
    """The field `key` of the struct at `prefix`, its parents' nulls applied; every field of a
    struct is taken out at once (one `flatten` per struct a page, not one kernel per column)."""
    path = (*prefix, key)
    if path not in children:
        parent = children[prefix]
        for f, array in zip(parent.type, parent.flatten()):
            children[(*prefix, f.name)] = array
    return children[path]


def _follow(array: pa.Array, steps: tuple[_Step, ...], children: dict[tuple[str, ...], pa.Array] | None = None) -> pa.Array:
    value = array
    prefix: tuple[str, ...] | None = () if children is not None else None
    for i, step in enumerate(steps):
        if prefix is not None and children is not None:
            value = _child(children, prefix, step.key)
            prefix = (*prefix, step.key) if not step.over else None
        else:
            value = pc.struct_field(value, step.key)
        if step.over == "[]":
            rest = steps[i + 1:]
            lists = _as_array(value)
            items = pc.list_flatten(lists)
            inner = _follow(items, rest) if rest else items
            return pa.ListArray.from_arrays(_offsets(lists), _as_array(inner))
        if step.over == "[0]":
            value = _first(_as_array(value))
    return _as_array(value)


def _as_array(value: Any) -> pa.Array:
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


def _offsets(lists: pa.Array) -> pa.Array:
    """Offsets of `lists` over its flattened (non-null) items: a null list is an empty one."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    return pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32))


def _first(lists: pa.Array) -> pa.Array:
    """The first item of each list; null where a list is empty or null."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    starts = np.asarray(lists.offsets)[:-1]
    index = pa.array(starts, mask=lengths == 0)
    return pc.take(lists.values, index)


def _cast(value: pa.Array, target: pa.DataType) -> pa.Array:
    if value.type == target:
        return value
    try:
        return value.cast(target)  # the common case: every value fits
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    if pa.types.is_string(value.type) and (
        pa.types.is_timestamp(target) or pa.types.is_date(target) or pa.types.is_decimal(target)
        or not pa.types.is_string(target)
    ):
        value = pc.if_else(pc.equal(value, ""), pa.scalar(None, pa.string()), value)  # "" is unknown
    try:
        return value.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    if pa.types.is_timestamp(target) and pa.types.is_string(value.type) and pc.all(
            pc.match_substring_regex(value, r"^-?\d+$")).as_py() is not False:
        return value.cast(pa.int64()).cast(target)  # epoch numbers, in the column's unit (as Arrow reads them)
    return value  # the engine casts again and quarantines the rows that do not fit, with reasons


def careful_array(values: list[Any], t: pa.DataType, text: bool = False) -> pa.Array:
    """Values as an array of `t` where they fit, as text where they do not (see `ColumnPlan.careful`)."""
    return _careful_array(values, t, text)


def _careful_array(values: list[Any], t: pa.DataType, text: bool) -> pa.Array:
    wire = wire_type_of(t, text)
    if wire != t or pa.types.is_timestamp(t) or pa.types.is_date(t):
        text = pa.array([None if v in ("", None) else v if isinstance(v, str) else json.dumps(v) for v in values],
                        pa.string())
        return _cast(text, t)
    try:
        return pa.array(values, t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    if pa.types.is_list(t):  # lists of odd items: the items as text
        return pa.array([None if v is None else [x if isinstance(x, str) or x is None else json.dumps(x) for x in v]
                         for v in values], pa.list_(pa.string()))
    # A value of an unexpected type: text, for the engine to coerce or quarantine.
    return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values], pa.string())


def _values_at(records: list[Any], steps: tuple[_Step, ...]) -> list[Any]:
    """Each record's value at `steps`, as `_get` reads it. A path of plain keys
    (`attributes.properties`) is looked up key after key in C loops (`map`), not a Python call
    per record: Klaviyo's profile and event pages spent ~0.1 ms a page in `_get`. A value on
    the way that is not an object (null, a list) has no `get`: that page takes `_get`."""
    if any(s.over for s in steps):
        return [_get(r, steps) for r in records]
    values: Any = records
    for step in steps:
        values = map(methodcaller("get", step.key), values)
    try:
        return list(values)
    except AttributeError:  # null or not an object on the way
        return [_get(r, steps) for r in records]


def _get(record: Any, steps: tuple[_Step, ...]) -> Any:
    value = record
    for i, step in enumerate(steps):
        value = value.get(step.key) if isinstance(value, dict) else None
        if step.over == "[]":
            items = value if isinstance(value, list) else []
            rest = steps[i + 1:]
            return [_get(item, rest) for item in items] if rest else items
        if step.over == "[0]":
            value = value[0] if isinstance(value, list) and value else None
    return value


def json_texts(values: list[Any]) -> pa.Array:
    """Values as a string array of compact JSON text, None as null. orjson writes them all in
    one C loop (`map`), ~3x cheaper than a Python loop a value (Zendesk's ticket pages: 4.3 ms
    for their three json columns); a value orjson refuses sends the page through `_dumps`."""
    try:
        texts = pa.array(list(map(orjson.dumps, values)), pa.string())
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, a key that is not a string
        return pa.array([_dumps(v) for v in values], pa.string())
    if None not in values:
        return texts
    return pc.if_else(pc.equal(texts, "null"), pa.scalar(None, pa.string()), texts)


def _dumps(value: Any) -> str | bytes | None:
    """A value as compact JSON text (UTF-8 as is, not escaped): orjson's, or the standard
    library's for what orjson refuses (integers past 64 bits, keys that are not strings)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
