"""Comparing records the way the contract suites need: by key, after typing both sides to the
stream's Arrow schema, with a failure message that shows what is missing, extra or different.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from threadline.contracts import Batch, NativeFile, Stream
from threadline.engine.coerce import coerce

LINEAGE_PREFIX = "_threadline_"
_SHOW = 5  # how many examples a failure message lists


def typed(records: list[dict[str, Any]], stream: Stream, what: str) -> list[dict[str, Any]]:
    """`records` (plain JSON-like dicts, e.g. a sandbox's data) typed to the stream's schema,
    the way the engine types a source's batches. Only the schema's columns are kept."""
    columns: dict[str, list[Any]] = {}
    for field in stream.schema:
        values = [r.get(field.name) for r in records]
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            values = [_json_text(v) for v in values]
        columns[field.name] = values
    try:
        batch = pa.RecordBatch.from_pydict({k: pa.array(v) for k, v in columns.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise AssertionError(f"{what}: the expected records cannot be turned into Arrow ({exc}); "
                             "override `expected_records` to return values of the stream's types") from None
    result = coerce(batch, stream.schema, stream.primary_key)
    if result.rejected_count:
        raise AssertionError(
            f"{what}: {result.rejected_count} expected record(s) do not fit the declared schema of "
            f"{stream.name!r}: {(result.reasons or [''])[0]}"
        )
    return only_declared(result.good.to_pylist(), stream)


def batches_of(messages: Iterable[Any], stream: str | None = None) -> list[pa.RecordBatch]:
    """The records a source's messages carry (of `stream`, or every stream): its batches, and
    the rows of each whole file it handed to a destination that reads the file itself
    (`NativeFile`), read here with Arrow (CSV as text, as the engine would get it)."""
    batches: list[pa.RecordBatch] = []
    for m in messages:
        if stream is not None and getattr(m, "stream", None) != stream:
            continue
        if isinstance(m, Batch):
            batches.append(m.records)
        elif isinstance(m, NativeFile):
            batches += _read_native(m).to_batches()
    return batches


def _read_native(file: NativeFile) -> pa.Table:
    if file.format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(file.path)
    import pyarrow.csv as pacsv

    o = file.options
    return pacsv.read_csv(
        file.path, read_options=pacsv.ReadOptions(skip_rows=o.get("skip_rows", 0)),
        parse_options=pacsv.ParseOptions(delimiter=o.get("delimiter", ","), quote_char=o.get("quote_char", '"')),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in file.schema.names},
                                             null_values=o.get("null_values", [""]), strings_can_be_null=True))


def from_batches(batches: Iterable[pa.RecordBatch], stream: Stream) -> list[dict[str, Any]]:
    """Rows of a source's batches, typed to the stream's schema; rows the schema rejects are an
    assertion error naming the reason (a source must deliver what it declared)."""
    rows: list[dict[str, Any]] = []
    for batch in batches:
        result = coerce(batch, stream.schema, stream.primary_key)
        if result.rejected_count:
            raise AssertionError(
                f"stream {stream.name!r}: {result.rejected_count} row(s) do not fit the schema discovery "
                f"declared: {(result.reasons or [''])[0]}"
            )
        rows += result.good.to_pylist()
    return only_declared(rows, stream)


def landed(db_path: Path, table: str, stream: Stream) -> list[dict[str, Any]]:
    """Rows of `table` in a DuckDB file, lineage columns dropped, typed to the stream's schema."""
    import duckdb

    con = duckdb.connect(str(db_path))
    try:
        arrow = con.sql(f'select * from "{table}"').to_arrow_table()
    finally:
        con.close()
    arrow = arrow.select([n for n in arrow.column_names if not n.startswith(LINEAGE_PREFIX)])
    return from_batches(arrow.to_batches(), stream) if arrow.num_rows else []


def only_declared(rows: list[dict[str, Any]], stream: Stream) -> list[dict[str, Any]]:
    names = stream.schema.names
    return [{n: row.get(n) for n in names} for row in rows]


def key_of(row: dict[str, Any], stream: Stream) -> tuple[Any, ...]:
    """The primary key of a row, or the whole row for streams without one."""
    names = stream.primary_key or tuple(stream.schema.names)
    return tuple(_canonical(row.get(n)) for n in names)


def by_key(rows: list[dict[str, Any]], stream: Stream, what: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows by key; duplicated keys are an assertion error listing some of them."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    dupes: list[tuple[Any, ...]] = []
    for row in rows:
        key = key_of(row, stream)
        if key in out:
            dupes.append(key)
        out[key] = row
    if dupes and stream.primary_key:
        raise AssertionError(f"{what}: {len(dupes)} duplicated primary key(s) {few(dupes)} in stream {stream.name!r}")
    return out


def assert_same_records(actual: list[dict[str, Any]], expected: list[dict[str, Any]], stream: Stream, what: str) -> None:
    """Exactly the expected records: none missing, none extra, none duplicated, same values."""
    got = by_key(actual, stream, what)
    want = by_key(expected, stream, "the expected records")
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    different = []
    for key in want.keys() & got.keys():
        for name in stream.schema.names:
            a, e = _canonical(got[key].get(name)), _canonical(want[key].get(name))
            if a != e:
                different.append(f"{key}.{name}: got {a!r}, expected {e!r}")
    problems = []
    if missing:
        problems.append(f"{len(missing)} record(s) missing, keys {few(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected record(s), keys {few(extra)}")
    if len(actual) != len(got) and not stream.primary_key:
        problems.append(f"{len(actual) - len(got)} duplicated row(s)")
    if different:
        problems.append(f"{len(different)} value(s) differ: " + "; ".join(different[:_SHOW]))
    if problems:
        raise AssertionError(f"{what} (stream {stream.name!r}, {len(actual)} rows, {len(expected)} expected): "
                             + "; ".join(problems))


def _json_text(value: Any) -> Any:
    # default=str: nested timestamps and decimals compare by their text, not fail to serialise
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str) if isinstance(value, (dict, list)) else value


def _canonical(value: Any) -> Any:
    """Values compared regardless of how JSON text was spaced or ordered."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _json_text(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, (dict, list)):
        return _json_text(value)
    return value


def few(keys: list[Any]) -> str:
    shown = ", ".join(repr(k[0] if isinstance(k, tuple) and len(k) == 1 else k) for k in keys[:_SHOW])
    return f"[{shown}{', ...' if len(keys) > _SHOW else ''}]"
