"""The `salesforce` source: Contact, Lead, Account, Opportunity and Case (or any queryable
object) through SOQL, with the OAuth2 refresh-token flow.

Discovery asks `GET /services/data/vNN.0/sobjects/{Object}/describe` for each object and
declares every scalar field it lists, custom fields (`Something__c`) included, with the
Salesforce type mapped to Arrow (`ARROW_TYPES`). A read sends one SOQL query of exactly the
catalog's columns,

    SELECT Id, ..., SystemModstamp FROM Contact WHERE SystemModstamp >= 2024-03-01T12:00:00Z
    ORDER BY SystemModstamp ASC, Id ASC

to `/queryAll` (deleted records come too, with IsDeleted = true) or `/query`, and follows
`nextRecordsUrl` until `done`. What the HTTP kit's client does not know about Salesforce is
its 403s: REQUEST_LIMIT_EXCEEDED is the org's API limit (stop cleanly, state saved, run again
later), the others are permissions (a config error naming `objects`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import requests
from pydantic import Field, field_validator
from threadline.contracts import (
    Catalog,
    ConfigError,
    FatalError,
    Message,
    ReadRequest,
    Source,
    Spec,
    Stream,
    SyncMode,
    TransientError,
)
from threadline.http.source import checking, read_first_page
from threadline.http import HttpClient, OAuth2Auth, RestStream, RetryPolicy, Transport
from threadline.http.actions import MalformedJson
from threadline.http.client import expect_json_response
from threadline.http.paginators import PageInfo, PageRequest, Paginator
from threadline.http.records import PageParser, ParsedPage
from threadline.secrets import redact, register_secret

# Summer '26, the newest version Salesforce's REST API guide listed when checked (2026-12-06);
# 31.0 to 40.0 are deprecated from Summer '27 and retired in Summer '28.
CURRENT_API_VERSION = "v67.0"
RETIRED_THROUGH = 30  # versions 21.0 to 30.0 were retired in Summer '25
DEFAULT_OBJECTS = ["Contact", "Lead", "Account", "Opportunity", "Case"]
CURSOR_FIELD = "SystemModstamp"

# Salesforce field types (describe's `type`) → Arrow. Compound fields (address, location) are
# left out: their parts (MailingStreet, MailingCity, ...) are fields of their own. base64
# bodies cannot be queried many at a time. Any type not listed is kept as text.
ARROW_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(["id", "reference", "string", "picklist", "multipicklist", "combobox", "email", "phone",
                     "url", "textarea", "encryptedstring", "time", "anyType"], pa.string()),
    "boolean": pa.bool_(),
    "int": pa.int64(), "long": pa.int64(),
    "double": pa.float64(), "percent": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
}
SKIPPED_TYPES = frozenset({"address", "location", "base64"})


def arrow_type(field: dict[str, Any]) -> pa.DataType | None:
    """The Arrow type of a describe field; None for the types a query cannot return."""
    kind = field.get("type") or "string"
    if kind in SKIPPED_TYPES:
        return None
    if kind == "currency":  # money: decimal, at the precision and scale the org declares
        precision = min(max(int(field.get("precision") or 18), 1), 38)
        scale = min(max(int(field.get("scale") or 2), 0), precision)
        return pa.decimal128(precision, scale)
    return ARROW_TYPES.get(kind, pa.string())


class SalesforceConfig(Spec):
    client_id: str = Field(description="The connected app's consumer key.")
    client_secret: str = Field(description="The connected app's consumer secret. Use ${SALESFORCE_CLIENT_SECRET}.")
    refresh_token: str = Field(description="A refresh token from the OAuth web-server flow, for a user with API access "
                                           "(scopes `api refresh_token`). Use ${SALESFORCE_REFRESH_TOKEN}.")
    login_url: str = Field("https://login.salesforce.com", description="Where tokens come from: "
                           "https://login.salesforce.com, https://test.salesforce.com for sandboxes, or the My Domain URL.")
    instance_url: str | None = Field(None, description="The org's API URL (https://yourdomain.my.salesforce.com); "
                                     "default: the instance_url the token response names.")
    api_version: str = Field(CURRENT_API_VERSION, pattern=r"^v\d+\.0$", description="REST API version (vNN.0).")
    objects: list[str] = Field(default_factory=lambda: list(DEFAULT_OBJECTS), min_length=1,
                               description="The objects to sync, by API name; custom objects (Invoice__c) work too.")
    include_deleted: bool = Field(True, description="Query through /queryAll, so deleted records arrive with "
                                                    "IsDeleted = true (for as long as they are in the recycle bin).")
    batch_size: int = Field(2000, ge=1, le=2000, description="Records per page (Sforce-Query-Options batchSize; "
                                                             "Salesforce honours 200 to 2000).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(300.0, gt=0, description="Longest a request is retried before the stream "
                                                                "stops (its state saved) with a transient error.")

    @field_validator("api_version")
    @classmethod
    def _not_retired(cls, version: str) -> str:
        if int(version[1:].split(".")[0]) <= RETIRED_THROUGH:
            raise ValueError(f"Salesforce retired REST API versions up to v{RETIRED_THROUGH}.0 in Summer '25 (they "
                             f"answer 410 GONE); use {CURRENT_API_VERSION}")
        return version


class SalesforceAuth(OAuth2Auth):
    """The refresh-token flow as Salesforce wants it: client id and secret in the form body, and
    the response's `instance_url` kept (it is the org's API host)."""

    def __init__(self, config: SalesforceConfig) -> None:
        super().__init__(f"{config.login_url.rstrip('/')}/services/oauth2/token", client_id=config.client_id,
                         client_secret=config.client_secret, refresh_token=config.refresh_token, field="refresh_token")
        self.instance_url = ""

    def refresh(self, session: Transport | None = None, timeout: Any = None) -> None:
        session = session or self._session or Transport()
        data = {"grant_type": "refresh_token", "refresh_token": self.refresh_token,
                "client_id": self.client_id, "client_secret": self.client_secret}
        try:
            response = session.post(self.token_url, data=data, timeout=timeout or self._timeout)
        except requests.RequestException as exc:
            raise ConfigError(f"could not reach the Salesforce token URL {redact(self.token_url)}: {redact(exc)}",
                              field="login_url", hint="check login_url and that it is reachable from this machine") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error", "") if isinstance(body, dict) else ""
            field = "client_secret" if error == "invalid_client" else "refresh_token"
            raise ConfigError(
                f"Salesforce refused the token refresh ({response.status_code} {error or ''}): "
                f"{redact(response.text[:200])}", field=field,
                hint="the refresh token expired or was revoked (re-authorise the connected app)"
                if field == "refresh_token" else "check client_id and client_secret of the connected app",
            )
        register_secret(body["access_token"])
        self.access_token = body["access_token"]
        self.instance_url = body.get("instance_url") or ""
        # Salesforce sends no expires_in: the session lasts as the org's timeout says; a 401 refreshes.
        self.expires_at = datetime.now(UTC).timestamp() + float(body.get("expires_in") or 7200)
        self.refreshes += 1


class QueryPaginator(Paginator):
    """`nextRecordsUrl` until `done` (a page may be empty and still not the last)."""

    def advance(self, page: PageInfo, request: PageRequest) -> None:
        url = page.body.get("nextRecordsUrl")
        if page.body.get("done", True) or not self._follow(url, "nextRecordsUrl"):
            self.has_next = False
            return
        request.url, request.params = str(url), {}


class SoqlStream(RestStream):
    """One object as a stream: the query selects the schema's columns."""

    sobject: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        assert isinstance(self.schema, pa.Schema)
        # pyarrow's JSON reader does not parse dates: read them as text and cast after, so that
        # pages keep the fast path (about 15x faster than the careful one here).
        self._dates = [f.name for f in self.schema if pa.types.is_date(f.type)]
        if self._dates:
            wire = pa.schema([pa.field(f.name, pa.string()) if f.name in self._dates else f for f in self.schema])
            self._parser = PageParser(wire, self.records_path)

    def parse_page(self, response: requests.Response) -> ParsedPage:
        page = self._parser(response)
        if not self._dates:
            return page
        records = page.records
        for name in self._dates:
            index = records.schema.get_field_index(name)
            try:
                column = records.column(index).cast(self.schema.field(name).type)  # type: ignore[union-attr]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue  # a value that is not a date: text, for the engine to quarantine that row
            records = records.set_column(index, name, column)
        return ParsedPage(records, page.body, page.response)

    def request_params(self, request: ReadRequest) -> dict[str, Any]:
        columns = ", ".join(request.stream.schema.names)
        soql = f"SELECT {columns} FROM {self.sobject}"
        if request.sync_mode is SyncMode.INCREMENTAL and request.cursor_start is not None:
            soql += f" WHERE {CURSOR_FIELD} >= {self.format_cursor(request.cursor_start)}"
        return {"q": soql + f" ORDER BY {CURSOR_FIELD} ASC, Id ASC"}


class SalesforceSource(Source[SalesforceConfig]):
    """CRM objects from Salesforce, with custom fields, deletions and SystemModstamp increments."""

    name = "salesforce"
    spec = SalesforceConfig

    def __init__(self) -> None:
        self._auth: SalesforceAuth | None = None
        self._auth_for: tuple[str, ...] = ()

    def client(self, config: SalesforceConfig) -> HttpClient:
        register_secret(config.client_secret)
        register_secret(config.refresh_token)
        # One session for every stream of a run: Salesforce limits logins per user and hour.
        key = (config.login_url, config.client_id, config.client_secret, config.refresh_token)
        if self._auth is None or self._auth_for != key:
            self._auth, self._auth_for = SalesforceAuth(config), key
        auth = self._auth
        base = config.instance_url
        if not base:
            if not auth.instance_url:
                auth.refresh()
            base = auth.instance_url
        return HttpClient(
            base, auth=auth, headers={"Sforce-Query-Options": f"batchSize={config.batch_size}"},
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
            connector=self.name,
        )

    # ------------------------------------------------------------------ discovery

    def describe(self, config: SalesforceConfig, client: HttpClient, sobject: str) -> Stream:
        """The stream of one object, from its describe."""
        with _explained(config, sobject, describing=True):
            body = client.request("GET", f"/services/data/{config.api_version}/sobjects/{sobject}/describe",
                                  stream=sobject, parse=_json)
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, list):
            raise FatalError(f"the describe of {sobject} has no fields list", where=f"{self.name} / {sobject}")
        schema = pa.schema([pa.field(f["name"], t) for f in fields if isinstance(f, dict) and f.get("name")
                            and (t := arrow_type(f)) is not None])
        if CURSOR_FIELD not in schema.names or "Id" not in schema.names:
            raise ConfigError(f"{sobject} has no {CURSOR_FIELD} or Id field, so it cannot be synced", field="objects")
        return self.soql_stream(config, sobject, schema).to_stream()

    def soql_stream(self, config: SalesforceConfig, sobject: str, schema: pa.Schema) -> SoqlStream:
        endpoint = "queryAll" if config.include_deleted else "query"
        stream = SoqlStream(
            name=sobject, path=f"/services/data/{config.api_version}/{endpoint}", schema=schema,
            records_path="records", primary_key=("Id",), cursor_field=CURSOR_FIELD, cursor_sorted=True,
            cursor_format="%Y-%m-%dT%H:%M:%SZ", paginator=QueryPaginator(),
            description=f"Salesforce {sobject} records" + (" (deleted ones with IsDeleted = true)"
                                                           if config.include_deleted else ""),
        )
        stream.sobject = sobject
        return stream

    def discover(self, config: SalesforceConfig) -> Catalog:
        client = self.client(config)
        try:
            return Catalog(tuple(self.describe(config, client, sobject) for sobject in config.objects))
        finally:
            client.close()

    # ------------------------------------------------------------------ the contract

    def check(self, config: SalesforceConfig) -> None:
        with checking(self.client(config), field="instance_url") as client:
            for sobject in config.objects:
                stream = self.describe(config, client, sobject)
                with _explained(config, sobject):
                    read_first_page(self.soql_stream(config, sobject, stream.schema), client)

    def read(self, config: SalesforceConfig, request: ReadRequest) -> Iterator[Message]:
        sobject = request.stream.name
        if sobject not in config.objects:
            raise ConfigError(f"no stream named {sobject!r}", field="objects", hint=f"declared: {', '.join(config.objects)}")
        stream = self.soql_stream(config, sobject, request.stream.schema)
        client = self.client(config)
        try:
            with _explained(config, sobject):
                yield from stream.read(client, request)
        finally:
            client.close()


class RequestLimitExceeded(TransientError):
    """The org's API request limit (24 hours, rolling) is spent: the stream stopped with its state saved."""


class _explained(contextlib.AbstractContextManager):
    """Salesforce's 403s and 404s, said in the config's terms."""

    def __init__(self, config: SalesforceConfig, sobject: str, describing: bool = False) -> None:
        self.config, self.sobject, self.describing = config, sobject, describing

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, ConfigError) and exc.status == 403:
            if "REQUEST_LIMIT_EXCEEDED" in exc.message:
                resume = datetime.now(UTC) + timedelta(hours=1)
                raise RequestLimitExceeded(
                    f"Salesforce's API request limit for the org is spent (403 REQUEST_LIMIT_EXCEEDED): {exc.message}",
                    where=exc.where, retry_after=3600.0,
                    hint=f"every page read so far is committed and the state saved; run the sync again later "
                    f"(e.g. after {resume:%H:%M} UTC) or raise the org's limit — it resumes from the saved state",
                ) from None
            if "API_DISABLED_FOR_ORG" in exc.message or "API_CURRENTLY_DISABLED" in exc.message:
                raise ConfigError(
                    f"Salesforce refuses API access to this user or org: {exc.message}", field="refresh_token",
                    where=exc.where, hint="the user needs the API Enabled permission, and the org an edition with API "
                    "access; then authorise again and use the new refresh token",
                ) from None
            raise ConfigError(
                f"the Salesforce user may not read {self.sobject}: {exc.message}", field="objects", where=exc.where,
                hint=f"grant the user read access to {self.sobject} (profile or permission set) or remove it from objects",
            ) from None
        if isinstance(exc, ConfigError) and "again after refreshing" in exc.message:
            raise ConfigError(
                exc.message, field="refresh_token", where=exc.where,
                hint="a fresh session was refused too: the connected app needs the `api` OAuth scope (and "
                "`refresh_token`), and the user the API Enabled permission; authorise again with those scopes",
            ) from None
        if isinstance(exc, FatalError) and "INVALID_FIELD" in exc.message and "No such column" in exc.message:
            raise FatalError(
                f"a field of the saved catalog of {self.sobject} no longer exists in Salesforce: {exc.message}",
                where=exc.where, hint="a field was deleted or renamed; discover the source again (the catalog "
                "follows describe) and re-run the sync",
            ) from None
        if isinstance(exc, FatalError) and self.describing and exc.status == 404:
            raise ConfigError(
                f"Salesforce has no object {self.sobject!r} (or not in {self.config.api_version}): {exc.message}",
                field="objects", where=exc.where, hint="check the object's API name (custom objects end in __c)",
            ) from None
        return False


def _json(response: requests.Response) -> Any:
    expect_json_response(response)
    try:
        return response.json()
    except ValueError:
        raise MalformedJson("the describe answer is not valid JSON") from None
