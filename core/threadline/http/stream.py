"""`RestStream`: a stream of a JSON API, declared rather than programmed.

    customers = RestStream(
        name="customers",
        path="/customers",
        records_path="data",
        schema={"id": "int64", "email": "string", "city": "string", "updated_at": "timestamp"},
        columns={"city": "address.city"},        # column paths into nested records (see `paths`)
        primary_key=("id",),
        cursor_field="updated_at",
        cursor_param="updated_since",   # the cursor is sent as ?updated_since=<cursor_start>
        paginator=OffsetPaginator(limit=1000, total_path="total"),
    )
    for message in customers.read(client, request): ...

The declarative `rest` source is this class filled in from a job file. A Python connector
declares its streams the same way and overrides a hook only where its API is unusual:
`request_params` (extra query parameters), `request_body` (a JSON body, for search
endpoints read by POST), `format_cursor` (how the cursor is written), `parse_page` (a body
the generic parser cannot read).

What a declaration can say besides the basics:

- `columns`: paths into nested records (`attributes.email`, `tags[].name`); see `paths`.
- `partitions`: fan-out over parent records or configured ids (`/lists/{list_id}/members`);
  see `partitions`.
- `cursor_template` / `cursor_exclusive`: the cursor sent inside an expression
  (`greater-or-equal(updated,{})`), or one unit early to an API that filters "after" it.
- `body` and `method="POST"`: a JSON body, with the paginator's token in it
  (`BodyCursorPaginator(..., location="body")`).
- `resumable`: the paginator's position is saved in every checkpoint, so an interrupted
  read (a crash, a rate limit that outlasts the run) resumes at the page after the last
  committed one. Only for positions that stay valid (an id to start after, an export
  cursor); a token the API no longer accepts restarts that partition from its first page.

Without `resumable`, checkpoints carry no pagination state on purpose: next-page tokens
expire and offsets shift when data changes, so resuming from one could skip records. A
resumed incremental read starts again from the cursor the engine saved (inclusive), which
is always safe; set `cursor_sorted=True` only when the API returns records in ascending
cursor order, so the engine may save the cursor at every page rather than only at the end.

A page that is empty while the API says more remain (a total not reached, a next token) is
asked for again, twice; still empty, it stops the stream with an error, never a silent end.
"""

from __future__ import annotations

import json
import logging
import string
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from threadline.contracts import Batch, Checkpoint, FatalError, Message, ReadRequest, Rejected, Stream, SyncMode
from threadline.http.actions import BadPage
from threadline.http.client import HttpClient, describe_request, expect_json_response
from threadline.http.paginators import EmptyPage, PageInfo, PageRequest, PaginationLoop, Paginator, SinglePage
from threadline.http.partitions import Partitions
from threadline.http.paths import ColumnSpec
from threadline.http.records import SMALL_PAGE_BYTES, PageParser, ParsedPage, answer_json, parsing
from threadline.http.schema import schema_from_mapping

log = logging.getLogger("threadline.http")

EMPTY_PAGE_RETRIES = 2  # an empty page while more remain is asked for again this many times
RESUME_KEY = "resume"  # a resumable stream's position in its checkpoints
# After an answer bigger than this the next page is not fetched ahead from a guess that reads
# the body: reading a big body on a thread while the page parses cost more than it saved
# (Mailchimp's 1.2 MB pages of 1,000 members: 37k against 57k records per CPU-second, 6 runs each
# at load ~7; Zendesk's 800 kB ticket pages: 53k against 46k records/s, 7 runs each at load ~6.5;
# HubSpot's 70 kB pages: the same CPU, 35% more records/s). A guess from the headers alone
# (Shopify's Link header) reads ahead whatever the size: Shopify's 350 kB customer pages, 9 runs
# each at load ~7, 35k against 39k records/s (72k against 68k records per CPU-second).
READ_AHEAD_MAX_BYTES = 256 * 1024


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
    cursor_template: str = "{}"  # how the cursor value sits in its parameter: "greater-or-equal(updated,{})"
    cursor_exclusive: bool = False  # the API filters after the value: send 1 (or 1 second) earlier
    paginator: Paginator = field(default_factory=SinglePage)
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    body: Mapping[str, Any] | None = None  # a JSON body (POST search endpoints)
    columns: Mapping[str, ColumnSpec] = field(default_factory=dict)  # column → path in the record
    other_fields: str | None = None  # a `json` column keeping each record's undeclared top-level fields
    partitions: Partitions | None = None
    resumable: bool = False
    min_batch_rows: int = 0  # pages smaller than this are gathered into one batch (many tiny partitions)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.schema, pa.Schema):
            self.schema = schema_from_mapping(self.schema, where=f"streams.{self.name}.schema")
        self.primary_key = tuple(self.primary_key)
        self._fixed = self._partition_columns()
        self._placeholders = {name for _, name, _, _ in string.Formatter().parse(self.path) if name}
        self._parser = PageParser(self.schema, self.records_path, self.columns, fixed=frozenset(self._fixed),
                                  other_fields=self.other_fields)

    def _partition_columns(self) -> dict[str, str]:
        """Schema column → partition key, for the columns a partition fills."""
        if self.partitions is None:
            return {}
        assert isinstance(self.schema, pa.Schema)
        return self.partitions.column_map(self.schema.names, self.partitions.keys())

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

    def request_params(self, request: ReadRequest, partition: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Query parameters of the first page: the declared ones, the incremental cursor, and the
        partition's values that neither fill the path nor a column (`?usernames=a,b,c`)."""
        params = dict(self.params)
        for key, value in (partition or {}).items():
            if not key.startswith("_") and key not in self._placeholders and key not in self._fixed.values():
                params[key] = value
        if self.incremental(request) and self.cursor_param:
            params[self.cursor_param] = self.cursor_template.format(self.format_cursor(request.cursor_start))
        return params

    def request_body(self, request: ReadRequest, partition: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The JSON body of the first page (a copy of `body`); override to put the cursor in it."""
        return json.loads(json.dumps(self.body)) if self.body is not None else None

    @staticmethod
    def incremental(request: ReadRequest) -> bool:
        return request.sync_mode is SyncMode.INCREMENTAL and request.cursor_start is not None

    def format_cursor(self, value: Any) -> str:
        """How a cursor value is written in the query: ISO 8601 in UTC with `Z` by default."""
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            if self.cursor_exclusive:
                value -= timedelta(seconds=1)
            if self.cursor_format:
                return value.strftime(self.cursor_format)
            return value.isoformat() + "Z"
        if isinstance(value, date):
            if self.cursor_exclusive:
                value -= timedelta(days=1)
            return value.strftime(self.cursor_format) if self.cursor_format else value.isoformat()
        if self.cursor_exclusive and isinstance(value, int):
            return str(value - 1)
        return str(value)

    def parse_page(self, response: Any) -> ParsedPage:
        """A response as Arrow records plus the rest of the body; override for odd APIs."""
        return self._parser(response)

    def reads_ahead(self) -> bool:
        """Whether the next page is fetched while this one parses (see `_page`): when the paginator
        can tell the next request from the raw answer at no extra cost, from its headers or from
        the orjson parse the page's own parse makes anyway (`shares_parse`). Guessing from the
        body of a page parsed otherwise would parse it once more (11-40% of parsing it, measured
        on Zendesk, LoyaltyLion and Mailchimp pages), a loss whenever no core is idle."""
        paginator = self.paginator
        return paginator.reads_ahead and (not paginator.reads_body or self.shares_parse(0))

    def shares_parse(self, size: int) -> bool:
        """Whether `parse_page` reads a page of `size` bytes from the orjson parse a guess makes of
        it (`answer_json`): with json columns, or a page under `SMALL_PAGE_BYTES` parsed by the
        kit's parser. A stream parsing its pages its own way says no unless it overrides this."""
        if self._parser.json_columns:
            return True
        return size < SMALL_PAGE_BYTES and type(self).parse_page is RestStream.parse_page

    def resume_from(self, request: ReadRequest) -> dict[str, Any] | None:
        """Where a resumable read starts: the position in the state it was handed (or None)."""
        saved = request.state.get(RESUME_KEY) if self.resumable else None
        return saved if isinstance(saved, dict) else None

    def position_state(self, position: dict[str, Any] | None) -> dict[str, Any]:
        """A checkpoint's state for `position` (None: the read is complete)."""
        return {RESUME_KEY: position} if self.resumable else {}

    # ------------------------------------------------------------------ the read loop

    def read(self, client: HttpClient, request: ReadRequest) -> Iterator[Message]:
        """Every page of the stream (of every partition), as Batches and Checkpoints."""
        saved = self.resume_from(request)
        done: list[Any] = list((saved or {}).get("done") or [])
        keys = self.partitions.keys() if self.partitions else []
        follow = bool(self.partitions and self.partitions.follow)
        pending: list[pa.RecordBatch] = []
        with ThreadPoolExecutor(1, thread_name_prefix=f"read-ahead {self.name}") if self.reads_ahead() \
                else nullcontext() as pool:
            yield from self._read_partitions(client, request, saved, done, keys, follow, pending, pool)
        if self.resumable:
            yield Checkpoint(self.name, self.position_state(None))  # complete: the next read starts afresh

    def _read_partitions(self, client: HttpClient, request: ReadRequest, saved: dict[str, Any] | None,
                         done: list[Any], keys: list[str], follow: bool, pending: list[pa.RecordBatch],
                         pool: ThreadPoolExecutor | None) -> Iterator[Message]:
        for item in self.partitions.walk(client, request) if self.partitions else iter([{}]):
            if isinstance(item, Checkpoint):  # a followed parent's position: the children before it are read
                yield from self._yield_pending(pending)
                yield Checkpoint(self.name, item.state)
                continue
            ident = {k: item[k] for k in keys if k in item}
            if ident in done:
                continue
            token = None
            if saved and all(saved.get(k) == v for k, v in ident.items()):
                token = saved.get(self.paginator.position_key)
            yield from self._read_partition(client, request, item, token, done, pending, pool, checkpoints=not follow)
            if keys and not follow:
                done.append(ident)
        yield from self._yield_pending(pending)

    def _read_partition(self, client: HttpClient, request: ReadRequest, partition: dict[str, Any], token: Any,
                        done: list[Any], pending: list[pa.RecordBatch], pool: ThreadPoolExecutor | None, *,
                        checkpoints: bool) -> Iterator[Message]:
        paginator = self.paginator.fresh()
        values = {k: v for k, v in partition.items() if not k.startswith("_")}
        # Hooks of streams without partitions are called as they always were: (request) alone.
        extra = (partition,) if partition else ()
        page_request = PageRequest(self.path.format(**values) if values else self.path,
                                   self.request_params(request, *extra), self.request_body(request, *extra))
        paginator.first(page_request)
        if token is not None:
            paginator.resume(page_request, token)
        previous: pa.RecordBatch | None = None
        empty_tries = 0
        where = f"{client.connector} / {self.name}"
        ahead: _Ahead | None = None
        while True:
            try:
                page, ahead = self._page(client, page_request, paginator, pool, ahead)
            except FatalError as exc:
                if token is not None and exc.status in (400, 404, 410) and previous is None:
                    # Tokens do not live forever: read this partition again from its first page.
                    log.warning("%s: the API refused the saved position %s=%r; reading %s from its first page",
                                where, paginator.position_key, "***", self.name)
                    yield from self._read_partition(client, request, partition, None, done, pending, pool,
                                                    checkpoints=checkpoints)
                    return
                if self.partitions is not None and partition and exc.status == 404:
                    raise self.partitions.gone(partition, exc) from None
                raise
            if page is None:  # the action table said IGNORE: nothing here
                return
            records = paginator.select(page.records)
            try:
                # Before yielding: a repeated page is refused before its records go anywhere.
                if records.num_rows and previous is not None and records.equals(previous):
                    # Offsets and page numbers have no token to repeat; an API that ignores the
                    # page parameter (a misnamed one, say) answers the same page forever.
                    raise PaginationLoop(
                        "the API answered the same records twice in a row (same page twice); it seems to ignore the "
                        f"paginator's parameters ({', '.join(map(str, page_request.params)) or 'none'})"
                    )
                count = page.count if page.count is not None else page.records.num_rows
                paginator.advance(PageInfo(page.response, page.body, count, page.records), page_request)
            except EmptyPage as exc:
                empty_tries += 1
                if empty_tries > EMPTY_PAGE_RETRIES:
                    raise FatalError(
                        f"{describe_request(self.method, page.response.url)}: {exc}; asked {empty_tries} times. "
                        "The stream stops here rather than end early: "
                        "what was read before is committed, a replaced table is left as it was",
                        where=where, hint="the API lost track of its pages; run the sync again later",
                    ) from None
                log.warning("%s: %s: %s; asking for that page again", where,
                            describe_request(self.method, page.response.url), exc)
                time.sleep(client.retry.backoff(empty_tries))
                continue
            except PaginationLoop as exc:
                raise FatalError(
                    f"{describe_request(self.method, page.response.url)}: {exc}", where=where,
                    hint="the API's pagination is broken, or the paginator configured does not match the API "
                    "(type and parameter names)",
                ) from None
            empty_tries = 0
            previous = records if records.num_rows else previous
            if page.rejected:
                yield Rejected(self.name, [r for r, _ in page.rejected], "; ".join(sorted({w for _, w in page.rejected})))
            if records.num_rows:
                pending.append(self._finished(records, partition))
            if checkpoints and (sum(b.num_rows for b in pending) >= self.min_batch_rows or not paginator.has_next):
                yield from self._yield_pending(pending)
                position = None
                if self.resumable:
                    here = {k: v for k, v in partition.items() if not k.startswith("_")}
                    position = {**here, "done": list(done)} if paginator.has_next else {"done": [*done, here]}
                    if paginator.position() is not None:
                        position[paginator.position_key] = paginator.position()
                yield Checkpoint(self.name, self.position_state(position) if self.resumable else {})
            if not paginator.has_next:
                return

    def _page(self, client: HttpClient, request: PageRequest, paginator: Paginator, pool: ThreadPoolExecutor | None,
              ahead: _Ahead | None) -> tuple[ParsedPage | None, _Ahead | None]:
        """The page `request` asks for, and the next page's fetch when it is under way.

        Reading ahead (a paginator that `reads_ahead`): the answer is fetched (or taken from
        `ahead`, when that fetched this very request), the paginator guesses the next request
        from it, that request is sent on a thread while this page parses, one page ahead at
        most. Errors of a fetch are raised here, for the page they belong to; a guess the
        paginator does not confirm is dropped unread. A page that fails to parse is asked for
        again through the client's loop, whose action table says what that means (retry it,
        ignore it, fail)."""
        fetch = self._fetch if pool is not None else None
        if ahead is not None and ahead.request != request:
            ahead.drop()
            ahead = None
        if fetch is None or pool is None:
            return client.request(self.method, request.url, params=request.params, json=request.json,
                                  stream=self.name, parse=self.parse_page), None
        response = ahead.future.result() if ahead is not None else fetch(client, request)
        if response is None:  # the action table said IGNORE
            return None, None
        with parsing(response):  # the guess's parse of the page lives until the page is parsed
            following = None
            size = len(response.content)
            if not paginator.reads_body or (size <= READ_AHEAD_MAX_BYTES and self.shares_parse(size)):
                following = paginator.guess(self._answer(response, paginator), request)
            ahead = _Ahead(following, pool.submit(fetch, client, following)) if following is not None else None
            try:
                return self.parse_page(response), ahead
            except BadPage:
                if ahead is not None:
                    ahead.drop()
            except BaseException:
                if ahead is not None:
                    ahead.drop()
                raise
        return client.request(self.method, request.url, params=request.params, json=request.json,
                              stream=self.name, parse=self.parse_page), None

    def _answer(self, response: Any, paginator: Paginator) -> PageInfo:
        """What a paginator's guess reads: the whole body and the number of records at the
        records path; for a paginator reading headers only, no body and a count that is not 0
        (an empty page is `advance`'s to judge)."""
        if not paginator.reads_body:
            return PageInfo(response, {}, 1)
        body = answer_json(response)
        records = body
        for key in self._parser.path:
            records = records.get(key) if isinstance(records, dict) else None
        return PageInfo(response, body if isinstance(body, dict) else {},
                        len(records) if isinstance(records, list) else 0)

    def _fetch(self, client: HttpClient, request: PageRequest) -> Any:
        """One page's answer, checked (status, HTML) but not parsed."""
        return client.request(self.method, request.url, params=request.params, json=request.json,
                              stream=self.name, parse=expect_json_response)

    def _finished(self, records: pa.RecordBatch, partition: Mapping[str, Any]) -> pa.RecordBatch:
        """The batch as the stream declares it: partition values filled in, helper columns dropped."""
        assert isinstance(self.schema, pa.Schema)
        for column, key in self._fixed.items():
            index = records.schema.get_field_index(column)
            kind = self.schema.field(column).type
            records = records.set_column(index, column, pa.array([partition.get(key)] * records.num_rows, kind))
        if records.num_columns != len(self.schema):
            records = records.select(self.schema.names)
        return records

    def _yield_pending(self, pending: list[pa.RecordBatch]) -> Iterator[Message]:
        if not pending:
            return
        batch = pending[0] if len(pending) == 1 else pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
        pending.clear()
        yield Batch(self.name, batch)


@dataclass
class _Ahead:
    """The next page's request, and its fetch under way."""

    request: PageRequest
    future: Future[Any]

    def drop(self) -> None:
        """Not wanted after all: let it finish and forget its answer (or its error)."""
        self.future.cancel() or self.future.exception()
