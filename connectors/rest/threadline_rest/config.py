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

    type: Literal["none"] = "none"

    def build(self, base_url: str) -> Auth:
        return NoAuth()


class BearerConfig(Spec):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"]
    token: str = Field(description="The access token; use ${ENV_VAR}.")

    def build(self, base_url: str) -> Auth:
        return BearerAuth(self.token, field="auth.token")


class ApiKeyConfig(Spec):
    """An API key in a header or a query parameter."""

    type: Literal["api_key"]
    key: str = Field(description="The API key; use ${ENV_VAR}.")
    name: str = Field("X-API-Key", description="The header or query parameter that carries it.")
    location: Literal["header", "query"] = "header"

    def build(self, base_url: str) -> Auth:
        return ApiKeyAuth(self.key, name=self.name, location=self.location, field="auth.key")


class BasicConfig(Spec):
    """HTTP basic auth."""

    type: Literal["basic"]
    username: str
    password: str = Field(description="Use ${ENV_VAR}.")

    def build(self, base_url: str) -> Auth:
        return BasicAuth(self.username, self.password, field="auth.password")


class OAuth2Config(Spec):
    """OAuth2: client credentials, or a refresh token when one is given."""

    type: Literal["oauth2"]
    token_url: str = Field(description="Absolute, or relative to base_url.")
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    scope: str = ""

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
    type: Literal["none"] = "none"

    def build(self) -> Paginator:
        return SinglePage()


class OffsetConfig(Spec):
    type: Literal["offset"]
    limit: int = Field(100, ge=1)
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None
    short_page_is_last: bool = False

    def build(self) -> Paginator:
        return OffsetPaginator(**self.model_dump(exclude={"type"}))


class PageNumberConfig(Spec):
    type: Literal["page_number"]
    page_param: str = "page"
    start: int = 1
    page_size: int | None = Field(None, ge=1)
    size_param: str = "per_page"
    total_pages_path: str | None = None

    def build(self) -> Paginator:
        return PageNumberPaginator(**self.model_dump(exclude={"type"}))


class CursorConfig(Spec):
    type: Literal["cursor"]
    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"

    def build(self) -> Paginator:
        return BodyCursorPaginator(**self.model_dump(exclude={"type"}))


class HeaderCursorConfig(Spec):
    type: Literal["header_cursor"]
    header: str = "X-Next-Cursor"
    cursor_param: str = "cursor"

    def build(self) -> Paginator:
        return HeaderCursorPaginator(**self.model_dump(exclude={"type"}))


class NextUrlConfig(Spec):
    type: Literal["next_url"]
    next_url_path: str = "next"

    def build(self) -> Paginator:
        return NextUrlPaginator(**self.model_dump(exclude={"type"}))


class LinkHeaderConfig(Spec):
    type: Literal["link_header"]
    rel: str = "next"

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

    field: str
    param: str
    sorted: bool = Field(
        False, description="True when the API returns records in ascending cursor order "
        "(then the cursor is saved at every page, not only at the end).",
    )
    format: str | None = Field(None, description="strftime format of the value sent; default ISO 8601 UTC.")


class StreamConfig(Spec):
    """One endpoint as a stream."""

    name: str
    path: str
    records_path: str = Field("data", description="Dotted path to the list of records; '' when the body is the list.")
    primary_key: list[str] = Field(default_factory=list)
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
    connect: float = Field(10, gt=0)
    read: float = Field(60, gt=0)


class Retry(Spec):
    max_attempts: int = Field(6, ge=1)
    backoff_base: float = Field(1.0, ge=0)
    max_backoff: float = Field(60, ge=0)
    max_retry_time: float = Field(300, gt=0)

    def build(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class RateLimit(Spec):
    """A request budget: at most `calls` requests per `per_seconds`."""

    calls: int = Field(ge=1)
    per_seconds: float = Field(gt=0)


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
