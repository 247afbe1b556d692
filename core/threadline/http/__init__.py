"""The HTTP connector kit: what every HTTP connector is made of.

    client      HttpClient, Timeouts — the retry loop over the transport: retries, rate limits, classified errors
    transport   Transport — http.client connections kept alive per host; requests' Response values
    actions     Action, Rule, ActionTable, DEFAULT_ACTIONS — status/exception → what to do (field, hint)
    backoff     RetryPolicy, server_wait — exponential back-off with jitter; Retry-After, reset headers
    budget      RequestBudget — at most N calls per window
    auth        BearerAuth, ApiKeyAuth, BasicAuth, OAuth2Auth, NoAuth
    paginators  OffsetPaginator, PageNumberPaginator, BodyCursorPaginator, HeaderCursorPaginator,
                NextUrlPaginator, LinkHeaderPaginator, SinglePage; EmptyPage, PaginationLoop
    schema      schema_from_mapping — `{"id": "int64", "tags": "json"}` → Arrow schema
    paths       Column — column paths into nested records (`a.b`, `tags[].name`, `urls[0].url`), in bulk
    records     PageParser — JSON pages to Arrow in bulk
    partitions  Fixed, FromParent — fan-out: a stream read per parent record or configured id
    pause       stop_for_rate_limit — a wait longer than the run allows: final checkpoint, then paused
    stream      RestStream — a declared stream of a JSON API
    source      RestSource — a Source made of RestStreams (pauses on long rate limits)

Log output goes to the `threadline.http` logger, with secrets masked.
"""

from threadline.http.actions import DEFAULT_ACTIONS, Action, ActionTable, BadPage, MalformedJson, NotJson, Rule
from threadline.http.auth import ApiKeyAuth, Auth, BasicAuth, BearerAuth, NoAuth, OAuth2Auth
from threadline.http.backoff import RetryPolicy, server_wait
from threadline.http.budget import RequestBudget
from threadline.http.client import ClientStats, HttpClient, Timeouts, describe_request
from threadline.http.paginators import (
    BodyCursorPaginator,
    EmptyPage,
    HeaderCursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageInfo,
    PageNumberPaginator,
    PageRequest,
    PaginationLoop,
    Paginator,
    SinglePage,
)
from threadline.http.partitions import Fixed, FromParent, Partitions
from threadline.http.paths import Column
from threadline.http.records import PageParser, ParsedPage, RecordsPathMissing
from threadline.http.schema import parse_type, schema_from_mapping
from threadline.http.source import RestSource
from threadline.http.stream import RestStream
from threadline.http.transport import Transport

__all__ = [
    "DEFAULT_ACTIONS", "Action", "ActionTable", "ApiKeyAuth", "Auth", "BadPage", "BasicAuth", "BearerAuth",
    "BodyCursorPaginator", "ClientStats", "Column", "EmptyPage", "Fixed", "FromParent", "HeaderCursorPaginator", "HttpClient", "LinkHeaderPaginator",
    "MalformedJson", "NextUrlPaginator", "NoAuth", "NotJson", "OAuth2Auth", "OffsetPaginator", "PageInfo",
    "PageNumberPaginator", "PageParser", "PageRequest", "PaginationLoop", "Paginator", "ParsedPage", "Partitions",
    "RecordsPathMissing", "RequestBudget", "RestSource", "RestStream", "RetryPolicy", "Rule", "SinglePage", "Timeouts",
    "Transport",
    "describe_request", "parse_type", "schema_from_mapping", "server_wait",
]
