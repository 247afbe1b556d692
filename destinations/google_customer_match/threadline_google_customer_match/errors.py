"""Google's error bodies → threadline's classified errors, as one table you can read.

Both APIs answer a failure with a google.rpc.Status in JSON, each with its own details:

    Google Ads API     {"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT", "details": [
                         {"@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                          "errors": [{"errorCode": {"offlineUserDataJobError": "CONFLICTING_OPERATION"},
                                      "message": ..., "location": {"fieldPathElements": [
                                          {"fieldName": "operations", "index": 3}, ...]}}]}]}}
    Data Manager API   {"error": {..., "details": [
                         {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_ARGUMENT"},
                         {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
                             {"field": "audience_members.audience_members[3].user_data", "reason": "INVALID_SHA256_FORMAT",
                              "description": ...}]}]}}

A partial failure of `addOperations` is the same Status under `partialFailureError` in a 200.

The HTTP kit decides retries, rate limits and token refreshes from the status code; what it
cannot know is which Google code means which config field. `error_hook` looks at every error
answer first: a code in `RULES` becomes a ConfigError on the right field or a FatalError with
what to do next; a code about one member (with its index) becomes `RowsRejected` so the writer
can report that member and send the others; anything else (a token that expired, 429, 5xx,
CONCURRENT_MODIFICATION) is left to the kit's action table — with the retry delay Google puts in
the body (RetryInfo) copied to a Retry-After header, which is where the kit looks for it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from threadline.contracts import ConfigError, FatalError
from threadline.http import describe_request
from threadline.secrets import redact


class Kind(enum.Enum):
    ROW = "row"  # about one member: reported as a rejection, the rest go on
    CONFIG = "config"  # the user fixes a config field (or the account in Google Ads)
    FATAL = "fatal"  # stops the push: a bug, or a job someone else touched
    KIT = "kit"  # retried / refreshed by the HTTP kit's action table


@dataclass(frozen=True)
class Rule:
    kind: Kind
    field: str = ""
    hint: str = ""


def _row(hint: str = "") -> Rule:
    return Rule(Kind.ROW, hint=hint)


def _config(field: str, hint: str) -> Rule:
    return Rule(Kind.CONFIG, field, hint)


def _fatal(hint: str) -> Rule:
    return Rule(Kind.FATAL, hint=hint)


_BUG = "this destination built a request Google refuses: report it with the error above"
_LIST = "user_list_id must be a Customer Match (CRM-based) list of this customer whose upload key type is CONTACT_INFO"

RULES: dict[str, Rule] = {
    # one member / operation
    "INVALID_SHA256_FORMAT": _row(),
    "MISSING_USER_IDENTIFIER": _row(),
    "INVALID_COUNTRY_CODE": _row(),
    "TOO_MANY_USER_IDENTIFIERS": _row("lower identifiers_per_request (at most 100,000 identifiers per request)"),
    "INVALID_POSTAL_CODE": _row(),
    "INVALID_HEX_ENCODING": _row(),
    "INVALID_FORMAT": _row(),
    "INVALID_AUDIENCE_MEMBER": _row(),
    "REQUIRED_FIELD_MISSING": _row(),
    # the list, the account, the credentials, the terms
    "INVALID_USER_LIST_ID": _config("user_list_id", _LIST),
    "NOT_FOUND": _config("user_list_id", _LIST),
    "INVALID_USER_LIST_TYPE": _config("user_list_id", _LIST),
    "INCOMPATIBLE_UPLOAD_KEY_TYPE": _config("user_list_id", _LIST),
    "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS": _config(
        "consent", "Customer Match needs consent.ad_user_data and consent.ad_personalization GRANTED, and the customer "
        "data terms accepted in Google Ads (Tools → Audience manager); members without consent are never sent"),
    "TERMS_AND_CONDITIONS_NOT_SIGNED": _config(
        "terms_of_service_accepted", "accept the Customer Match terms in Google Ads, then set terms_of_service_accepted: true"),
    "USER_PERMISSION_DENIED": _config(
        "customer_id", "the OAuth user cannot manage customer_id; if access goes through a manager account, set "
        "login_customer_id to that manager's id"),
    "PERMISSION_DENIED": _config(
        "customer_id", "the OAuth user cannot manage customer_id; if access goes through a manager account, set "
        "login_customer_id to that manager's id"),
    "CUSTOMER_NOT_FOUND": _config("customer_id", "customer_id is the 10-digit Google Ads customer id of the advertiser"),
    "INVALID_DESTINATION": _config("customer_id", "customer_id must be a Google Ads customer (operating account)"),
    "UNSUPPORTED_VERSION": _config(
        "api_version", "Google no longer serves this Google Ads API version: set api_version to a current one "
        "(the sunset dates page lists them), or remove it to use this plugin's default"),
    "DEVELOPER_TOKEN_INVALID": _config("developer_token", "copy the developer token from Google Ads → Tools → API Center"),
    "DEVELOPER_TOKEN_PARAMETER_MISSING": _config("developer_token", "set developer_token (Google Ads → Tools → API Center)"),
    "DEVELOPER_TOKEN_NOT_APPROVED": _config(
        "developer_token", "a test-access developer token only works with test accounts: apply for Basic access"),
    "DEVELOPER_TOKEN_PROHIBITED": _config(
        "developer_token", "the developer token belongs to another Google Cloud project than the OAuth client"),
    # the upload job
    "CONFLICTING_OPERATION": _fatal(_BUG + " (a job takes creates or removes, never both)"),
    "INVALID_OPERATION_ORDER": _fatal(_BUG + " (removeAll must be a job's first operation)"),
    "OPERATION_LEVEL_CONSENT_PROVIDED": _fatal(_BUG + " (consent belongs on the job, not on operations)"),
    "TOO_MANY_AUDIENCE_MEMBERS": _fatal(_BUG + " (at most 10,000 members per request)"),
    "JOB_ALREADY_STARTED": _fatal("the upload job already ran and takes no more operations; run the push again, it "
                                  "creates a new job"),
    # left to the kit: refreshed, retried or waited out
    "UNAUTHENTICATED": Rule(Kind.KIT),
    "CONCURRENT_MODIFICATION": Rule(Kind.KIT),
    "RESOURCE_EXHAUSTED": Rule(Kind.KIT),
    "RESOURCE_TEMPORARILY_EXHAUSTED": Rule(Kind.KIT),
    "RATE_LIMIT_EXCEEDED": Rule(Kind.KIT),
    "INTERNAL_ERROR": Rule(Kind.KIT),
    "TRANSIENT_ERROR": Rule(Kind.KIT),
    "DEADLINE_EXCEEDED": Rule(Kind.KIT),
}
_WEIGHT = {Kind.CONFIG: 0, Kind.FATAL: 1, Kind.ROW: 2, Kind.KIT: 3}
_KIT_STATUSES = {401, 408, 409, 425, 429}  # the kit refreshes or retries these unless a rule says otherwise

_MEMBER_INDEX = re.compile(r"audience_members\[(\d+)\]")
_DURATION = re.compile(r"^\d+(\.\d+)?s$")


@dataclass(frozen=True)
class GoogleError:
    """One error out of a Google Status: its code, Google's message, and the operation or
    audience member it is about (its index in the request), if any."""

    code: str
    message: str
    index: int | None = None

    @property
    def rule(self) -> Rule:
        return RULES.get(self.code, Rule(Kind.FATAL))

    def reason(self) -> str:
        """`CODE: message`, as a rejection reason (Google's messages never quote the value)."""
        return f"{self.code}: {self.message}" if self.message else self.code


class RowsRejected(FatalError):
    """Google refused a whole request because of some of its members (the Data Manager API
    has no partial failure). The writer reports those and sends the rest again."""

    def __init__(self, message: str, errors: list[GoogleError], **kw: Any) -> None:
        self.errors = errors
        super().__init__(message, **kw)


def parse_status(status: Any) -> list[GoogleError]:
    """The errors in a google.rpc.Status (an `error` or a `partialFailureError`), [] if none."""
    if not isinstance(status, dict):
        return []
    found: list[GoogleError] = []
    for detail in status.get("details") or []:
        for error in detail.get("errors") or []:  # GoogleAdsFailure
            code = next(iter((error.get("errorCode") or {}).values()), "UNKNOWN")
            found.append(GoogleError(str(code), str(error.get("message", "")), _operation_index(error)))
        for violation in detail.get("fieldViolations") or []:  # google.rpc.BadRequest
            match = _MEMBER_INDEX.search(str(violation.get("field", "")))
            found.append(GoogleError(
                str(violation.get("reason") or "INVALID_ARGUMENT"), str(violation.get("description", "")),
                int(match.group(1)) if match else None,
            ))
    if not found:
        reasons = [d.get("reason") for d in status.get("details") or [] if d.get("reason")]  # google.rpc.ErrorInfo
        found.append(GoogleError(str(reasons[0] if reasons else status.get("status") or "UNKNOWN"), str(status.get("message", ""))))
    return found


def retry_delay(status: dict[str, Any]) -> float | None:
    """Seconds Google asks to wait before retrying: a google.rpc.RetryInfo detail (Data Manager)
    or a GoogleAdsError's quotaErrorDetails (Google Ads API), as a Duration like "12.5s"."""
    for detail in status.get("details") or []:
        delays = [detail.get("retryDelay")] + [
            ((error.get("details") or {}).get("quotaErrorDetails") or {}).get("retryDelay") for error in detail.get("errors") or []]
        for delay in delays:
            if isinstance(delay, str) and _DURATION.match(delay):
                return float(delay[:-1])
    return None


def _operation_index(error: dict[str, Any]) -> int | None:
    for element in (error.get("location") or {}).get("fieldPathElements") or []:
        if element.get("fieldName") in ("operations", "audience_members") and "index" in element:
            return int(element["index"])
    return None


def error_hook(where: str) -> Callable[..., None]:
    """A `requests` response hook raising the classified error for a Google error answer
    (see the module docstring); other answers go on to the kit untouched."""

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code < 400:
            return
        try:
            body = response.json()
        except ValueError:
            return
        status = body.get("error") if isinstance(body, dict) else None
        if not isinstance(status, dict):  # an OAuth error ("invalid_grant") or not Google's shape at all
            return
        delay = retry_delay(status)
        if delay is not None and "Retry-After" not in response.headers:
            response.headers["Retry-After"] = f"{delay:g}"  # so the kit waits as long as Google asked
        errors = parse_status(status)
        line = describe_request(response.request.method or "", response.request.url or "")
        raise_for(errors, f"{line} answered {response.status_code}", where, response.status_code)

    return hook


def row_errors(errors: list[GoogleError]) -> tuple[list[GoogleError], list[GoogleError]]:
    """(errors about one member each, the others) — a partial failure can hold both."""
    rows = [e for e in errors if e.index is not None and e.rule.kind is Kind.ROW]
    return rows, [e for e in errors if e not in rows]


def raise_for(errors: list[GoogleError], what: str, where: str, http_status: int = 200) -> None:
    """Raise the error `errors` call for; return if they are all for the kit (or there are none)."""
    if not errors:
        return
    if not row_errors(errors)[1]:
        raise RowsRejected(f"{what}: {len(errors)} member(s) refused", errors, where=where)
    by_weight = sorted(errors, key=lambda e: _WEIGHT[e.rule.kind])  # what the user must fix first
    deciding = by_weight[0]
    if deciding.rule.kind is Kind.KIT or (deciding.code not in RULES and http_status in _KIT_STATUSES | set(range(500, 600))):
        return  # the kit's table retries, waits or refreshes
    rule = deciding.rule
    message = redact(f"{what} {deciding.code}: {deciding.message}"[:400])
    if rule.kind is Kind.CONFIG:
        raise ConfigError(message, field=rule.field, where=where, hint=rule.hint)
    raise FatalError(message, where=where, hint=rule.hint or "see Google's error above; the push can be run again")
