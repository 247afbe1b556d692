"""`google_data_manager`: Customer Match through the Google Data Manager API — the default for
new integrations (Google requires it for most new Customer Match integrations since 2026-04-01).

    POST /v1/audienceMembers:ingest     {destinations, audienceMembers, consent, encoding: HEX, termsOfService}
    POST /v1/audienceMembers:remove     {destinations, audienceMembers, encoding: HEX}
    POST /v1/audienceMembers:removeAll  {destinations, removeAsOfTime}          (a mirror, after its ingests)
    GET  /v1/accountTypes/GOOGLE_ADS/accounts/{customer}/userLists/{list}    (check, and the size after a push)

Each request is synchronous and all-or-nothing: it holds at most 10,000 members (10
identifiers each) and is applied when it returns, so the push ledger can follow every batch.
When Google refuses a request because of some members (a 400 naming
`audience_members[i]`), those members are reported with Google's reason and the rest are
sent again. At most 300 requests a minute go out (a request budget shared by every push of
the same OAuth client); a 429 RESOURCE_EXHAUSTED is waited out by the kit.

A mirror ingests every member, then removes the members no ingest of this push touched:
`audienceMembers:removeAll` with `removeAsOfTime` (only members last added before it are
removed) set to a moment, on Google's clock, after the previous push and before this one's
first ingest. That moment is one second past the `Date` of an answer read just before the
first ingest (Google's time then lies within that second), and the first ingest waits until
the second is over. So the list never holds less than the audience, the result does not depend
on the order Google applies the requests in, and a mirror that fails midway leaves the old
members in place next to the new ones. Without a `Date` header the list is emptied first.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import ClassVar

import pyarrow as pa
from pydantic import Field

from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    AudienceWriter,
    ConfigError,
    FatalError,
    PushMode,
    PushReport,
    PushResult,
    ThreadlineError,
)
from threadline.http import HttpClient, RequestBudget
from threadline.http.source import checking

from threadline_google_customer_match.account import GoogleAccountSpec, google_client
from threadline_google_customer_match.errors import RowsRejected
from threadline_google_customer_match.identifiers import (
    EMAIL_GOOGLE_CANONICAL,
    PLAIN_COLUMNS,
    data_manager_members,
    json_list,
    prepare,
)
from threadline_google_customer_match.rejections import rejections_for, split_unmatchable, without

log = logging.getLogger("threadline.google_customer_match")

NAME = "google_data_manager"
MAX_MEMBERS = 10_000
RESEND_ROUNDS = 3  # a request refused for some members is sent again without them, this many times at most
_BUDGETS: dict[tuple[str, str], RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


class DataManagerSpec(GoogleAccountSpec):
    base_url: str = "https://datamanager.googleapis.com"
    terms_of_service_accepted: bool = False
    requests_per_minute: int = Field(300, ge=1, le=300)


def _budget(config: DataManagerSpec) -> RequestBudget:
    """Google's quota is per project (OAuth client), so every push of one client shares it."""
    with _BUDGETS_LOCK:
        key = (config.base_url, config.client_id)
        if key not in _BUDGETS or _BUDGETS[key].calls != config.requests_per_minute:
            _BUDGETS[key] = RequestBudget(config.requests_per_minute, 60.0)
        return _BUDGETS[key]


class GoogleDataManager(AudienceDestination[DataManagerSpec]):
    """Google Customer Match lists through the Data Manager API (see the module docstring)."""

    name: ClassVar[str] = NAME
    spec: ClassVar[type[DataManagerSpec]] = DataManagerSpec
    channel: ClassVar[str] = "advertising"
    max_batch_rows: ClassVar[int] = MAX_MEMBERS
    min_members: ClassVar[int] = 100  # "An audience must have at least 100 members ... to be eligible for targeting"
    modes: ClassVar[tuple[PushMode, ...]] = (PushMode.DIFF, PushMode.MIRROR)
    applies_each_batch: ClassVar[bool] = True
    plain_columns: ClassVar[tuple[str, ...]] = PLAIN_COLUMNS

    def check(self, config: DataManagerSpec) -> None:
        _require_terms(config)
        with checking(self._client(config)) as client:
            user_list(client, config)

    def prepare(self, config: DataManagerSpec, members: pa.Table) -> pa.Table:
        return prepare(members, EMAIL_GOOGLE_CANONICAL)

    def open_audience(self, config: DataManagerSpec, target: AudienceTarget) -> AudienceWriter:
        _require_terms(config)
        return DataManagerWriter(self._client(config), config, mirror=target.mode is PushMode.MIRROR)

    @staticmethod
    def _client(config: DataManagerSpec) -> HttpClient:
        return google_client(NAME, config.base_url, config, budget=_budget(config))


def _require_terms(config: DataManagerSpec) -> None:
    if not config.terms_of_service_accepted:
        raise ConfigError(
            "Customer Match uploads must declare the Customer Match terms of service accepted",
            field="terms_of_service_accepted", where=NAME,
            hint="accept the terms in Google Ads (Tools → Audience manager → Customer Match), "
                 "then set terms_of_service_accepted: true",
        )


def user_list(client: HttpClient, config: DataManagerSpec) -> dict:
    """The destination list, which must take contact information (upload key type CONTACT_ID)."""
    found = client.request(
        "GET", f"/v1/accountTypes/GOOGLE_ADS/accounts/{config.customer_id}/userLists/{config.user_list_id}",
        headers=_login_header(config), parse=lambda r: r.json(),
    ) or {}
    keys = (found.get("ingestedUserListInfo") or {}).get("uploadKeyTypes") or []
    if "CONTACT_ID" not in keys:
        raise ConfigError(
            f"user list {config.user_list_id} takes {', '.join(keys) or 'no uploaded data'}, not contact information",
            field="user_list_id", where=NAME,
            hint="use a Customer Match list created with upload key type CONTACT_ID (CONTACT_INFO in Google Ads)",
        )
    return found


def google_time(client: HttpClient, config: DataManagerSpec) -> datetime | None:
    """Google's clock, to the second, from the `Date` of an answer (reading the list)."""
    date = client.request(
        "GET", f"/v1/accountTypes/GOOGLE_ADS/accounts/{config.customer_id}/userLists/{config.user_list_id}",
        headers=_login_header(config), parse=lambda r: r.headers.get("Date"),
    )
    try:
        return parsedate_to_datetime(date).astimezone(timezone.utc) if date else None
    except (TypeError, ValueError):
        return None


def _login_header(config: DataManagerSpec) -> dict[str, str]:
    """userLists methods take the manager account as a header (ingest takes it in the body)."""
    login = config.login_customer_id
    return {"login-account": f"accountTypes/GOOGLE_ADS/accounts/{login}"} if login else {}


class DataManagerWriter(AudienceWriter):
    """One push: each add/remove is one synchronous request (applied when it returns)."""

    def __init__(self, client: HttpClient, config: DataManagerSpec, *, mirror: bool = False) -> None:
        self.client, self.config = client, config
        self.mirror = mirror
        self.mirror_begun = False
        self.remove_as_of: datetime | None = None  # a mirror removes who was last added before this
        self.report = PushReport()
        self.requests = 0
        self.last_request_id = ""

    def add(self, rows: pa.Table) -> PushResult:
        if self.mirror and not self.mirror_begun:
            self._begin_mirror()
        return self._send("ingest", rows)

    def remove(self, rows: pa.Table) -> PushResult:
        return self._send("remove", rows)

    def finish(self) -> PushReport:
        """Every batch is applied already; what is left is asking Google for the list's size."""
        if self.mirror:
            self._end_mirror()
        try:
            size = (user_list(self.client, self.config).get("sizeInfo") or {}).get("displayNetworkMembersCount")
            self.report.match_estimate = int(size) if size is not None else None
        except ThreadlineError as exc:  # the members are in; a missing estimate must not fail the push
            log.warning("%s: pushed, but the list's size could not be read: %s", NAME, exc.render())
        finally:
            self.client.close()
        self.report.details.update(user_list=self.config.user_list_id, requests=self.requests, last_request_id=self.last_request_id)
        return self.report

    def abort(self) -> None:
        self.client.close()

    def _begin_mirror(self) -> None:
        """Fix the mirror's `removeAsOfTime` before its first ingest (see the module docstring)."""
        self.mirror_begun = True
        google_now = google_time(self.client, self.config)
        read_at = time.monotonic()
        if google_now is None:  # no clock of Google's to go by: empty the list now, fill it after
            self._post("removeAll", '{"destinations":' + _destinations(self.config) + "}")
            return
        self.remove_as_of = google_now + timedelta(seconds=1)
        time.sleep(max(0.0, read_at + 1.0 - time.monotonic()))

    def _end_mirror(self) -> None:
        """Remove who this mirror did not ingest; a mirror of no members empties the list."""
        if self.remove_as_of is not None:
            stamp = self.remove_as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
            self._post("removeAll", '{"destinations":' + _destinations(self.config) + f',"removeAsOfTime":"{stamp}"}}')
        elif not self.mirror_begun:
            self._post("removeAll", '{"destinations":' + _destinations(self.config) + "}")

    def _send(self, verb: str, rows: pa.Table) -> PushResult:
        if rows.num_rows > MAX_MEMBERS:
            raise ValueError(f"{NAME}: at most {MAX_MEMBERS} members per request, got {rows.num_rows}")
        self.report.sent += rows.num_rows
        rows, rejected = split_unmatchable(rows)
        for _ in range(RESEND_ROUNDS):
            if not rows.num_rows:
                break
            try:
                self._request(verb, rows)
                break
            except RowsRejected as refused:
                refused_now = rejections_for(rows, refused.errors)
                rejected += refused_now
                rows = without(rows, refused_now)
        else:
            raise FatalError(f"Google refused the request again after {RESEND_ROUNDS} rounds without the members it named",
                             where=NAME, hint="see the rejections above; the push can be run again")
        result = PushResult(accepted=rows.num_rows, rejected=rejected)
        self.report.accepted += result.accepted
        self.report.rejected += len(rejected)
        return result

    def _request(self, verb: str, rows: pa.Table) -> None:
        self._post(verb, (
            '{"destinations":' + _destinations(self.config)
            + ',"audienceMembers":' + json_list(data_manager_members(rows))
            + ',"encoding":"HEX"'
            + (_ingest_terms(self.config) if verb == "ingest" else "")
            + "}"
        ))

    def _post(self, verb: str, body: str) -> None:
        answer = self.client.request(
            "POST", f"/v1/audienceMembers:{verb}", data=body.encode(), headers={"Content-Type": "application/json"},
            stream=self.config.user_list_id, parse=lambda r: r.json(),
        ) or {}
        self.requests += 1
        self.last_request_id = str(answer.get("requestId", ""))


def _destinations(config: DataManagerSpec) -> str:
    login = f',"loginAccount":{{"accountType":"GOOGLE_ADS","accountId":"{config.login_customer_id}"}}' if config.login_customer_id else ""
    return (f'[{{"reference":"threadline","operatingAccount":{{"accountType":"GOOGLE_ADS","accountId":"{config.customer_id}"}}'
            f'{login},"productDestinationId":"{config.user_list_id}"}}]')


def _ingest_terms(config: DataManagerSpec) -> str:
    consent = config.consent
    return (f',"consent":{{"adUserData":"CONSENT_{consent.ad_user_data}","adPersonalization":"CONSENT_{consent.ad_personalization}"}}'
            ',"termsOfService":{"customerMatchTermsOfServiceStatus":"ACCEPTED"}')

