"""Paginators: small classes, one pagination style each, that stop by themselves.

A paginator sees the first request (to add e.g. `limit`), then each page (to find the next
one) and decides whether there is a next page. The token-based ones stop when the API gives
no next token, and refuse to follow a token (cursor or URL) they have already followed: an
API that hands the same page back forever stops the stream with a `PaginationLoop` error
instead of looping.

An empty page ends the stream only when nothing says more remain. A page that is empty
while the API still reports a total not reached, a page count not reached or a next token
raises `EmptyPage`: the stream asks for that page again, and stops with an error if it stays
empty (never a silent success that a `write: replace` would swap in). `allow_empty_pages=True`
on a token paginator follows the token past empty pages, for APIs that filter pages after
cutting them.

    OffsetPaginator(limit=100)                  ?offset=0&limit=100, ?offset=100&limit=100 ...
    PageNumberPaginator(page_size=100)          ?page=1&per_page=100, ?page=2 ...
    BodyCursorPaginator("meta.next_cursor")     ?cursor=<from the body>  (location="body": in the JSON body)
    HeaderCursorPaginator("X-Next-Cursor")      ?cursor=<from a response header>
    NextUrlPaginator("next")                    GET <the URL in the body>
    LinkHeaderPaginator()                       GET <the Link: <...>; rel="next" URL>
    SinglePage()                                one request, no pagination

A paginator's `position()` is what gets the next page (a token, a URL, an offset), saved by
resumable streams under `position_key`, and `resume()` starts a read there.

A paginator object is a prototype: the stream copies it for every read.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping
from urllib.parse import urljoin

import pyarrow as pa
import requests


class PaginationLoop(Exception):
    """The API handed back a next-page token or URL it had already given: it would loop forever."""


class EmptyPage(Exception):
    """A page with no records while the API says more remain."""


@dataclass
class PageRequest:
    """The request for one page: a path (or absolute URL), its query parameters, and its JSON
    body (None for a GET)."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None

    def put(self, name: str, value: Any, location: str = "query") -> None:
        """Set a parameter in the query or at a dotted path of the JSON body."""
        if location == "query":
            self.params[name] = value
            return
        if self.json is None:
            self.json = {}
        node = self.json
        *parents, leaf = name.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value


@dataclass
class PageInfo:
    """What a paginator may look at after a page: the response (headers, links), the body
    without its records (a dict, or {} for a bare list), how many records came, and the
    records themselves (Arrow, for paginators that move a window by their values)."""

    response: requests.Response
    body: Mapping[str, Any]
    count: int
    records: pa.RecordBatch | None = None


def lookup(body: Any, path: str) -> Any:
    """The value at dotted `path` in `body` (None when any step is missing)."""
    value = body
    for key in path.split(".") if path else []:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _no_token(token: Any) -> bool:
    return token in (None, "", [], {})


class Paginator(ABC):
    """Base of the paginators. Subclasses implement `first` and `advance`."""

    has_next: bool = True
    position_key: str = "page"  # the name a resumable stream saves `position()` under
    reads_ahead: bool = False  # `advance` needs only the answer's body, headers and record count (see `guess`)
    reads_body: bool = True  # `advance` reads the body (not only headers and the record count)

    def fresh(self) -> Paginator:
        """A copy with no state, for one read."""
        clone = copy.deepcopy(self)
        clone.has_next = True
        clone._seen = set()
        clone._next = None
        return clone

    def first(self, request: PageRequest) -> None:  # noqa: B027 - most paginators add nothing
        """Add the first page's parameters to `request`."""

    @abstractmethod
    def advance(self, page: PageInfo, request: PageRequest) -> None:
        """Look at `page`; either set `has_next = False` or change `request` to the next page.
        Raise `EmptyPage` (leaving `request` as it was) when the page is empty but more remain."""

    def select(self, records: pa.RecordBatch) -> pa.RecordBatch:
        """The page's records to deliver (a paginator moving a window may drop repeats)."""
        return records

    def guess(self, page: PageInfo, request: PageRequest) -> PageRequest | None:
        """The request `advance` will make of `page`, worked out on a copy before the page is
        parsed (its body is the whole answer), so that the next page can be fetched meanwhile;
        None when there is no next page or it cannot be told (`reads_ahead` False, an empty
        page, a loop). `advance` stays the judge: a guess it does not confirm is dropped."""
        if not self.reads_ahead:
            return None
        trial = copy.copy(self)
        trial._seen = _Unrecorded(self.__dict__.get("_seen", ()))  # type: ignore[attr-defined]
        following = PageRequest(request.url, dict(request.params), copy.deepcopy(request.json))
        try:
            trial.advance(page, following)
        except Exception:  # an empty page, a loop, a body the paginator cannot read: no guess
            return None
        return following if trial.has_next else None

    def position(self) -> Any:
        """What gets the next page, for a checkpoint (None: not resumable)."""
        return self.__dict__.get("_next")

    def resume(self, request: PageRequest, position: Any) -> None:
        """Start at `position` (from `position()` of an earlier read)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resume a read")

    def _follow(self, token: Any, what: str) -> bool:
        """Record a next token; False when there is none. Raises PaginationLoop on a repeat."""
        if _no_token(token):
            self.has_next = False
            return False
        seen: set[str] = self.__dict__.setdefault("_seen", set())
        key = str(token)
        if key in seen:
            raise PaginationLoop(
                f"the API returned the {what} {token!r} a second time; following it would loop forever"
            )
        seen.add(key)
        self._next = token
        return True


@dataclass
class _Unrecorded:
    """The tokens a paginator followed, seen by a guess without adding to them."""

    def __init__(self, seen: Any) -> None:
        self.seen = seen

    def __contains__(self, key: object) -> bool:
        return key in self.seen

    def add(self, key: str) -> None:
        pass


class SinglePage(Paginator):
    """No pagination: one request returns everything."""

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        self.has_next = False


@dataclass
class OffsetPaginator(Paginator):
    """`?offset=N&limit=L`. Stops when `offset` reaches the total at `total_path` (if the API
    gives one), on an empty page (when it does not: then an empty page is all that says the
    end has come), or on a short page if `short_page_is_last` (off by default: many APIs cap
    page sizes silently, and a short page then is not the last)."""

    reads_ahead = True

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    start: int = 0
    total_path: str | None = None
    short_page_is_last: bool = False

    @property
    def position_key(self) -> str:  # type: ignore[override]
        return self.offset_param

    def first(self, request: PageRequest) -> None:
        self._offset = self.start
        request.params[self.offset_param] = self._offset
        request.params[self.limit_param] = self.limit

    def resume(self, request: PageRequest, position: Any) -> None:
        self._offset = int(position)
        request.params[self.offset_param] = self._offset

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        total = lookup(page.body, self.total_path) if self.total_path else None
        if page.count == 0 and total is not None and self._offset < int(total):
            raise EmptyPage(f"an empty page at offset {self._offset} while the API reports {int(total)} records")
        self._offset += page.count
        if (
            page.count == 0
            or (total is not None and self._offset >= int(total))
            or (self.short_page_is_last and page.count < self.limit)
        ):
            self.has_next = False
            return
        self._next = self._offset
        request.params[self.offset_param] = self._offset


@dataclass
class PageNumberPaginator(Paginator):
    """`?page=N` (and `&per_page=S` when `page_size` is set). Stops when the page number reaches
    the count at `total_pages_path`, or on an empty page."""

    reads_ahead = True

    page_param: str = "page"
    start: int = 1
    page_size: int | None = None
    size_param: str = "per_page"
    total_pages_path: str | None = None

    @property
    def position_key(self) -> str:  # type: ignore[override]
        return self.page_param

    def first(self, request: PageRequest) -> None:
        self._page = self.start
        request.params[self.page_param] = self._page
        if self.page_size:
            request.params[self.size_param] = self.page_size

    def resume(self, request: PageRequest, position: Any) -> None:
        self._page = int(position)
        request.params[self.page_param] = self._page

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        total = lookup(page.body, self.total_pages_path) if self.total_pages_path else None
        last = total is not None and self._page - self.start + 1 >= int(total)
        if page.count == 0 and total is not None and not last:
            raise EmptyPage(f"an empty page (page {self._page}) while the API reports {int(total)} pages")
        if page.count == 0 or last:
            self.has_next = False
            return
        self._page += 1
        self._next = self._page
        request.params[self.page_param] = self._page


class _TokenPaginator(Paginator):
    """A next token or URL read from each answer; an empty page that still carries one is an
    `EmptyPage` unless `allow_empty_pages`."""

    reads_ahead = True

    allow_empty_pages: bool = False

    def _token(self, page: PageInfo) -> Any:
        raise NotImplementedError

    def _check_empty(self, page: PageInfo, token: Any, what: str) -> None:
        if page.count == 0 and not _no_token(token) and not self.allow_empty_pages:
            raise EmptyPage(f"an empty page that still gives a {what}")


@dataclass
class BodyCursorPaginator(_TokenPaginator):
    """The next cursor is in the body at `cursor_path`; it is sent back as `cursor_param`, in the
    query (or at that dotted path of the JSON body with `location="body"`). With `has_more_path`
    the body's flag, not the cursor's absence, says whether more remain."""

    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"
    location: str = "query"
    has_more_path: str | None = None
    allow_empty_pages: bool = False

    @property
    def position_key(self) -> str:  # type: ignore[override]
        return self.cursor_param

    def resume(self, request: PageRequest, position: Any) -> None:
        request.put(self.cursor_param, position, self.location)

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        token = lookup(page.body, self.cursor_path)
        if self.has_more_path is not None and not lookup(page.body, self.has_more_path):
            self.has_next = False
            return
        self._check_empty(page, token, f"cursor (at {self.cursor_path!r})")
        if (page.count == 0 and not self.allow_empty_pages) or not self._follow(token, f"cursor (at {self.cursor_path!r})"):
            self.has_next = False
            return
        request.put(self.cursor_param, token, self.location)


@dataclass
class HeaderCursorPaginator(_TokenPaginator):
    """The next cursor is in response header `header`; it is sent back as `?cursor_param=`."""

    reads_body = False

    header: str = "X-Next-Cursor"
    cursor_param: str = "cursor"
    allow_empty_pages: bool = False

    @property
    def position_key(self) -> str:  # type: ignore[override]
        return self.cursor_param

    def resume(self, request: PageRequest, position: Any) -> None:
        request.params[self.cursor_param] = position

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        token = page.response.headers.get(self.header)
        self._check_empty(page, token, f"cursor (header {self.header})")
        if (page.count == 0 and not self.allow_empty_pages) or not self._follow(token, f"cursor (header {self.header})"):
            self.has_next = False
            return
        request.params[self.cursor_param] = token


@dataclass
class NextUrlPaginator(_TokenPaginator):
    """The body carries the next page's full URL at `next_url_path` (relative URLs are joined
    to the base URL). The URL carries its own query, so the first request's params are dropped."""

    next_url_path: str = "next"
    allow_empty_pages: bool = False
    position_key: str = "next_url"

    def resume(self, request: PageRequest, position: Any) -> None:
        request.url, request.params = str(position), {}

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        url = lookup(page.body, self.next_url_path)
        self._check_empty(page, url, "next-page URL")
        if (page.count == 0 and not self.allow_empty_pages) or not self._follow(url, "next-page URL"):
            self.has_next = False
            return
        request.url, request.params = _joined(page.response.url, str(url)), {}
        self._next = request.url


@dataclass
class LinkHeaderPaginator(_TokenPaginator):
    """RFC 8288 `Link: <url>; rel="next"` headers (GitHub, Shopify, many others)."""

    reads_body = False

    rel: str = "next"
    allow_empty_pages: bool = False
    position_key: str = "next_url"

    def resume(self, request: PageRequest, position: Any) -> None:
        request.url, request.params = str(position), {}

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        url = page.response.links.get(self.rel, {}).get("url")
        self._check_empty(page, url, f"Link rel={self.rel!r} URL")
        if (page.count == 0 and not self.allow_empty_pages) or not self._follow(url, f"Link rel={self.rel!r} URL"):
            self.has_next = False
            return
        request.url, request.params = url, {}


@lru_cache(maxsize=8)
def _joined(base: str, url: str) -> str:
    """`urljoin`, remembered for the few last pages: a stream reading ahead joins each next-page
    URL twice, in `guess` and again in `advance` (~25 µs each)."""
    return urljoin(base, url)
