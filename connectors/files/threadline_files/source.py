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
    # memory: 16 MiB blocks held ~600 MiB in flight, 4 MiB ~150 MiB, at the same speed (bench B6)
    batch_bytes: int = Field(4 << 20, ge=1 << 16)  # read block size


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
    text_schema = pa.schema([pa.field(f.name, pa.string()) if _is_scalar(f.type) else f for f in stream.schema])
    done = 0
    try:
        with pajson.open_json(
            path,
            read_options=pajson.ReadOptions(block_size=fs.batch_bytes),
            parse_options=pajson.ParseOptions(explicit_schema=stream.schema, unexpected_field_behavior="infer"),
        ) as reader:
            for batch in reader:
                yield Batch(fs.name, batch)
                done += batch.num_rows
    except pa.ArrowInvalid:
        # A broken line or a value whose type changes: go on line by line (cold path) from the
        # first row not yet yielded, so good lines land and each bad one is quarantined.
        yield from _read_jsonl_slowly(path, fs, text_schema, skip=done)


def _read_jsonl_slowly(path: Path, fs: FileStream, text_schema: pa.Schema, skip: int) -> Iterator[Message]:
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if skip:
                skip -= 1
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                rejected.append({"file": path.name, "line": number, "text": line.rstrip("\n"), "problem": str(exc)})
                continue
            rows.append({k: (v if isinstance(v, (dict, list)) or v is None else str(v) if not isinstance(v, str) else v)
                         for k, v in record.items()})
    if rows:
        names = list(dict.fromkeys([*text_schema.names, *(k for r in rows for k in r)]))
        columns = {n: [r.get(n) for r in rows] for n in names}
        arrays = {}
        for n, values in columns.items():
            try:
                arrays[n] = pa.array(values, text_schema.field(n).type if n in text_schema.names else None)
            except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError):
                arrays[n] = pa.array([None if v is None else json.dumps(v) if not isinstance(v, str) else v for v in values], pa.string())
        yield Batch(fs.name, pa.RecordBatch.from_pydict(arrays))
    if rejected:
        yield Rejected(fs.name, rejected, "malformed JSON line")


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
