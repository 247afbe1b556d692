"""The `files` source: CSV, JSON lines and Parquet files matched by glob patterns.

Each configured stream is a glob. Files are read in name order with Arrow's multithreaded
readers, one checkpoint per file, so a killed sync resumes at the first file not yet
committed. Incremental syncs read only files that are new or whose size or modification
time changed since they were last read.

A Parquet file whose columns are the stream's own needs no coercion: when the destination can
read Parquet itself (DuckDB), the source hands it the file (`NativeFile`) instead of batches.

CSV and JSON values arrive as text and are typed by the engine against the stream's schema
(inferred from the first file, overridden per column in the config): a value that does not
fit its column — a bad date, a number in a text file that turns into words halfway — sends
its row to quarantine with the reason, instead of failing the file or being dropped.
"""

from __future__ import annotations

import glob
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pydantic import Field, ValidationInfo, field_validator, model_validator

from threadline.contracts import (
    Batch,
    Catalog,
    Checkpoint,
    ConfigError,
    FORMAT_KEY,
    JobPath,
    Message,
    NativeFile,
    ReadRequest,
    Rejected,
    Source,
    Spec,
    Stream,
    SyncMode,
)
from threadline.types import parse_type

Format = Literal["csv", "jsonl", "parquet"]
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}
_SAMPLE_BYTES = 1 << 20  # how much of the first file schema inference looks at


class CsvOptions(Spec):
    delimiter: str = Field(",", min_length=1, max_length=1)
    quote_char: str = Field('"', min_length=1, max_length=1)
    encoding: str = "utf-8"
    header: bool = True  # False: columns are named f0, f1, ... or by `column_names`
    column_names: list[str] | None = None
    skip_rows: int = Field(0, ge=0)  # lines to skip before the header (report titles, say)
    null_values: list[str] = Field(default_factory=lambda: ["", "NULL", "null", "N/A", "n/a"])


class ColumnOptions(Spec):
    type: str | None = None  # string, int64, float64, bool, date, timestamp, decimal(18,2), ...
    format: str | None = None  # strptime format for dates in text, e.g. "%m/%d/%y" or "%d.%m.%Y"


class FileStream(Spec):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    path: str  # a glob, relative to the job file: "exports/customers_*.csv"
    format: Format | None = None  # default: from the file extension
    primary_key: list[str] = Field(default_factory=list)
    csv: CsvOptions = Field(default_factory=CsvOptions)
    columns: dict[str, ColumnOptions] = Field(default_factory=dict)
    # Arrow's streaming CSV reader runs ahead a fixed number of blocks, so the block size bounds
    # memory: 16 MiB blocks held ~600 MiB in flight, 4 MiB ~150 MiB, at the same speed (bench B6);
    # 2 MiB took the 10M-row peak from 563 to 463 MiB for the same CPU
    batch_bytes: int = Field(2 << 20, ge=1 << 16)  # read block size


class FilesConfig(Spec):
    streams: list[FileStream] = Field(min_length=1)
    base_dir: JobPath | None = None  # where relative globs start; default: the job file's folder

    @model_validator(mode="after")
    def _anchor(self, info: ValidationInfo) -> FilesConfig:
        if self.base_dir is None:
            self.base_dir = Path((info.context or {}).get("base_dir", "."))
        return self

    @field_validator("streams")
    @classmethod
    def _unique(cls, streams: list[FileStream]) -> list[FileStream]:
        names = [s.name for s in streams]
        if len(set(names)) != len(names):
            raise ValueError(f"stream names must be unique, got {names}")
        return streams


class FilesSource(Source[FilesConfig]):
    """Reads CSV, JSON lines and Parquet files into streams."""

    name = "files"
    spec = FilesConfig

    # ---- contract

    def check(self, config: FilesConfig) -> None:
        for i, fs in enumerate(config.streams):
            if not self._files(config, fs):
                raise ConfigError(
                    f"no file matches {fs.path!r} (looked in {self._root(config)})",
                    field=f"streams[{i}].path",
                    hint="check the pattern; relative paths start at the job file's folder",
                )
        self.discover(config)

    def discover(self, config: FilesConfig) -> Catalog:
        return Catalog(tuple(self._stream(config, i, fs) for i, fs in enumerate(config.streams)))

    def read(self, config: FilesConfig, request: ReadRequest) -> Iterator[Message]:
        fs = next(s for s in config.streams if s.name == request.stream.name)
        seen: dict[str, str] = dict(request.state.get("files", {}))
        incremental = request.sync_mode is SyncMode.INCREMENTAL
        root = self._root(config).resolve()
        for path in self._files(config, fs):
            # relative keys keep the state valid when the project folder moves
            key = str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)
            fingerprint = _fingerprint(path)
            if incremental and seen.get(key) == fingerprint:
                continue
            yield from self._read_file(path, fs, request)
            seen[key] = fingerprint
            yield Checkpoint(fs.name, {"files": dict(seen)})

    # ---- discovery

    def _root(self, config: FilesConfig) -> Path:
        return config.base_dir or Path(".")

    def _files(self, config: FilesConfig, fs: FileStream) -> list[Path]:
        pattern = fs.path if Path(fs.path).is_absolute() else str(self._root(config) / fs.path)
        # named pipes count: an export can be streamed in through one
        return [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file() or Path(p).is_fifo()]

    def _stream(self, config: FilesConfig, index: int, fs: FileStream) -> Stream:
        files = self._files(config, fs)
        if not files:
            raise ConfigError(f"no file matches {fs.path!r}", field=f"streams[{index}].path",
                              hint="check the pattern; relative paths start at the job file's folder")
        first = files[0]
        inferred = _infer_schema(first, _format(fs, first), fs)
        fields = []
        for field in inferred:
            opts = fs.columns.get(field.name)
            ftype = parse_type(opts.type, where=f"streams[{index}].columns.{field.name}.type") if opts and opts.type else field.type
            meta = {FORMAT_KEY: opts.format.encode()} if opts and opts.format else None
            if opts and opts.format and not opts.type:
                ftype = pa.date32() if not any(c in opts.format for c in "HIMSp") else pa.timestamp("us", tz="UTC")
            fields.append(pa.field(field.name, ftype, metadata=meta))
        names = {f.name for f in fields}
        for column in fs.columns:
            if column not in names:
                raise ConfigError(
                    f"column {column!r} is configured but {first.name} has no such column",
                    field=f"streams[{index}].columns.{column}",
                    hint=f"columns in the file: {', '.join(sorted(names))}",
                )
        for key in fs.primary_key:
            if key not in names:
                raise ConfigError(
                    f"primary key column {key!r} is not in {first.name}",
                    field=f"streams[{index}].primary_key",
                    hint=f"columns in the file: {', '.join(sorted(names))}",
                )
        return Stream(
            name=fs.name,
            schema=pa.schema(fields),
            primary_key=tuple(fs.primary_key),
            sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
            description=f"{_format(fs, first)} files matching {fs.path}",
        )

    # ---- reading

    def _read_file(self, path: Path, fs: FileStream, request: ReadRequest) -> Iterator[Message]:
        fmt = _format(fs, path)
        stream = request.stream
        if fmt == "parquet":
            parquet = pq.ParquetFile(path)
            if "parquet" in request.native_formats and _same_columns(parquet.schema_arrow, stream.schema):
                # nothing to coerce: the destination reads the file itself (DuckDB's read_parquet)
                yield NativeFile(fs.name, path, "parquet", parquet.schema_arrow, parquet.metadata.num_rows)
                return
            # ~256k rows a batch by default: fewer, larger batches make the bulk steps cheaper
            for batch in parquet.iter_batches(batch_size=max(fs.batch_bytes // 16, 1024)):
                yield Batch(fs.name, batch)
        elif fmt == "csv":
            yield from _read_csv(path, fs)
        else:
            yield from _read_jsonl(path, fs, stream)


def _format(fs: FileStream, path: Path) -> Format:
    if fs.format:
        return fs.format
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot tell the format of {path.name} from its extension",
            field="format", hint="set `format: csv`, `jsonl` or `parquet` on the stream",
        )
    return fmt


def _same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    return [(f.name, f.type) for f in a] == [(f.name, f.type) for f in b]


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _csv_options(fs: FileStream, block_size: int, handler: Any = None) -> tuple[Any, Any, Any]:
    o = fs.csv
    read = pacsv.ReadOptions(
        encoding=o.encoding, block_size=block_size, skip_rows=o.skip_rows,
        column_names=o.column_names, autogenerate_column_names=not o.header and not o.column_names,
    )
    parse = pacsv.ParseOptions(delimiter=o.delimiter, quote_char=o.quote_char, invalid_row_handler=handler)
    return read, parse, o


def _infer_schema(path: Path, fmt: Format, fs: FileStream) -> pa.Schema:
    try:
        if fmt == "parquet":
            return pq.read_schema(path)
        if fmt == "csv":
            read, parse, o = _csv_options(fs, _SAMPLE_BYTES, handler=lambda row: "skip")
            convert = pacsv.ConvertOptions(null_values=o.null_values, strings_can_be_null=True)
            with pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as reader:
                return reader.schema
        with path.open("rb") as handle:
            sample = handle.read(_SAMPLE_BYTES)
        sample = sample[: sample.rfind(b"\n") + 1] or sample
        try:
            return pajson.read_json(io.BytesIO(sample)).schema
        except pa.ArrowInvalid:  # a broken line in the sample: infer from the lines that parse
            return _infer_from_good_lines(sample)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _file_error(path, fs, exc) from None


def _infer_from_good_lines(sample: bytes) -> pa.Schema:
    rows = []
    for line in sample.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            rows.append(record)
    fields = []
    for name in dict.fromkeys(k for r in rows for k in r):
        try:
            fields.append(pa.field(name, pa.array([r.get(name) for r in rows]).type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            fields.append(pa.field(name, pa.string()))  # mixed types: let the engine sort it out
    return pa.schema(fields)


def _read_csv(path: Path, fs: FileStream) -> Iterator[Message]:
    bad_rows: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_invalid_row(row: Any) -> str:  # called only for broken lines: a cold path
        with lock:
            bad_rows.append({"file": path.name, "line": row.number, "text": row.text,
                             "problem": f"expected {row.expected_columns} columns, found {row.actual_columns}"})
        return "skip"

    read, probe_parse, o = _csv_options(fs, 1 << 16, lambda row: "skip")
    with pacsv.open_csv(path, read_options=read, parse_options=probe_parse) as probe:
        names = probe.schema.names
    read, parse, o = _csv_options(fs, fs.batch_bytes, on_invalid_row)
    # Every column as text: the engine types it against the stream schema and quarantines
    # single bad values, where Arrow's own conversion would fail the whole file.
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, null_values=o.null_values, strings_can_be_null=True,
    )
    try:
        with pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as reader:
            for batch in reader:
                yield Batch(fs.name, batch)
                if bad_rows:
                    with lock:
                        rows, bad_rows[:] = list(bad_rows), []
                    yield Rejected(fs.name, rows, "malformed CSV line (wrong number of columns)")
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _file_error(path, fs, exc) from None
    if bad_rows:
        yield Rejected(fs.name, bad_rows, "malformed CSV line (wrong number of columns)")


def _read_jsonl(path: Path, fs: FileStream, stream: Stream) -> Iterator[Message]:
    """JSON lines in blocks of whole lines, each parsed by Arrow in bulk. Dates and times are
    read as text and cast by the engine's kernel (Arrow's JSON reader parses neither). A block
    that fails is halved until the failing lines stand alone; only those are read with Python:
    a malformed line is quarantined, a line whose value's type changes becomes text for the
    engine to cast or quarantine. The rest of the file stays on the bulk path."""
    text_schema = pa.schema([pa.field(f.name, pa.string()) if _is_scalar(f.type) else f for f in stream.schema])
    pinned = _json_parse_schema(stream.schema)
    # then text columns unpinned: a block whose text column holds numbers parses, and the engine casts them
    text = [f.name for f in pinned if pa.types.is_string(f.type)]
    loose = pa.schema([f for f in pinned if f.name not in text])
    parses = [(pajson.ParseOptions(explicit_schema=pinned, unexpected_field_behavior="infer"), []),
              (pajson.ParseOptions(explicit_schema=loose, unexpected_field_behavior="infer"), text)]
    read = pajson.ReadOptions(block_size=fs.batch_bytes)
    for first_line, block in _line_blocks(path, fs.batch_bytes):
        yield from _parse_json_lines(block, first_line, path, fs, read, parses, text_schema)


def _json_parse_schema(schema: pa.Schema) -> pa.Schema:
    """The stream's schema as Arrow's JSON reader can parse it: dates, times and columns with a
    format arrive as text (the engine casts them)."""
    def as_read(f: pa.Field) -> pa.Field:
        text = pa.types.is_date(f.type) or pa.types.is_time(f.type) or FORMAT_KEY in (f.metadata or {})
        return pa.field(f.name, pa.string()) if text else f

    return pa.schema([as_read(f) for f in schema])


def _line_blocks(path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, bytes) of consecutive blocks of whole lines."""
    line = 1
    rest = b""
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # one line longer than the block: read on
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            yield line, block
            line += block.count(b"\n")
    if rest.strip():
        yield line, rest + b"\n"


def _parse_json_lines(data: bytes, first_line: int, path: Path, fs: FileStream, read: Any, parses: list[tuple[Any, list[str]]],
                      text_schema: pa.Schema) -> Iterator[Message]:
    table = _parse_json_block(data, read, parses)
    if table is None:
        lines = data.split(b"\n")[:-1]  # the block ends with a newline
        if len(lines) == 1:
            yield from _read_json_line_slowly(lines[0], first_line, path, fs, text_schema)
            return
        half = len(lines) // 2
        yield from _parse_json_lines(b"\n".join(lines[:half]) + b"\n", first_line, path, fs, read, parses, text_schema)
        yield from _parse_json_lines(b"\n".join(lines[half:]) + b"\n", first_line + half, path, fs, read, parses, text_schema)
        return
    for batch in table.to_batches():
        yield Batch(fs.name, batch)


def _parse_json_block(data: bytes, read: Any, parses: list[tuple[Any, list[str]]]) -> pa.Table | None:
    """The block parsed with the stream's types, else with its text columns left to Arrow (kept
    only if they came back as plain scalars: a text column must not turn into timestamps)."""
    for parse, unpinned in parses:
        try:
            table = pajson.read_json(io.BytesIO(data), read_options=read, parse_options=parse)
        except pa.ArrowInvalid:
            continue
        if all(_is_plain(table.schema.field(n).type) for n in unpinned if n in table.schema.names):
            return table
    return None


def _is_plain(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) \
        or pa.types.is_null(t) or not _is_scalar(t)


def _read_json_line_slowly(raw: bytes, number: int, path: Path, fs: FileStream, text_schema: pa.Schema) -> Iterator[Message]:
    """One line Arrow could not parse (a cold path): quarantined if it is not a JSON object,
    else its scalars as text, for the engine to cast or quarantine with the column named."""
    line = raw.decode("utf-8", errors="replace")
    if not line.strip():
        return
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        yield Rejected(fs.name, [{"file": path.name, "line": number, "text": line, "problem": str(exc)}], "malformed JSON line")
        return
    row = {k: (v if isinstance(v, (dict, list)) or v is None else str(v) if not isinstance(v, str) else v)
           for k, v in record.items()}
    arrays = {}
    for name in dict.fromkeys([*text_schema.names, *row]):
        value = row.get(name)
        try:
            arrays[name] = pa.array([value], text_schema.field(name).type if name in text_schema.names else None)
        except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError):
            arrays[name] = pa.array([None if value is None else value if isinstance(value, str) else json.dumps(value)], pa.string())
    yield Batch(fs.name, pa.RecordBatch.from_pydict(arrays))


def _is_scalar(t: pa.DataType) -> bool:
    return not (pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_map(t))


def _file_error(path: Path, fs: FileStream, exc: Exception) -> ConfigError:
    text = str(exc)
    if "UTF8" in text or "utf-8" in text.lower() or isinstance(exc, UnicodeDecodeError):
        return ConfigError(
            f"{path.name} is not valid {fs.csv.encoding} text",
            field=f"{fs.name}.csv.encoding",
            hint="set `csv: {encoding: latin-1}` (or the file's real encoding, e.g. cp1252, utf-16) on the stream",
        )
    return ConfigError(f"{path.name} cannot be read as {_format(fs, path)}: {text.splitlines()[0]}",
                       field=f"{fs.name}.format", hint="check the file's format and the stream's csv options")
