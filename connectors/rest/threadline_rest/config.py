"""The `rest` source's config: everything about a simple JSON API, in the job file.

    config:
      base_url: https://api.example.com/v1
      auth: {type: bearer, token: "${CRM_TOKEN}"}
      paginator: {type: offset, limit: 1000, total_path: total}
      rate_limit: {calls: 100, per_seconds: 60}
      streams:
        - name: customers
          path: /customers
          records_path: data
          primary_key: [id]
          cursor: {field: updated_at, param: updated_since}
          schema: {id: int64, email: string, updated_at: timestamp, address: json}

Each block's `build()` makes the matching object of the HTTP kit (`threadline.http`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from threadline.contracts import ConfigError, Spec
from threadline.http import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    BodyCursorPaginator,
    HeaderCursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    NoAuth,
    OAuth2Auth,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    RequestBudget,
    RetryPolicy,
    SinglePage,
    Timeouts,
    schema_from_mapping,
)

# --------------------------------------------------------------------------- auth


class NoAuthConfig(Spec):
    """A public API."""

    type: Literal["none"] = Field("none", description="No credentials.")

    def build(self, base_url: str) -> Auth:
        return NoAuth()


class BearerConfig(Spec):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"] = Field(description="`Authorization: Bearer <token>`.")
    token: str = Field(description="The access token; use ${ENV_VAR}.")

    def build(self, base_url: str) -> Auth:
        return BearerAuth(self.token, field="auth.token")


class ApiKeyConfig(Spec):
    """An API key in a header or a query parameter."""

    type: Literal["api_key"] = Field(description="An API key in a header or query parameter.")
    key: str = Field(description="The API key; use ${ENV_VAR}.")
    name: str = Field("X-API-Key", description="The header or query parameter that carries it.")
    location: Literal["header", "query"] = Field("header", description="Where the key goes.")

    def build(self, base_url: str) -> Auth:
        return ApiKeyAuth(self.key, name=self.name, location=self.location, field="auth.key")


class BasicConfig(Spec):
    """HTTP basic auth."""

    type: Literal["basic"] = Field(description="HTTP basic auth.")
    username: str = Field(description="The user name.")
    password: str = Field(description="Use ${ENV_VAR}.")

    def build(self, base_url: str) -> Auth:
        return BasicAuth(self.username, self.password, field="auth.password")


class OAuth2Config(Spec):
    """OAuth2: client credentials, or a refresh token when one is given."""

    type: Literal["oauth2"] = Field(description="OAuth2 client credentials or refresh token.")
    token_url: str = Field(description="Absolute, or relative to base_url.")
    client_id: str = Field("", description="OAuth client id.")
    client_secret: str = Field("", description="OAuth client secret; use ${ENV_VAR}.")
    refresh_token: str = Field("", description="When set, the refresh-token flow is used; use ${ENV_VAR}.")
    scope: str = Field("", description="Requested scope, if the API wants one.")

    def build(self, base_url: str) -> Auth:
        url = self.token_url if "://" in self.token_url else f"{base_url.rstrip('/')}/{self.token_url.lstrip('/')}"
        return OAuth2Auth(
            url, client_id=self.client_id, client_secret=self.client_secret,
            refresh_token=self.refresh_token, scope=self.scope, field="auth",
        )


AuthConfig = Annotated[
    Union[NoAuthConfig, BearerConfig, ApiKeyConfig, BasicConfig, OAuth2Config], Field(discriminator="type"),
]

# --------------------------------------------------------------------------- paginators


class NoPaginatorConfig(Spec):
    type: Literal["none"] = Field("none", description="One request, no pagination.")

    def build(self) -> Paginator:
        return SinglePage()


class OffsetConfig(Spec):
    type: Literal["offset"] = Field(description="?offset=N&limit=L.")
    limit: int = Field(100, ge=1, description="Records asked per page.")
    offset_param: str = Field("offset", description="Query parameter of the offset.")
    limit_param: str = Field("limit", description="Query parameter of the page size.")
    total_path: str | None = Field(None, description="Dotted path of the total record count in the body, if any.")
    short_page_is_last: bool = Field(False, description="Stop on a page shorter than limit (only if the API never caps pages).")

    def build(self) -> Paginator:
        return OffsetPaginator(**self.model_dump(exclude={"type"}))


class PageNumberConfig(Spec):
    type: Literal["page_number"] = Field(description="?page=N.")
    page_param: str = Field("page", description="Query parameter of the page number.")
    start: int = Field(1, description="Number of the first page.")
    page_size: int | None = Field(None, ge=1, description="Records asked per page (sent as size_param).")
    size_param: str = Field("per_page", description="Query parameter of the page size.")
    total_pages_path: str | None = Field(None, description="Dotted path of the page count in the body, if any.")

    def build(self) -> Paginator:
        return PageNumberPaginator(**self.model_dump(exclude={"type"}))


class CursorConfig(Spec):
    type: Literal["cursor"] = Field(description="Next cursor in the body.")
    cursor_path: str = Field("next_cursor", description="Dotted path of the next cursor in the body.")
    cursor_param: str = Field("cursor", description="Query parameter the cursor is sent back as.")

    def build(self) -> Paginator:
        return BodyCursorPaginator(**self.model_dump(exclude={"type"}))


class HeaderCursorConfig(Spec):
    type: Literal["header_cursor"] = Field(description="Next cursor in a response header.")
    header: str = Field("X-Next-Cursor", description="The response header carrying the next cursor.")
    cursor_param: str = Field("cursor", description="Query parameter the cursor is sent back as.")

    def build(self) -> Paginator:
        return HeaderCursorPaginator(**self.model_dump(exclude={"type"}))


class NextUrlConfig(Spec):
    type: Literal["next_url"] = Field(description="The next page's URL in the body.")
    next_url_path: str = Field("next", description="Dotted path of the next URL in the body.")

    def build(self) -> Paginator:
        return NextUrlPaginator(**self.model_dump(exclude={"type"}))


class LinkHeaderConfig(Spec):
    type: Literal["link_header"] = Field(description="RFC 8288 Link header.")
    rel: str = Field("next", description="The link relation to follow.")

    def build(self) -> Paginator:
        return LinkHeaderPaginator(**self.model_dump(exclude={"type"}))


PaginatorConfig = Annotated[
    Union[NoPaginatorConfig, OffsetConfig, PageNumberConfig, CursorConfig, HeaderCursorConfig, NextUrlConfig, LinkHeaderConfig],
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------- streams


class IncrementalCursor(Spec):
    """How the stream reads only what changed: `field` is the record's cursor column; the
    last value synced is sent back as query parameter `param` (inclusive lower bound)."""

    field: str = Field(description="The records' cursor column (in the schema).")
    param: str = Field(description="Query parameter the last synced cursor is sent as (inclusive).")
    sorted: bool = Field(
        False, description="True when the API returns records in ascending cursor order "
        "(then the cursor is saved at every page, not only at the end).",
    )
    format: str | None = Field(None, description="strftime format of the value sent; default ISO 8601 UTC.")


class StreamConfig(Spec):
    """One endpoint as a stream."""

    name: str = Field(description="The stream's name (tables land as <source>__<name>).")
    path: str = Field(description="Path under base_url, e.g. /customers.")
    records_path: str = Field("data", description="Dotted path to the list of records; '' when the body is the list.")
    primary_key: list[str] = Field(default_factory=list, description="Column(s) identifying a record; upserts use them.")
    cursor: IncrementalCursor | None = None
    schema_: dict[str, str] = Field(alias="schema", description="column: type (string, int64, timestamp, decimal(18,2), struct<...>, json, ...)")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra query parameters.")
    paginator: PaginatorConfig | None = Field(None, description="Overrides the source's paginator.")

    @field_validator("primary_key", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("schema_")
    @classmethod
    def _types_are_known(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            schema_from_mapping(value)
        except ConfigError as exc:
            raise ValueError(f"{exc.field}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")) from None
        return value

    @model_validator(mode="after")
    def _keys_are_columns(self) -> StreamConfig:
        missing = [k for k in self.primary_key if k not in self.schema_]
        if missing:
            raise ValueError(f"primary_key {missing} is not in the stream's schema")
        if self.cursor and self.cursor.field not in self.schema_:
            raise ValueError(f"cursor field {self.cursor.field!r} is not in the stream's schema")
        return self


class Timeout(Spec):
    connect: float = Field(10, gt=0, description="Seconds to wait for a connection.")
    read: float = Field(60, gt=0, description="Seconds to wait for each read of an answer.")


class Retry(Spec):
    max_attempts: int = Field(6, ge=1, description="Tries per request, the first included.")
    backoff_base: float = Field(1.0, ge=0, description="Seconds before the first retry; doubles each time, with jitter.")
    max_backoff: float = Field(60, ge=0, description="Longest wait between two tries.")
    max_retry_time: float = Field(300, gt=0, description="Give up retrying a request after this many seconds.")

    def build(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class RateLimit(Spec):
    """A request budget: at most `calls` requests per `per_seconds`."""

    calls: int = Field(ge=1, description="Requests allowed per window.")
    per_seconds: float = Field(gt=0, description="Length of the window in seconds.")


class RestConfig(Spec):
    """A JSON API: where it is, how to sign in, how it pages, and its streams."""

    base_url: str = Field(description="The API's root URL, e.g. https://api.example.com/v1")
    auth: AuthConfig = Field(default_factory=NoAuthConfig)
    paginator: PaginatorConfig = Field(default_factory=NoPaginatorConfig)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Timeout = Field(default_factory=Timeout)
    retry: Retry = Field(default_factory=Retry)
    rate_limit: RateLimit | None = None
    streams: list[StreamConfig] = Field(min_length=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value

    @field_validator("streams")
    @classmethod
    def _unique_names(cls, value: list[StreamConfig]) -> list[StreamConfig]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stream names must be unique; repeated: {dupes}")
        return value

    def budget(self) -> RequestBudget | None:
        return RequestBudget(self.rate_limit.calls, self.rate_limit.per_seconds) if self.rate_limit else None

    def timeouts(self) -> Timeouts:
        return Timeouts(self.timeout.connect, self.timeout.read)
