"""Records a tap hands over as files: the Singer BATCH message.

    {"type": "BATCH", "stream": "users",
     "encoding": {"format": "jsonl" | "parquet", "compression": "gzip" | "none"},
     "manifest": ["file:///tmp/batches/users-0001.json.gz", ...]}

JSON-lines files hold one record object per line and are read by Arrow's JSON reader against
the stream's schema in one call per file; Parquet files are read as they are. Only local files
(`file://` URLs or plain paths) can be read here.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

from threadline_singer.records import Parsed, RecordParser, table_to_batch


def local_path(url: str) -> Path:
    """The local path of a manifest entry; ValueError for anything that is not a local file."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else url)
    raise ValueError(f"{url!r} is not a local file (scheme {parsed.scheme!r})")


def read_batch_files(message: dict[str, Any], parser: RecordParser) -> Iterator[Parsed]:
    """The records of every file in a BATCH message's manifest, one Parsed per file."""
    encoding = message.get("encoding") or {}
    fmt = str(encoding.get("format", "jsonl")).lower()
    compression = str(encoding.get("compression") or "none").lower()
    for url in message.get("manifest") or []:
        path = local_path(url)
        if fmt == "parquet":
            yield Parsed(table_to_batch(pq.read_table(path), parser.schema))
        elif fmt in ("jsonl", "json"):
            yield _read_jsonl(path, compression, parser)
        else:
            raise ValueError(f"unsupported BATCH format {fmt!r} (supported: jsonl, parquet)")


def _open(path: Path, compression: str) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if compression == "gzip" else None)


def _read_jsonl(path: Path, compression: str, parser: RecordParser) -> Parsed:
    if not parser.json_fields:
        try:  # the fast path: the whole file in one call, no Python per record
            with _open(path, compression) as stream:
                table = pj.read_json(
                    stream,
                    parse_options=pj.ParseOptions(
                        explicit_schema=pa.schema(list(parser.record_type)), unexpected_field_behavior="ignore"
                    ),
                )
            return Parsed(table_to_batch(table, parser.schema))
        except pa.ArrowInvalid:
            pass  # some value does not fit: take the path that sorts good rows from bad
    with _open(path, compression) as stream:
        data = stream.read()
    lines = [b'{"record":' + line + b"}" for line in io.BytesIO(data).read().splitlines() if line.strip()]
    return parser.parse_lines(lines)
