"""`RestStream`: a stream of a JSON API, declared rather than programmed.

    customers = RestStream(
        name="customers",
        path="/customers",
        records_path="data",
        schema={"id": "int64", "email": "string", "updated_at": "timestamp"},
        primary_key=("id",),
        cursor_field="updated_at",
        cursor_param="updated_since",   # the cursor is sent as ?updated_since=<cursor_start>
        paginator=OffsetPaginator(limit=1000, total_path="total"),
    )
    for message in customers.read(client, request): ...

The declarative `rest` source is this class filled in from a job file. A Python connector
declares its streams the same way and overrides a hook only where its API is unusual:
`request_params` (extra query parameters), `format_cursor` (how the cursor is written),
`parse_page` (a body the generic parser cannot read).

Checkpoints carry no pagination state on purpose: next-page tokens expire and offsets shift
when data changes, so resuming from one could skip records. A resumed incremental read
starts again from the cursor the engine saved (inclusive), which is always safe; set
`cursor_sorted=True` only when the API returns records in ascending cursor order, so the
engine may save the cursor at every page rather than only at the end of the stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa

from threadline.contracts import Batch, Checkpoint, FatalError, Message, ReadRequest, Stream, SyncMode
from threadline.http.client import HttpClient, describe_request
from threadline.http.paginators import PageInfo, PageRequest, PaginationLoop, Paginator, SinglePage
from threadline.http.records import PageParser, ParsedPage
from threadline.http.schema import schema_from_mapping


@dataclass
class RestStream:
    """One endpoint of a JSON API, as a stream. `schema` is an Arrow schema or a
    `{column: type string}` mapping (see `threadline.http.schema`)."""

    name: str
    path: str
    schema: pa.Schema | Mapping[str, str]
    records_path: str = "data"
    primary_key: Sequence[str] = ()
    cursor_field: str | None = None
    cursor_param: str | None = None
    cursor_sorted: bool = False
    cursor_format: str | None = None  # strftime format for datetime cursors; default ISO 8601 (Z)
    paginator: Paginator = field(default_factory=SinglePage)
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.schema, pa.Schema):
            self.schema = schema_from_mapping(self.schema, where=f"streams.{self.name}.schema")
        self.primary_key = tuple(self.primary_key)
        self._parser = PageParser(self.schema, self.records_path)

    def to_stream(self) -> Stream:
        """The stream as discovery declares it."""
        assert isinstance(self.schema, pa.Schema)
        modes = (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL) if self.cursor_field else (SyncMode.FULL_REFRESH,)
        return Stream(
            name=self.name, schema=self.schema, primary_key=tuple(self.primary_key),
            cursor_field=self.cursor_field, cursor_sorted=self.cursor_sorted, sync_modes=modes,
            description=self.description,
        )

    # ------------------------------------------------------------------ hooks

    def request_params(self, request: ReadRequest) -> dict[str, Any]:
        """Query parameters of the first page: the declared ones plus the incremental cursor."""
        params = dict(self.params)
        incremental = request.sync_mode is SyncMode.INCREMENTAL and request.cursor_start is not None
        if incremental and self.cursor_param:
            params[self.cursor_param] = self.format_cursor(request.cursor_start)
        return params

    def format_cursor(self, value: Any) -> str:
        """How a cursor value is written in the query: ISO 8601 in UTC with `Z` by default."""
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            if self.cursor_format:
                return value.strftime(self.cursor_format)
            return value.isoformat() + "Z"
        if isinstance(value, date):
            return value.strftime(self.cursor_format) if self.cursor_format else value.isoformat()
        return str(value)

    def parse_page(self, response: Any) -> ParsedPage:
        """A response as Arrow records plus the rest of the body; override for odd APIs."""
        return self._parser(response)

    # ------------------------------------------------------------------ the read loop

    def read(self, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        """Every page of the stream, as a Batch followed by a Checkpoint."""
        paginator = self.paginator.fresh()
        page_request = PageRequest(self.path, self.request_params(request))
        paginator.first(page_request)
        previous: pa.RecordBatch | None = None
        while True:
            page = client.request(
                self.method, page_request.url, params=page_request.params, stream=self.name, parse=self.parse_page,
            )
            if page is None:  # the action table said IGNORE: nothing here
                return
            line = describe_request(self.method, page.response.url)
            try:
                # Before yielding: a repeated page is refused before its records go anywhere.
                if page.records.num_rows and previous is not None and page.records.equals(previous):
                    # Offsets and page numbers have no token to repeat; an API that ignores the
                    # page parameter (a misnamed one, say) answers the same page forever.
                    raise PaginationLoop(
                        "the API answered the same records twice in a row (same page twice); it seems to ignore the "
                        f"paginator's parameters ({', '.join(map(str, page_request.params)) or 'none'})"
                    )
                previous = page.records
                paginator.advance(PageInfo(page.response, page.body, page.records.num_rows), page_request)
            except PaginationLoop as exc:
                raise FatalError(
                    f"{line}: {exc}", where=f"{client.connector} / {self.name}",
                    hint="the API's pagination is broken, or the paginator configured does not match the API "
                    "(type and parameter names)",
                ) from None
            if page.records.num_rows:
                yield Batch(self.name, page.records)
                yield Checkpoint(self.name, {})
            if not paginator.has_next:
                return
