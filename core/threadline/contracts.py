"""The contracts between threadline and its plugins, in one file.

A *source* declares streams (a name, an Arrow schema, a primary key, a cursor) and yields
`Batch` messages (Arrow record batches) and `Checkpoint` messages (resumable state). A
*destination* writes a stream's batches and commits them durably when asked; the engine saves
a checkpoint's state only after that commit. Errors are classified so the engine knows what
to do with them: a `ConfigError` is for the user to fix, a `TransientError` is retried, a
`FatalError` stops the stream.

Everything else in threadline (the engine, the HTTP kit, the plugins) is built on these.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import pyarrow as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

# The errors are part of this contract; they live in a leaf module so start-up can use them
# without importing Arrow.
from threadline.errors import ConfigError, FatalError, RateLimitStop, ThreadlineError, TransientError  # noqa: F401

# --------------------------------------------------------------------------- field metadata
#
# The one vocabulary for what a stream's schema says about a field beyond its Arrow type.

FORMAT_KEY = b"format"  # strftime format of a date/time the source delivers as text ("%m/%d/%y")
JSON_KEY, JSON_VALUE = b"encoding", b"json"  # a string column holding JSON documents (nested, free-form)


def json_field(name: str) -> pa.Field:
    """A string field marked as holding JSON documents."""
    return pa.field(name, pa.string(), nullable=True, metadata={JSON_KEY: JSON_VALUE})


def is_json_field(field: pa.Field) -> bool:
    """True for a string field that holds JSON documents."""
    return bool(field.metadata) and field.metadata.get(JSON_KEY) == JSON_VALUE


def field_format(field: pa.Field) -> str | None:
    """The strftime format a text value of this field is parsed with, if the source gave one."""
    value = (field.metadata or {}).get(FORMAT_KEY)
    return value.decode() if value else None


# --------------------------------------------------------------------------- streams


class SyncMode(str, enum.Enum):
    FULL_REFRESH = "full_refresh"
    INCREMENTAL = "incremental"


class WriteDisposition(str, enum.Enum):
    APPEND = "append"
    REPLACE = "replace"  # the stream's table is swapped for this run's rows when the stream ends
    UPSERT = "upsert"  # insert or update by primary key


OPERATION_COLUMN = "_threadline_op"
"""The column of a *change stream* (change data capture): what happened to each row's record,
one of `Operation`'s values. A stream whose schema has it may carry deletions: a "delete" row
holds the record's primary key (its other columns may be null). A destination that declares
`applies_deletes` removes that record when it upserts; one that appends keeps the row as it
is (a change log). The engine refuses to upsert a change stream into a destination that
cannot apply deletes, since the deleted records would stay as if they were live."""


class Operation(str, enum.Enum):
    """What a change stream's row says happened to its record (`OPERATION_COLUMN`)."""

    INSERT = "insert"  # also a snapshot's rows, read before the changes that follow them
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Stream:
    """One kind of record a source offers: what discovery returns for each stream.

    `schema` is the Arrow schema every batch is coerced to. A field's metadata may carry
    `FORMAT_KEY` (for example `%m/%d/%y`) when the source delivers the value as text that the
    engine should parse with that format, or the JSON mark (`json_field`, `is_json_field`)
    for a string column holding JSON documents.

    `cursor_field` makes incremental sync possible: the engine tracks the largest cursor value
    it has written and hands it back as `ReadRequest.cursor_start` next time. Set
    `cursor_sorted=False` when the source does not return records in cursor order; the cursor
    is then saved only when the stream finishes, never at a mid-stream checkpoint.

    `arrival_field` names a UTC timestamp column holding when each record arrived (an event
    stream's acceptance time); `threadline sync --follow` measures its latency from it.
    """

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None
    cursor_sorted: bool = True
    sync_modes: tuple[SyncMode, ...] = (SyncMode.FULL_REFRESH,)
    description: str = ""
    arrival_field: str | None = None

    def __post_init__(self) -> None:
        names = set(self.schema.names)
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"stream {self.name!r}: primary key {missing} not in its schema")
        if self.cursor_field and self.cursor_field not in names:
            raise ValueError(f"stream {self.name!r}: cursor {self.cursor_field!r} not in its schema")
        if self.arrival_field and self.arrival_field not in names:
            raise ValueError(f"stream {self.name!r}: arrival field {self.arrival_field!r} not in its schema")
        if self.cursor_field and SyncMode.INCREMENTAL not in self.sync_modes:
            object.__setattr__(self, "sync_modes", (*self.sync_modes, SyncMode.INCREMENTAL))

    @property
    def carries_deletes(self) -> bool:
        """Whether this is a change stream (its schema has `OPERATION_COLUMN`)."""
        return OPERATION_COLUMN in self.schema.names

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description, for `threadline discover` and stability checks."""
        return {
            "name": self.name,
            "primary_key": list(self.primary_key),
            "cursor_field": self.cursor_field,
            "sync_modes": [m.value for m in self.sync_modes],
            "fields": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in self.schema],
        }


@dataclass(frozen=True)
class Catalog:
    """The streams a source offers, in a stable order."""

    streams: tuple[Stream, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.streams]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"catalog declares streams more than once: {sorted(dupes)}")

    def __iter__(self) -> Iterator[Stream]:
        return iter(self.streams)

    def names(self) -> list[str]:
        return [s.name for s in self.streams]

    def get(self, name: str) -> Stream:
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise ConfigError(
            f"no stream named {name!r}",
            hint=f"this source offers: {', '.join(self.names()) or '(none)'}",
        )


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Batch:
    """Records of one stream, as Arrow. Columns are matched to the stream schema by name."""

    stream: str
    records: pa.RecordBatch


@dataclass(frozen=True)
class Checkpoint:
    """A point the source can resume from. `state` must be JSON-serialisable.

    The engine saves it only after the destination has committed every batch before it, so
    when the source's generator is resumed after yielding it, that state is durable (a source
    may then acknowledge the position to its server, as the postgres source does with an LSN).

    `metrics` are figures about the source at this point that a person watching runs wants
    (for example a replication slot's lag in bytes): the engine keeps the last ones in the
    run's history (`threadline runs`); they are never state and never record values.
    """

    stream: str
    state: dict[str, Any]
    metrics: dict[str, int | float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """Records the source itself could not turn into a row (a ragged CSV line, broken JSON).

    They go to quarantine with `reason`; they are never dropped silently. `records` hold the
    raw text or fields so a person can repair and replay them.
    """

    stream: str
    records: list[dict[str, Any]]
    reason: str


@dataclass(frozen=True)
class NativeFile:
    """A whole file the destination loads itself, instead of the Arrow batches read from it.

    A source yields it only for a format listed in `ReadRequest.native_formats`, and only when
    the destination can apply the engine's rules itself:
    - Parquet: the file needs no coercion (its own Arrow `schema` is the stream's schema); the
      one rule left, rows with an empty primary key, is met by holding them back (`FileLoad`);
    - CSV: `schema` is the stream's schema (the header's columns, in order, with their target
      types) and `options` says how to read the text (`delimiter`, `quote_char`, `null_values`,
      `skip_rows`). The destination loads only the rows whose every value converts exactly as
      the engine's cast would, and holds back the rest as text for the engine to coerce or
      quarantine; lines with the wrong number of columns come back as `FileLoad.malformed`.
      Held-back rows are written after the loaded ones, so where the order of rows decides
      (an upsert: the last row of a key wins) the destination hands back, with them and in
      file order, the loaded rows of every key a held-back row will land under.
    Anything else is read as `Batch`es, as ever.
    """

    stream: str
    path: Path
    format: str  # "parquet" or "csv"
    schema: pa.Schema
    rows: int | None  # None when the file must be read to know (CSV)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileLoad:
    """What a destination did with a `NativeFile`: rows loaded, and rows held back (an empty
    primary key, or a CSV value that does not convert exactly) for the engine to coerce or
    quarantine as it does any batch."""

    rows: int
    held_back: pa.Table | None = None
    # lines that could not be read as rows (e.g. a CSV line with the wrong number of columns),
    # as `Rejected.records` are, and the reason the engine quarantines them with
    malformed: list[dict[str, Any]] = field(default_factory=list)
    malformed_reason: str = ""


Message = Batch | Checkpoint | Rejected | NativeFile


@dataclass(frozen=True)
class ReadRequest:
    """What the engine asks a source to read for one stream.

    `state` is the stream's last saved checkpoint state (empty on a first sync).
    For incremental syncs `cursor_start` is the inclusive lower bound: read records whose
    cursor is >= it. Inclusive on purpose: records that share the boundary value with the
    last sync are read again rather than lost, and upserts make the re-read harmless.
    """

    stream: Stream
    sync_mode: SyncMode
    state: dict[str, Any] = field(default_factory=dict)
    cursor_start: Any = None
    native_formats: frozenset[str] = frozenset()  # file formats the destination loads itself (NativeFile)


# --------------------------------------------------------------------------- plugins

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class Spec(BaseModel):
    """Base for connector config models: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _relative_to_job(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    return value if value.is_absolute() or base is None else Path(base) / value


JobPath = Annotated[Path, AfterValidator(_relative_to_job)]
"""A path in a connector's config: relative paths are taken from the job file's folder."""


class Source(ABC, Generic[ConfigT]):
    """A source of records. Subclasses set `name` (the connector name used in job files)
    and `spec` (a pydantic model of their config), and implement the three methods."""

    name: ClassVar[str]
    spec: ClassVar[type[BaseModel]]

    @abstractmethod
    def check(self, config: ConfigT) -> None:
        """Verify config and credentials; raise ConfigError naming the field if they are wrong."""

    @abstractmethod
    def discover(self, config: ConfigT) -> Catalog:
        """The streams this config gives access to."""

    @abstractmethod
    def read(self, config: ConfigT, request: ReadRequest) -> Iterator[Message]:
        """Yield batches of `request.stream`, with a Checkpoint whenever a resume point is reached."""

    def pending(self, config: ConfigT, stream: Stream, state: dict[str, Any], up_to: int) -> int | None:
        """Optional: how many records wait to be read after the saved `state` (counting may stop
        at `up_to`). `threadline sync --follow` polls it to start a micro-batch as soon as
        enough have arrived; None (the default) means the source cannot tell cheaply."""
        return None


@dataclass(frozen=True)
class StreamTarget:
    """Where and how one stream lands in a destination."""

    source: str  # the source's name in the job file
    stream: Stream
    disposition: WriteDisposition
    table: str
    run_id: str


@dataclass
class WriteReport:
    rows_written: int = 0
    rows_rejected: int = 0
    rejections: list[str] = field(default_factory=list)  # reasons, never record values


@dataclass
class StepResult:
    """What one post-run step of a destination did (`Destination.finish_run`): a profile
    build, a push. Its summary holds counts and names, never personal data. The engine names
    the destination as the job file does."""

    destination: str
    step: str
    outcome: str  # succeeded | failed | skipped
    summary: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


class StreamWriter(ABC):
    """Writes one stream for one run. The engine calls `write` for each batch, `commit` at each
    checkpoint (after which the written rows must survive a crash), and `finish` once at the end
    of the stream (REPLACE swaps the table there). `abort` undoes anything not yet committed."""

    @abstractmethod
    def write(self, batch: pa.RecordBatch) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def finish(self) -> WriteReport: ...

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Called when the stream fails; the default leaves committed data as it is."""

    native_formats: ClassVar[frozenset[str]] = frozenset()  # formats `load_file` takes

    def load_file(self, file: NativeFile) -> FileLoad:
        """Load a whole file of a format in `native_formats` (read by the destination itself,
        e.g. DuckDB's read_parquet), as part of the current commit like `write`."""
        raise NotImplementedError(f"{type(self).__name__} loads no file itself")


class Destination(ABC, Generic[ConfigT]):
    """A place records land. Subclasses set `name` and `spec` and implement two methods."""

    name: ClassVar[str]
    spec: ClassVar[type[BaseModel]]
    dispositions: ClassVar[tuple[WriteDisposition, ...]] = tuple(WriteDisposition)  # what it can do
    # True when an upsert removes the record of a row whose OPERATION_COLUMN is "delete"
    applies_deletes: ClassVar[bool] = False

    @abstractmethod
    def check(self, config: ConfigT) -> None:
        """Verify the destination can be written; raise ConfigError naming the field if not."""

    @abstractmethod
    def open_stream(self, config: ConfigT, target: StreamTarget) -> StreamWriter:
        """A writer for one stream of one run."""

    def check_targets(self, config: ConfigT, targets: list[StreamTarget]) -> None:
        """Called by `threadline check` with every stream the job will send here, so that a
        destination can reject, before any run, config that names a missing column."""

    def finish_run(self, config: ConfigT, run_id: str) -> list[StepResult]:
        """Work that must succeed for the run to succeed, once every stream of the run has
        finished and before the run is recorded: the profile store builds profiles and pushes
        audiences here. Each step's outcome goes into the run's record (`threadline runs`); a
        step that failed, or an exception raised here, fails the run. Default: nothing to do."""
        return []

    def locate(self, config: ConfigT, target: StreamTarget) -> str:
        """Where `target` lands, as stable text (a file and a table, a host and a table). The
        engine keys saved state by it, so a job pointed at another file or server reads
        everything again. Never include a secret. The default names only the table."""
        return f"{self.name}:{target.table}"

    def table_exists(self, config: ConfigT, target: StreamTarget) -> bool | None:
        """Whether `target`'s table is there; None when the destination cannot tell. A stream
        with saved state whose table is gone is read again in full. Must not create anything."""
        return None

    def release(self, config: ConfigT) -> None:  # noqa: B027 - optional hook
        """Called once when a run ends: close what the run held open (a database file's
        lock, a connection), so the next run — perhaps another process — can open it."""


# --------------------------------------------------------------------------- audiences
#
# An *audience destination* (an ad platform, an email tool's list, a direct-mail file) is
# not fed by sources but by the profile store's audiences. The store hands it the members to
# add and to remove since its last successful push (a diff), or every member (a mirror).
#
#   members (plain, normalized by the store) ──prepare──► rows as the platform gets them
#   (hashed per platform)  ──AudienceWriter.add / remove, ≤ max_batch_rows each──► platform
#
# `prepare` is where personal data stops: what it returns is what leaves the machine, and
# what the store keeps in its push ledger so that a member can be removed later even after
# the store has forgotten them. Only `plain_columns` may hold personal data in the clear.

MEMBER_COLUMNS = (
    "member_id",  # the profile id; never sent unless a platform takes an external id
    "email",  # trimmed, lower-case
    "phone",  # E.164 with '+'
    "first_name",
    "last_name",
    "address_line1",
    "city",
    "region",
    "postal_code",
    "country",  # ISO 3166 alpha-2, upper-case
    "birth_date",  # YYYY-MM-DD
)
MEMBER_SCHEMA = pa.schema([(name, pa.string()) for name in MEMBER_COLUMNS])


class PushMode(str, enum.Enum):
    DIFF = "diff"  # add who joined and remove who left since the last successful push
    MIRROR = "mirror"  # make the platform's audience exactly the current members


@dataclass(frozen=True)
class AudienceTarget:
    """One push of one audience to one destination."""

    activation: str  # the activation's name in the job file
    audience: str
    mode: PushMode
    run_id: str
    adds: int  # how many rows `add` will receive in this push (platforms want estimates)
    removes: int


@dataclass(frozen=True)
class RowRejection:
    member_id: str
    reason: str  # the platform's own reason; never the identifier itself


@dataclass
class PushResult:
    """What the platform said about one request."""

    accepted: int = 0
    rejected: list[RowRejection] = field(default_factory=list)


@dataclass
class PushReport:
    """What a whole push did, as the platform reported it."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    match_estimate: int | None = None  # the platform's matched-member estimate, where it gives one
    details: dict[str, Any] = field(default_factory=dict)  # platform ids (job, session, list), never PII


class AudienceWriter(ABC):
    """Pushes one audience to one platform. The runner calls `add` and `remove` with at most
    `max_batch_rows` prepared rows each (all removes before adds in a diff; only adds in a
    mirror), then `finish` once, or `abort` if anything failed."""

    @abstractmethod
    def add(self, rows: pa.Table) -> PushResult: ...

    @abstractmethod
    def remove(self, rows: pa.Table) -> PushResult: ...

    @abstractmethod
    def finish(self) -> PushReport:
        """Complete the push (run an upload job, close a replace session) and report."""

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Give up on this push; the default leaves what the platform already applied."""


class AudienceDestination(ABC, Generic[ConfigT]):
    """A platform audiences are pushed to. Subclasses set the class attributes and implement
    `check`, `prepare` and `open_audience`."""

    name: ClassVar[str]
    spec: ClassVar[type[BaseModel]]
    channel: ClassVar[str]  # consent members need: "advertising", "email", "sms" or "direct_mail"
    max_batch_rows: ClassVar[int]  # the platform's maximum rows per request
    min_members: ClassVar[int] = 0  # below this the platform cannot use the audience; not pushed
    modes: ClassVar[tuple[PushMode, ...]] = (PushMode.DIFF, PushMode.MIRROR)
    # True when every add/remove call is applied by the platform as soon as it returns, so
    # the ledger can follow each call; False when nothing applies until `finish` (an upload
    # job that runs at the end), so a push killed midway is sent again in full.
    applies_each_batch: ClassVar[bool] = True
    plain_columns: ClassVar[tuple[str, ...]] = ()  # prepared columns that are personal data in the clear
    # What the push ledger does with plain columns (diff mode): by default it keeps them as
    # they are. `ledger_omitted` ones are sent but never kept (a removal finds the member by
    # the other columns, e.g. Mailchimp's subscriber hash); `ledger_encrypted` ones are kept
    # encrypted with the store's key, compared by a keyed digest, and decrypted for `remove`.
    ledger_omitted: ClassVar[tuple[str, ...]] = ()
    ledger_encrypted: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def check(self, config: ConfigT) -> None:
        """Verify the platform can be reached and the audience exists; ConfigError naming the field if not."""

    @abstractmethod
    def prepare(self, config: ConfigT, members: pa.Table) -> pa.Table:
        """Members (MEMBER_SCHEMA) → the rows this platform receives: normalized per the
        platform's rules and hashed, vectorized. Must keep `member_id` as the first column."""

    @abstractmethod
    def open_audience(self, config: ConfigT, target: AudienceTarget) -> AudienceWriter:
        """A writer for one push."""
