"""The HTTP connector kit: what every HTTP connector is made of.

    client      HttpClient, Timeouts — requests + tenacity: retries, rate limits, classified errors
    actions     Action, ActionTable, DEFAULT_ACTIONS — status/exception → what to do
    backoff     RetryPolicy, server_wait — exponential back-off with jitter; Retry-After, reset headers
    budget      RequestBudget — at most N calls per window
    auth        BearerAuth, ApiKeyAuth, BasicAuth, OAuth2Auth, NoAuth
    paginators  OffsetPaginator, PageNumberPaginator, BodyCursorPaginator, HeaderCursorPaginator,
                NextUrlPaginator, LinkHeaderPaginator, SinglePage
    schema      schema_from_mapping — `{"id": "int64", "tags": "json"}` → Arrow schema
    records     PageParser — JSON pages to Arrow in bulk
    columns     to_batch, get_path — nested records (dotted paths) to Arrow columns
    pause       stop_for_rate_limit — a wait longer than the run allows: final checkpoint, then paused
    stream      RestStream — a declared stream of a JSON API
    source      RestSource — a Source made of RestStreams

Log output goes to the `threadline.http` logger, with secrets masked.
"""

from threadline.http.actions import DEFAULT_ACTIONS, Action, ActionTable, BadPage, MalformedJson, NotJson
from threadline.http.auth import ApiKeyAuth, Auth, BasicAuth, BearerAuth, NoAuth, OAuth2Auth
from threadline.http.backoff import RetryPolicy, server_wait
from threadline.http.budget import RequestBudget
from threadline.http.client import ClientStats, HttpClient, Timeouts, describe_request
from threadline.http.paginators import (
    BodyCursorPaginator,
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
from threadline.http.records import PageParser, ParsedPage, RecordsPathMissing
from threadline.http.schema import parse_type, schema_from_mapping
from threadline.http.source import RestSource
from threadline.http.stream import RestStream

__all__ = [
    "DEFAULT_ACTIONS", "Action", "ActionTable", "ApiKeyAuth", "Auth", "BadPage", "BasicAuth", "BearerAuth",
    "BodyCursorPaginator", "ClientStats", "HeaderCursorPaginator", "HttpClient", "LinkHeaderPaginator",
    "MalformedJson", "NextUrlPaginator", "NoAuth", "NotJson", "OAuth2Auth", "OffsetPaginator", "PageInfo",
    "PageNumberPaginator", "PageParser", "PageRequest", "PaginationLoop", "Paginator", "ParsedPage",
    "RecordsPathMissing", "RequestBudget", "RestSource", "RestStream", "RetryPolicy", "SinglePage", "Timeouts",
    "describe_request", "parse_type", "schema_from_mapping", "server_wait",
]
