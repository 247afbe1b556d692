"""Paginators: small classes, one pagination style each, that stop by themselves.

A paginator sees the first request (to add e.g. `limit`), then each page (to find the next
one) and decides whether there is a next page. Every paginator stops on an empty page; the
token-based ones also stop when the API gives no next token, and refuse to follow a token
(cursor or URL) they have already followed: an API that hands the same page back forever
stops the stream with a `PaginationLoop` error instead of looping.

    OffsetPaginator(limit=100)                  ?offset=0&limit=100, ?offset=100&limit=100 ...
    PageNumberPaginator(page_size=100)          ?page=1&per_page=100, ?page=2 ...
    BodyCursorPaginator("meta.next_cursor")     ?cursor=<from the body>
    HeaderCursorPaginator("X-Next-Cursor")      ?cursor=<from a response header>
    NextUrlPaginator("next")                    GET <the URL in the body>
    LinkHeaderPaginator()                       GET <the Link: <...>; rel="next" URL>
    SinglePage()                                one request, no pagination

A paginator object is a prototype: the stream copies it for every read.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urljoin

import requests


class PaginationLoop(Exception):
    """The API handed back a next-page token or URL it had already given: it would loop forever."""


@dataclass
class PageRequest:
    """The request for one page: a path (or absolute URL) and its query parameters."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class PageInfo:
    """What a paginator may look at after a page: the response (headers, links), the body
    without its records (a dict, or {} for a bare list), and how many records came."""

    response: requests.Response
    body: Mapping[str, Any]
    count: int


def lookup(body: Any, path: str) -> Any:
    """The value at dotted `path` in `body` (None when any step is missing)."""
    value = body
    for key in path.split(".") if path else []:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


class Paginator(ABC):
    """Base of the paginators. Subclasses implement `first` and `advance`."""

    has_next: bool = True

    def fresh(self) -> Paginator:
        """A copy with no state, for one read."""
        clone = copy.deepcopy(self)
        clone.has_next = True
        clone._seen = set()
        return clone

    def first(self, request: PageRequest) -> None:  # noqa: B027 - most paginators add nothing
        """Add the first page's parameters to `request`."""

    @abstractmethod
    def advance(self, page: PageInfo, request: PageRequest) -> None:
        """Look at `page`; either set `has_next = False` or change `request` to the next page."""

    def _follow(self, token: Any, what: str) -> bool:
        """Record a next token; False when there is none. Raises PaginationLoop on a repeat."""
        if token in (None, "", [], {}):
            self.has_next = False
            return False
        seen: set[str] = self.__dict__.setdefault("_seen", set())
        key = str(token)
        if key in seen:
            raise PaginationLoop(
                f"the API returned the {what} {token!r} a second time; following it would loop forever"
            )
        seen.add(key)
        return True


@dataclass
class SinglePage(Paginator):
    """No pagination: one request returns everything."""

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        self.has_next = False


@dataclass
class OffsetPaginator(Paginator):
    """`?offset=N&limit=L`. Stops on an empty page, when `offset` reaches the total at
    `total_path` (if the API gives one), or on a short page if `short_page_is_last` (off by
    default: many APIs cap page sizes silently, and a short page then is not the last)."""

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    start: int = 0
    total_path: str | None = None
    short_page_is_last: bool = False

    def first(self, request: PageRequest) -> None:
        self._offset = self.start
        request.params[self.offset_param] = self._offset
        request.params[self.limit_param] = self.limit

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        self._offset += page.count
        total = lookup(page.body, self.total_path) if self.total_path else None
        if (
            page.count == 0
            or (total is not None and self._offset >= int(total))
            or (self.short_page_is_last and page.count < self.limit)
        ):
            self.has_next = False
            return
        request.params[self.offset_param] = self._offset


@dataclass
class PageNumberPaginator(Paginator):
    """`?page=N` (and `&per_page=S` when `page_size` is set). Stops on an empty page or when
    the page number reaches the count at `total_pages_path`."""

    page_param: str = "page"
    start: int = 1
    page_size: int | None = None
    size_param: str = "per_page"
    total_pages_path: str | None = None

    def first(self, request: PageRequest) -> None:
        self._page = self.start
        request.params[self.page_param] = self._page
        if self.page_size:
            request.params[self.size_param] = self.page_size

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        total = lookup(page.body, self.total_pages_path) if self.total_pages_path else None
        if page.count == 0 or (total is not None and self._page - self.start + 1 >= int(total)):
            self.has_next = False
            return
        self._page += 1
        request.params[self.page_param] = self._page


@dataclass
class BodyCursorPaginator(Paginator):
    """The next cursor is in the body at `cursor_path`; it is sent back as `?cursor_param=`."""

    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        token = lookup(page.body, self.cursor_path)
        if page.count == 0 or not self._follow(token, f"cursor (at {self.cursor_path!r})"):
            self.has_next = False
            return
        request.params[self.cursor_param] = token


@dataclass
class HeaderCursorPaginator(Paginator):
    """The next cursor is in response header `header`; it is sent back as `?cursor_param=`."""

    header: str = "X-Next-Cursor"
    cursor_param: str = "cursor"

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        token = page.response.headers.get(self.header)
        if page.count == 0 or not self._follow(token, f"cursor (header {self.header})"):
            self.has_next = False
            return
        request.params[self.cursor_param] = token


@dataclass
class NextUrlPaginator(Paginator):
    """The body carries the next page's full URL at `next_url_path` (relative URLs are joined
    to the base URL). The URL carries its own query, so the first request's params are dropped."""

    next_url_path: str = "next"

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        url = lookup(page.body, self.next_url_path)
        if page.count == 0 or not self._follow(url, "next-page URL"):
            self.has_next = False
            return
        request.url, request.params = urljoin(page.response.url, str(url)), {}


@dataclass
class LinkHeaderPaginator(Paginator):
    """RFC 8288 `Link: <url>; rel="next"` headers (GitHub, Shopify, many others)."""

    rel: str = "next"

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        url = page.response.links.get(self.rel, {}).get("url")
        if page.count == 0 or not self._follow(url, f"Link rel={self.rel!r} URL"):
            self.has_next = False
            return
        request.url, request.params = url, {}
