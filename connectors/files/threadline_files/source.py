"""The `files` source: CSV, JSON lines and Parquet files matched by glob patterns.

Each configured stream is a glob. Files are read in name order with Arrow's multithreaded
readers, one checkpoint per file, so a killed sync resumes at the first file not yet
committed. Incremental syncs read only files that are new or whose size or modification
time changed since they were last read.

A Parquet file whose columns are the stream's own needs no coercion: when the destination can
read Parquet itself (DuckDB), the source hands it the file (`NativeFile`) instead of batches.
So is a plain CSV file (UTF-8 with a header, columns of text, int64, float64 or date without a
`format`) when the destination reads CSV itself: it loads the rows whose values convert exactly
as the engine's cast would and hands the rest back to the engine (see `NativeFile`).

CSV and JSON values arrive as text and are typed by the engine against the stream's schema
(inferred from the first file, overridden per column in the config): a value that does not
fit its column — a bad date, a number in a text file that turns into words halfway — sends
its row to quarantine with the reason, instead of failing the file or being dropped.

A file that cannot be read at all — compressed or binary under a .csv name, UTF-16 without
`encoding` set, a header with an empty, duplicate or absurdly long column name, JSON nested
deeper than MAX_JSON_DEPTH (which would crash Arrow's parser), a corrupt Parquet file — fails
its stream with an error naming the file, the line or column, and what to do; files before it
stay committed. Lines of JSON nested too deep are quarantined like any broken line.
"""

from __future__ import annotations

import glob
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
from pydantic import Field, ValidationInfo, field_validator, model_validator

from threadline.contracts import (
    Batch,
    Catalog,
    Checkpoint,
    ConfigError,
    FORMAT_KEY,
    FatalError,
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


def _quiet_undecodable_bad_rows(unraisable: Any, _previous: Any = sys.unraisablehook) -> None:
    """Arrow hands a broken CSV line to our handler as text; when the line is not valid UTF-8
    it cannot, prints that as an 'ignored exception' and fails the read, which is then
    reported as a clear error naming the file. Only that print is silenced."""
    handler = getattr(unraisable, "object", None)
    if isinstance(unraisable.exc_value, UnicodeDecodeError) and getattr(handler, "__module__", "") == __name__:
        return
    _previous(unraisable)


sys.unraisablehook = _quiet_undecodable_bad_rows
MAX_JSON_DEPTH = 100  # Arrow's JSON parser recurses per level and crashes the process near 10,000
MAX_HEADER_BYTES = 16 << 20  # a first line longer than this is not a CSV header
MAX_COLUMN_NAME = 1_000  # characters; longer names come from a wrong delimiter or quote_char


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
            yield from _failing_cleanly(self._read_file(path, fs, request), path, fs, config.streams.index(fs))
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
        inferred = _infer_schema(first, _format(fs, first), fs, index)
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
            if path.is_fifo():
                raise FatalError(f"{path.name} is a named pipe: Parquet cannot be streamed through one",
                                 hint="write the Parquet file to disk first, or stream CSV or JSON lines")
            import pyarrow.parquet as pq  # here: a CSV or JSON lines sync does not pay for it (~30 ms of CPU)

            parquet = pq.ParquetFile(path)
            if "parquet" in request.native_formats and _same_columns(parquet.schema_arrow, stream.schema):
                # nothing to coerce: the destination reads the file itself (DuckDB's read_parquet)
                yield NativeFile(fs.name, path, "parquet", parquet.schema_arrow, parquet.metadata.num_rows)
                return
            # ~256k rows a batch by default: fewer, larger batches make the bulk steps cheaper
            for batch in parquet.iter_batches(batch_size=max(fs.batch_bytes // 16, 1024)):
                _check_text_columns(batch)
                yield Batch(fs.name, batch)
        elif fmt == "csv":
            native = _native_csv(path, fs, stream) if "csv" in request.native_formats else None
            if native is not None:
                yield native  # the destination reads the text itself, under the engine's rules
                return
            yield from _read_csv(path, fs)
        else:
            yield from _read_jsonl(path, fs, stream)


def _check_text_columns(batch: pa.RecordBatch) -> None:
    """Arrow checks neither a Parquet file's text (a damaged page passes) nor JSON strings for
    valid UTF-8, and a destination would fail on it without naming the file; so each batch is
    validated in full here (about 1 GB/s, small beside the read). An ArrowInvalid follows."""
    batch.validate(full=True)


def _failing_cleanly(messages: Iterator[Message], path: Path, fs: FileStream, index: int) -> Iterator[Message]:
    """A file Arrow, the OS or a codec cannot read fails the stream naming the file and what to
    do, rather than as a bug with a stack trace."""
    try:
        yield from messages
    except (ConfigError, FatalError):
        raise
    except (pa.ArrowException, OSError, UnicodeError, ValueError, OverflowError, RecursionError) as exc:
        raise FatalError(_file_error(path, fs, exc, index).render()) from None


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


def _infer_schema(path: Path, fmt: Format, fs: FileStream, index: int) -> pa.Schema:
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return _named(path, pq.read_schema(path), fs, index)
        with path.open("rb") as handle:
            sample = handle.read(_SAMPLE_BYTES)
        _check_text(path, fs, sample, index, decode=False)
        if fmt == "csv":
            sample += _rest_of_header(path, fs, sample, index)
            read, parse, o = _csv_options(fs, len(sample) + 1, handler=lambda row: "skip")
            convert = pacsv.ConvertOptions(null_values=o.null_values, strings_can_be_null=True)
            with pacsv.open_csv(io.BytesIO(sample), read_options=read, parse_options=parse, convert_options=convert) as reader:
                _check_header(path, reader.schema.names, fs, index)
                return reader.schema
        sample = sample[: sample.rfind(b"\n") + 1] or sample
        if _deepest_line(sample) > MAX_JSON_DEPTH:  # never hand Arrow a line it would crash on
            return _named(path, _infer_from_good_lines(sample), fs, index)
        try:
            return _named(path, pajson.read_json(io.BytesIO(sample)).schema, fs, index)
        except pa.ArrowInvalid:  # a broken line in the sample: infer from the lines that parse
            return _named(path, _infer_from_good_lines(sample), fs, index)
    except (pa.ArrowException, OSError, UnicodeError, ValueError, OverflowError) as exc:
        raise _file_error(path, fs, exc, index) from None


def _named(path: Path, schema: pa.Schema, fs: FileStream, index: int) -> pa.Schema:
    """`schema`, once every field name is readable text and fit for a column."""
    try:
        names = schema.names
    except UnicodeDecodeError:
        raise ConfigError(f"a column name in {path.name} is not UTF-8 text", field=_field(index, "path"),
                          hint="fix the file's keys or column names") from None
    _check_header(path, names, fs, index)
    return schema


def _infer_from_good_lines(sample: bytes) -> pa.Schema:
    rows = []
    for line in sample.decode("utf-8", errors="replace").splitlines():
        if _deepest_line(line.encode()) > MAX_JSON_DEPTH:
            continue
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
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # OverflowError: an integer past int64
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

    with _open_once(path) as handle:
        head, names = _csv_header(path, fs, handle)
        read, parse, o = _csv_options(fs, max(fs.batch_bytes, len(head) + 1), on_invalid_row)
        # one thread: Arrow then knows each bad line's number (the streaming reader is no faster with more)
        read.use_threads = False
        # Every column as text: the engine types it against the stream schema and quarantines
        # single bad values, where Arrow's own conversion would fail the whole file.
        convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, null_values=o.null_values, strings_can_be_null=True,
        )
        try:
            with pacsv.open_csv(handle.source, read_options=read, parse_options=parse, convert_options=convert) as reader:
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


def _csv_header(path: Path, fs: FileStream, handle: _open_once) -> tuple[bytes, list[str]]:
    """(the bytes read up to the end of the header, the column names), once the file's first
    bytes are text in its encoding and the header is fit for columns."""
    index = -1  # the stream's position is not known here; errors name the file instead
    head = handle.peek_head(1 << 16)
    _check_text(path, fs, head, index, decode=fs.csv.encoding.lower().replace("_", "-") in ("utf-8", "utf8"))
    head += _rest_of_header(path, fs, head, index, handle)
    read, probe_parse, _ = _csv_options(fs, len(head) + 1, lambda row: "skip")
    with pacsv.open_csv(io.BytesIO(head), read_options=read, parse_options=probe_parse) as probe:
        names = probe.schema.names
    _check_header(path, names, fs, index)
    return head, names


# Types whose text a destination can check and convert exactly as the engine's cast does (see
# NativeFile): a column of any other type, or with a `format`, keeps the file on the Arrow path.
_NATIVE_CSV_TYPES = (pa.string(), pa.int64(), pa.float64(), pa.date32())


def _native_csv(path: Path, fs: FileStream, stream: Stream) -> NativeFile | None:
    """The CSV file as a `NativeFile` for a destination that reads CSV itself, when the stream
    reads it the plain way (UTF-8, a header, types the destination converts exactly); else None."""
    o = fs.csv
    plain = (not path.is_fifo() and o.encoding.lower().replace("_", "-") in ("utf-8", "utf8") and o.header
             and o.column_names is None and o.null_values)
    if not plain or any(f.type not in _NATIVE_CSV_TYPES or FORMAT_KEY in (f.metadata or {}) for f in stream.schema):
        return None
    with _open_once(path) as handle:
        _, names = _csv_header(path, fs, handle)
    if names != stream.schema.names:  # another file of the stream with other columns: Arrow fills them in
        return None
    return NativeFile(fs.name, path, "csv", stream.schema, None,
                      {"delimiter": o.delimiter, "quote_char": o.quote_char, "null_values": list(o.null_values),
                       "skip_rows": o.skip_rows})


class _open_once:
    """A file opened for one pass. A regular file is handed to Arrow by path (its fastest
    reader); a named pipe can be read only once, so what was peeked at is replayed before
    the rest of the pipe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pipe: BinaryIO | None = path.open("rb") if path.is_fifo() else None
        self.head = b""

    def __enter__(self) -> _open_once:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pipe is not None:
            self.pipe.close()

    def peek_head(self, size: int) -> bytes:
        return self.read_more(size)

    def read_more(self, size: int) -> bytes:
        if self.pipe is not None:
            more = self.pipe.read(size)
        else:
            with self.path.open("rb") as handle:
                handle.seek(len(self.head))
                more = handle.read(size)
        self.head += more
        return more

    @property
    def source(self) -> Any:
        return self.path if self.pipe is None else _Replay(self.head, self.pipe)


class _Replay(io.RawIOBase):
    """Bytes already read from a pipe, then the rest of the pipe."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return self.rest.readinto(buffer)


def _check_text(path: Path, fs: FileStream, head: bytes, index: int, decode: bool) -> None:
    """Refuse, with the fix, a CSV or JSON file that is compressed, binary or in a Unicode
    encoding it was not configured for, from its first bytes."""
    utf8 = fs.csv.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    for magic, kind, fix in _NOT_TEXT:
        if head.startswith(magic):
            raise ConfigError(f"{path.name} is {kind}, not {_format(fs, path)} text", field=_field(index, "path"),
                              hint=fix.format(name=path.name))
    if utf8:
        for bom, encoding in _BOMS:
            if head.startswith(bom):
                raise ConfigError(f"{path.name} is {encoding} text", field=_field(index, "csv.encoding"),
                                  hint=f"set `csv: {{encoding: {encoding.lower()}}}` on the stream, or save the file as UTF-8")
        if b"\x00" in head:
            line = head[: head.index(b"\x00")].count(b"\n") + 1
            raise ConfigError(f"{path.name} holds NUL bytes (line {line}): it is binary, or UTF-16/32 text without a BOM",
                              field=_field(index, "path"),
                              hint="if it is text, set `csv: {encoding: utf-16}` (or utf-32); else point the stream at the real export")
    if decode and utf8:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not just a character cut by the end of the sample
                line = head[: exc.start].count(b"\n") + 1
                raise ConfigError(f"{path.name} is not valid utf-8 text (line {line}, byte 0x{head[exc.start]:02x})",
                                  field=_field(index, "csv.encoding"),
                                  hint="set `csv: {encoding: latin-1}` (or the file's real encoding, e.g. cp1252, utf-16) on the stream") from None


_NOT_TEXT = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip {name}), or point the stream at the plain file"),
    (b"PK\x03\x04", "a ZIP archive", "unzip it and point the stream at the files inside"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2 {name})"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz {name})"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd {name})"),
    (b"PAR1", "a Parquet file", "set `format: parquet` on the stream (or give it a .parquet name)"),
)
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def _rest_of_header(path: Path, fs: FileStream, head: bytes, index: int, handle: _open_once | None = None) -> bytes:
    """More bytes until `head` holds the header line (after skip_rows), so the header is
    parsed whole whatever the block size; a first line over MAX_HEADER_BYTES is an error."""
    needed = fs.csv.skip_rows + 1
    more = b""
    while (head + more).count(b"\n") < needed:
        if len(head) + len(more) > MAX_HEADER_BYTES:
            raise ConfigError(f"the first line of {path.name} is over {MAX_HEADER_BYTES >> 20} MiB long: it is not a CSV header",
                              field=_field(index, "csv.delimiter"),
                              hint="check the file is CSV, and its delimiter and quote_char")
        if handle is not None:
            chunk = handle.read_more(1 << 20)
        else:
            with path.open("rb") as raw:
                raw.seek(len(head) + len(more))
                chunk = raw.read(1 << 20)
        if not chunk:
            break
        more += chunk
    return more


def _check_header(path: Path, names: list[str], fs: FileStream, index: int) -> None:
    """Column names become table columns: each must be there, printable, short and unique."""
    seen: dict[str, int] = {}
    how = ("name the columns yourself: `csv: {header: false, skip_rows: 1, column_names: [...]}`"
           if _format(fs, path) == "csv" else "rename the key in the file")
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise ConfigError(f"column {position} of {path.name} has no name in the header",
                              field=_field(index, "csv.column_names"), hint=f"add the name to the file's header, or {how}")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise ConfigError(f"column {position} of {path.name} has a control character in its name ({name[:40]!r})",
                              field=_field(index, "csv.column_names"), hint=f"fix the header, or {how}")
        if len(name) > MAX_COLUMN_NAME:
            raise ConfigError(f"column {position} of {path.name} has a name {len(name):,} characters long "
                              f"(at most {MAX_COLUMN_NAME:,})", field=_field(index, "csv.delimiter"),
                              hint=f"is `delimiter` ({fs.csv.delimiter!r}) or `quote_char` right for this file? else {how}")
        if name in seen:
            raise ConfigError(f"columns {seen[name]} and {position} of {path.name} are both named {name!r}",
                              field=_field(index, "csv.column_names"), hint=f"rename one in the file's header, or {how}")
        seen[name] = position


def _field(index: int, name: str) -> str:
    return f"streams[{index}].{name}" if index >= 0 else name


def _read_jsonl(path: Path, fs: FileStream, stream: Stream) -> Iterator[Message]:
    """JSON lines in blocks of whole lines, each parsed by Arrow in bulk. Dates and times are
    read as text and cast by the engine's kernel (Arrow's JSON reader parses neither). A block
    that fails is halved until the failing lines stand alone; only those are read with Python:
    a malformed line is quarantined, a line whose value's type changes becomes text for the
    engine to cast or quarantine. The rest of the file stays on the bulk path."""
    text_schema = pa.schema([pa.field(f.name, pa.string()) if _is_scalar(f.type) else f for f in stream.schema])
    if path.is_fifo():
        raise FatalError(f"{path.name} is a named pipe: JSON lines are read from files",
                         hint="write the export to a file first (CSV can be streamed through a pipe)")
    if _deepest_in_file(path) > MAX_JSON_DEPTH:
        # Arrow's parser would crash on the deep line: parse this file line by line instead,
        # quarantining the lines nested too deep
        yield from _read_jsonl_slowly(path, fs, text_schema, skip=0)
        return
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
            table.validate(full=True)  # Arrow's JSON reader lets invalid UTF-8 through: halve to the line
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
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
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


_BRACKET_STEP = np.zeros(256, np.int32)
_BRACKET_STEP[[ord("["), ord("{")]] = 1
_BRACKET_STEP[[ord("]"), ord("}")]] = -1


def _deepest_line(chunk: bytes, start_depth: int = 0) -> int:
    """The deepest nesting of `[`/`{` in any line of `chunk` (brackets inside strings count
    too: an upper bound, exact for real records), in bulk over the bracket bytes only."""
    return _line_depths(chunk, start_depth)[0]


def _line_depths(chunk: bytes, start_depth: int = 0) -> tuple[int, int]:
    """(deepest nesting of any line, nesting of the unfinished last line) for `chunk`, whose
    first line starts `start_depth` deep."""
    data = np.frombuffer(chunk, np.uint8)
    folded = data | 0x20  # `[`→`{` and `]`→`}` (they differ by 0x20): two compares find all four
    marks = data[(folded == 0x7B) | (folded == 0x7D) | (data == 10)]
    if not len(marks):
        return start_depth, start_depth
    depth = np.cumsum(_BRACKET_STEP[marks]) + start_depth
    newline = marks == 10
    # each line counts from its own start: subtract the depth reached at the newline before it
    last_newline = np.maximum.accumulate(np.where(newline, np.arange(len(marks)), -1))
    line_start = np.where(last_newline >= 0, depth[np.maximum(last_newline, 0)], 0)
    relative = depth - line_start
    return int(max(relative.max(), start_depth)), int(relative[-1])


def _deepest_in_file(path: Path, chunk_bytes: int = 16 << 20) -> int:
    deepest, carried = 0, 0
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            line_max, carried = _line_depths(chunk, carried)
            deepest = max(deepest, line_max)
            if deepest > MAX_JSON_DEPTH:
                break
    return deepest


def _read_jsonl_slowly(path: Path, fs: FileStream, text_schema: pa.Schema, skip: int) -> Iterator[Message]:
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if skip:
                skip -= 1
                continue
            line = raw.decode("utf-8", errors="replace")  # for the quarantine, when the line is bad
            try:
                if _deepest_line(raw) > MAX_JSON_DEPTH:
                    raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
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


def _file_error(path: Path, fs: FileStream, exc: Exception, index: int = -1) -> ConfigError:
    if isinstance(exc, ConfigError):
        return exc
    text = str(exc) or type(exc).__name__
    if _format(fs, path) == "csv" and ("UTF8" in text or "utf-8" in text.lower() or isinstance(exc, UnicodeDecodeError)):
        return ConfigError(
            f"{path.name} is not valid {fs.csv.encoding} text",
            field=_field(index, "csv.encoding"),
            hint="set `csv: {encoding: latin-1}` (or the file's real encoding, e.g. cp1252, utf-16) on the stream",
        )
    fmt = _format(fs, path)
    fix = {"parquet": "the file is damaged or not Parquet: export it again",
           "csv": "check the file is CSV, and the stream's csv options (delimiter, quote_char, encoding)",
           "jsonl": "check the file is JSON lines: one JSON object per line"}[fmt]
    return ConfigError(f"{path.name} cannot be read as {fmt}: {text.splitlines()[0][:300]}",
                       field=_field(index, "path"), hint=fix)
