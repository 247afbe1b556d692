"""JSON pages to Arrow, in bulk, against the stream's schema and column paths (`paths`).

The fast path for a big page hands the raw response bytes to `pyarrow.json` with an explicit
schema for the records (the page is read as one JSON "row" whose records column is a list of
structs of the declared paths), so no Python object is made per record. Measured on 1,000-record
customer pages: about 2.3 ms a page, against 6.8 ms for `json.loads` followed by `pa.array`.
A page under `SMALL_PAGE_BYTES` (most APIs cap pages at 100-250 records) is parsed by orjson and
converted in one `pa.array` call: `pyarrow.json` costs ~0.5 ms a call whatever the page, more
than the whole parse of a 20-70 kB page by orjson. A page whose values only the bytes path
reads in their types (epoch numbers, decimals sent as numbers) still goes through it.

A stream with `json` columns (kept as JSON text) needs each page as Python values anyway: its
pages are parsed once by orjson (`answer_json`, shared with a stream reading ahead) and
converted in one `pa.array` call, each json value written back by orjson. On HubSpot and Klaviyo
pages that is 25-40% cheaper than `pyarrow.json` plus a second parse by orjson for the json
values (0.7 against 1.2 ms for a 100-record HubSpot page), with the same batches. A page
holding an integer orjson cannot keep exactly (a number of 20 digits or more) takes the
`json.loads` path below.

When the bytes do not fit the wire types, the page is parsed with `json.loads` and converted
in one `pa.array` call to the same nested struct; columns are then taken out with compute kernels either way. A page whose
values do not fit even that is read value by value: odd values are handed over as text (the
engine coerces, or quarantines with a reason), and a record that cannot be a row at all (a
list column holding a string) comes back in `ParsedPage.rejected`, with the reason.
"""

from __future__ import annotations

import gc
import io
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import requests

from threadline.http.actions import BadPage, MalformedJson
from threadline.http.client import expect_json_response
from threadline.http.paths import ColumnPlan, ColumnSpec, careful_array

_BARE_LIST_KEY = "__records__"
# Pages smaller than this are parsed by orjson and converted in one `pa.array` call, bigger ones
# read by `pyarrow.json` from the bytes: its fixed cost per call (~0.5 ms) outweighs its speed on
# small pages. Parse only, medians of 7 passes over one read's pages (ms a page, pyarrow.json
# against orjson): HubSpot associations (20 kB) 1.15 / 0.70, X users (52 kB) 1.60 / 1.18, Klaviyo
# list memberships (68 kB) 0.95 / 0.37, LoyaltyLion transactions (133 kB) 1.09 / 0.91; the `rest`
# customers (244 kB) 1.68 / 2.03, X followers (511 kB) 4.60 / 4.72, Salesforce contacts (793 kB)
# 4.40 / 10.49.
SMALL_PAGE_BYTES = 160 * 1024


class RecordsPathMissing(BadPage):
    """The records path matched nothing in the body (an error, never an empty success)."""

    hint = "check the stream's records_path: it must name the list of records in the API's answer"


@dataclass
class ParsedPage:
    """One page: its records as Arrow, the rest of the body (for the paginator), and the
    records that cannot be rows, with the reason for each. `count`: how many records the API
    sent, when that is not the batch's row count (a page exploded into several rows each)."""

    records: pa.RecordBatch
    body: dict[str, Any]
    response: requests.Response
    rejected: list[tuple[Any, str]] = field(default_factory=list)
    count: int | None = None


class PageParser:
    """Turns a JSON response into a `ParsedPage` for one stream.

    `records_path` is a dotted path to the list of records (`data`, `result.items`), or ""
    when the body itself is the list. `columns` maps columns to paths in each record;
    `fixed` columns are filled by the caller (null here); `other_fields`: a json column keeping
    each record's undeclared top-level fields.
    """

    def __init__(self, schema: pa.Schema, records_path: str = "data", columns: Mapping[str, ColumnSpec] | None = None,
                 *, fixed: frozenset[str] = frozenset(), other_fields: str | None = None) -> None:
        self.schema = schema
        self.plan = ColumnPlan(schema, columns, fixed=fixed, other_fields=other_fields)
        self.path = records_path.split(".") if records_path else []
        self.records_path = records_path
        self.json_columns = self.plan.json_columns
        record_type: pa.DataType = pa.list_(self.plan.fast_wire_type)
        for key in reversed(self.path[1:]):
            record_type = pa.struct([(key, record_type)])
        self._fast_schema = pa.schema([(self.path[0] if self.path else _BARE_LIST_KEY, record_type)])

    def __call__(self, response: requests.Response) -> ParsedPage:
        with parsing(response):
            return self._page(response)

    def _page(self, response: requests.Response) -> ParsedPage:
        expect_json_response(response)
        content = response.content
        if self.json_columns or len(content) < SMALL_PAGE_BYTES:
            # json columns: their values come from orjson's parse of the page; that one parse and one
            # conversion cost 25-40% less than pyarrow.json plus orjson (HubSpot, Klaviyo pages, same
            # batches). A small page: pyarrow.json's fixed cost per call outweighs its speed (below).
            body = answer_json(response) if not _has_long_digit_run(content) else _NOT_JSON
            if body is not _NOT_JSON:
                page = self._from_body(body, response, careful=bool(self.json_columns))
                if page is not None:
                    return page
        else:
            body = _NOT_JSON
        if not self.json_columns:
            # Values the bytes path reads in their own types (epoch numbers, decimals as numbers):
            # the same batches as before whatever the page's size; value by value only after it.
            page = self._fast(content, response)
            if page is not None:
                return page
        return self._from_body(body, response) if body is not _NOT_JSON else self._parsed(content, response)

    # ------------------------------------------------------------------ fast: pyarrow.json

    def _fast(self, content: bytes, response: requests.Response) -> ParsedPage | None:
        stripped = content.strip()
        if not self.path:
            if not stripped.startswith(b"["):
                return None
            stripped = b'{"' + _BARE_LIST_KEY.encode() + b'":' + stripped + b"}"
        elif not stripped.startswith(b"{"):
            return None
        try:
            table = pa_json.read_json(
                io.BytesIO(stripped),
                read_options=pa_json.ReadOptions(use_threads=False, block_size=len(stripped) + 16),
                parse_options=pa_json.ParseOptions(
                    explicit_schema=self._fast_schema, unexpected_field_behavior="infer",
                    newlines_in_values=b"\n" in stripped,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None  # a value that does not fit its wire type, or an odd body: parse it instead
        if table.num_rows != 1:
            return None
        top = self.path[0] if self.path else _BARE_LIST_KEY
        column: pa.Array = table.column(top).chunk(0)
        for key in self.path[1:]:
            if column.null_count:
                break
            column = column.field(key)
        if column.null_count:
            raise RecordsPathMissing(self._missing_message(_present_keys(table)))
        nested = column.flatten()
        if nested.type != self.plan.fast_wire_type:  # fields the API added inside records: not the stream's
            nested = _selected(nested, self.plan.fast_wire_type)
        columns = self.plan.columns_from(nested)
        batch = self.plan.batch(columns, len(nested))
        return ParsedPage(batch, self._fast_body(table), response)

    def _fast_body(self, table: pa.Table) -> dict[str, Any]:
        if not self.path:
            return {}
        rest = {name: table.column(name)[0].as_py() for name in table.column_names if name != self.path[0]}
        if len(self.path) > 1:  # keep the siblings of the records on the way down (`meta.next`)
            rest[self.path[0]] = _scalar_without(table.column(self.path[0])[0], self.path[1:])
        return rest

    # ------------------------------------------------------------------ json.loads, then one conversion

    def _parsed(self, content: bytes, response: requests.Response) -> ParsedPage:
        try:
            body = json.loads(content)
        except ValueError as exc:
            raise MalformedJson(f"the response is not valid JSON ({exc})") from None
        return self._from_body(body, response)

    def _from_body(self, body: Any, response: requests.Response, careful: bool = True) -> ParsedPage | None:
        """The page from its parsed body: in one conversion, else value by value (`careful`;
        without it, None)."""
        records: Any = body
        for key in self.path:
            records = records.get(key) if isinstance(records, dict) else None
        if records is None:
            raise RecordsPathMissing(self._missing_message(sorted(body) if isinstance(body, dict) else []))
        if not isinstance(records, list) or not all(map(isinstance, records, repeat(dict))):
            raise RecordsPathMissing(
                f"records path {self.records_path or '(the body)'!r} holds {type(records).__name__}, "
                "not a list of JSON objects"
            )
        rest = _without(body, self.path) if isinstance(body, dict) else {}
        batch = self.plan.from_records(records)
        if batch is not None:
            return ParsedPage(batch, rest, response)
        if not careful:
            return None
        own = type(self)._column is not PageParser._column  # a connector's own shaping of odd values
        batch, rejected = self.plan.careful(records, self._column if own else None)
        return ParsedPage(batch, rest, response, rejected)

    def _column(self, f: pa.Field, values: list[Any]) -> pa.Array:
        """How a page with odd values turns one column's values into an array (a hook: a
        connector may shape nested values its own way); by default each in its type where it
        fits, as text where it does not."""
        return careful_array(values, f.type)

    def _missing_message(self, present: list[str]) -> str:
        keys = ", ".join(present) or "(none)"
        return (
            f"records path {self.records_path!r} matched nothing in the response "
            f"(top-level keys present: {keys})"
        )


_NOT_JSON = object()
_PARSED_KEY = "_threadline_json"


def answer_json(response: requests.Response) -> Any:
    """The answer's body as orjson reads it (`_NOT_JSON` when it cannot), parsed once per
    response: a stream reading ahead reads it for the next page's request, the json columns
    read it for their values. The parser drops it when the page is parsed."""
    body = response.__dict__.get(_PARSED_KEY, None)
    if body is None:
        with collector_paused():
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = _NOT_JSON
        response.__dict__[_PARSED_KEY] = body
    return body


class _CollectorPause:
    """The cyclic garbage collector paused while pages are parsed (nested and from several
    threads: it resumes when the last pause ends, and only if it was running before the first).

    A page parsed into Python objects is tens of thousands of dicts and lists that live only
    for the parse and form no cycles: freed by reference counting when the page is done. With
    the collector running, their allocation set off a young-generation pass every 700 objects,
    the objects still alive at those passes were promoted, and the promotions set off passes
    over every object of the process (pyarrow's, pydantic's, the plugins'). Measured on the
    B2 sandboxes, 5 reads each, interleaved, the collector on and off around the whole read:
    20-35% of a reader's CPU (Zendesk tickets 67k → 91k records per CPU-second, Mailchimp
    members 51k → 64k, HubSpot contacts 50k → 60k)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._resume:
                gc.enable()


_PAUSE = _CollectorPause()


def collector_paused() -> _CollectorPause:
    """A context in which the garbage collector does not run (see `_CollectorPause`)."""
    return _PAUSE


@contextmanager
def parsing(response: requests.Response) -> Iterator[None]:
    """While a page is parsed: the collector paused, and at the end the page's Python objects
    (`answer_json`) dropped, so they go while it is still paused."""
    with _PAUSE:
        try:
            yield
        finally:
            response.__dict__.pop(_PARSED_KEY, None)


def _has_long_digit_run(content: bytes, digits: int = 20) -> bool:
    """True when `content` may hold an integer of `digits` digits or more: a run of that many
    digits that starts a JSON number (after `:`, `[` or `,`, maybe a minus sign and spaces).
    Runs inside strings (ids, cursors in next-page links) do not count. Every digit is made a
    `0` (`bytes.translate`) and the run found with `bytes.find`, both in C: ~1 ms for a 1 MB
    page, against ~1.5-9 ms for the numpy scan this replaced."""
    zeros = content.translate(_DIGITS_AS_ZERO)
    run = b"0" * digits
    start = zeros.find(run)
    while start >= 0:
        before = content[max(0, start - 64):start].rstrip(b" \t\r\n")
        if before.endswith(b"-"):
            before = before[:-1].rstrip(b" \t\r\n")
        if before[-1:] in (b":", b"[", b",", b""):  # "": only spaces before it here, so take no chance
            return True
        end = _ZEROS.match(zeros, start).end()  # the run inside a string: on past its end
        start = zeros.find(run, end)
    return False


_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_ZEROS = re.compile(rb"0+")


def _selected(array: pa.Array, kind: pa.StructType) -> pa.Array:
    """`array` as exactly `kind`: Arrow's struct cast matches fields by name, drops the others
    and fills missing ones with nulls, in one call (Shopify's customer pages: 0.15 against
    0.25 ms for `_select_struct`'s Python walk of ~60 nested fields); `_select_struct` where
    the cast refuses."""
    try:
        return array.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _select_struct(array, kind)


def _select_struct(array: pa.Array, kind: pa.DataType) -> pa.Array:
    """`array` (a struct, maybe with more fields than `kind`) as exactly `kind`, recursively."""
    if pa.types.is_struct(kind):
        children = []
        for f in kind:
            index = array.type.get_field_index(f.name)
            child = array.field(index) if index >= 0 else pa.nulls(len(array), f.type)
            children.append(_select_struct(child, f.type))
        return pa.StructArray.from_arrays(children, fields=list(kind), mask=array.is_null())
    if pa.types.is_list(kind) and array.type != kind:
        values = _select_struct(array.values, kind.value_type)
        return pa.ListArray.from_arrays(array.offsets, values, mask=array.is_null())
    return array


def _present_keys(table: pa.Table) -> list[str]:
    return [name for name in table.column_names if table.column(name).null_count < table.num_rows]


def _scalar_without(scalar: pa.StructScalar, path: list[str]) -> dict[str, Any]:
    """A struct scalar as a dict, without the value at `path` (never converted to Python)."""
    out = {}
    for key, value in scalar.items():
        if key != path[0]:
            out[key] = value.as_py()
        elif len(path) > 1:
            out[key] = _scalar_without(value, path[1:])
    return out


def _without(body: Any, path: list[str]) -> Any:
    """`body` with the value at `path` removed (copies only along the path)."""
    if not path or not isinstance(body, dict):
        return body
    if len(path) == 1:
        return {k: v for k, v in body.items() if k != path[0]}
    return {**body, path[0]: _without(body.get(path[0]), path[1:])}
