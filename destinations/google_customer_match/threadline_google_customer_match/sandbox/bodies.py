"""Google's error answers as both APIs send them (google.rpc.Status in JSON)."""

from __future__ import annotations

import uuid
from typing import Any

from threadline.sandbox import Reply

# (category of the GoogleAdsError's errorCode, Google's message) by code
ADS_ERRORS: dict[str, tuple[str, str]] = {
    "INVALID_SHA256_FORMAT": ("offlineUserDataJobError", "The SHA256 encoded value is malformed."),
    "MISSING_USER_IDENTIFIER": ("offlineUserDataJobError", "User identifier is required."),
    "INCOMPATIBLE_UPLOAD_KEY_TYPE": ("offlineUserDataJobError",
                                     "The type of user identifier is not compatible with the user list's upload key type."),
    "INVALID_USER_LIST_ID": ("offlineUserDataJobError", "The user list ID provided for the job is invalid."),
    "INVALID_COUNTRY_CODE": ("offlineUserDataJobError", "The country code is invalid."),
    "TOO_MANY_USER_IDENTIFIERS": ("offlineUserDataJobError", "Too many user identifiers were provided."),
    "JOB_ALREADY_STARTED": ("offlineUserDataJobError", "Operations cannot be added to a job that has been run."),
    "CONFLICTING_OPERATION": ("offlineUserDataJobError", "A job cannot have both create and remove operations."),
    "INVALID_OPERATION_ORDER": ("offlineUserDataJobError", "The removeAll operation must be the first operation of a job."),
    "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS": (
        "offlineUserDataJobError", "The customer has not accepted the customer data terms, or consent was denied."),
    "OPERATION_LEVEL_CONSENT_PROVIDED": ("offlineUserDataJobError", "Consent cannot be set on individual operations."),
    "CONCURRENT_MODIFICATION": ("databaseError", "Multiple requests were attempting to modify the same resource at once."),
    "DEVELOPER_TOKEN_INVALID": ("authenticationError", "The developer token is not valid."),
    "DEVELOPER_TOKEN_PARAMETER_MISSING": ("authenticationError", "The developer-token header is required."),
    "USER_PERMISSION_DENIED": ("authorizationError", "User doesn't have permission to access customer. If you are "
                               "accessing a client customer, the manager's customer id must be set in the "
                               "'login-customer-id' header."),
    "RESOURCE_NOT_FOUND": ("mutateError", "The requested resource was not found."),
    "INVALID_QUERY": ("queryError", "The query is not one this sandbox answers."),
    "UNSUPPORTED_VERSION": ("requestError", "Version {version} is deprecated. Requests to this version will be blocked."),
}

_HTTP_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ABORTED", 429: "RESOURCE_EXHAUSTED"}


def ads_error(code: str, index: int | None = None, path: tuple[str, ...] = (), **words: str) -> dict[str, Any]:
    """One GoogleAdsError; `index` is the operation's position, `path` the fields inside it,
    `words` fill the message's blanks."""
    category, message = ADS_ERRORS[code]
    message = message.format(**words) if words else message
    error: dict[str, Any] = {"errorCode": {category: code}, "message": message}
    if index is not None:
        error["location"] = {"fieldPathElements": [{"fieldName": "operations", "index": index},
                                                   *({"fieldName": name} for name in path)]}
    return error


def ads_failure(version: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/google.ads.googleads.{version}.errors.GoogleAdsFailure",
            "errors": errors, "requestId": uuid.uuid4().hex[:22]}


def ads_reply(http: int, version: str, errors: list[dict[str, Any]]) -> Reply:
    """A failed Google Ads API request."""
    first = errors[0]["message"] if errors else ""
    message = "Request contains an invalid argument." if http == 400 else first
    return Reply.json({"error": {"code": http, "message": message, "status": _HTTP_STATUS.get(http, "UNKNOWN"),
                                 "details": [ads_failure(version, errors)]}}, http)


def partial_failure(version: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """`partialFailureError` of an addOperations answer (google.rpc.Code 3, INVALID_ARGUMENT)."""
    return {"code": 3, "message": f"Multiple errors in 'details'. First error: {errors[0]['message']}",
            "details": [ads_failure(version, errors)]}


def data_manager_reply(http: int, reason: str, violations: list[tuple[str, str, str]] = (),
                       message: str = "There was a problem with the request.", retry_delay: str = "") -> Reply:
    """A failed Data Manager API request: ErrorInfo, then BadRequest's (field, reason, description)s."""
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "datamanager.googleapis.com"}]
    if violations:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
            {"field": field, "reason": why, "description": text} for field, why, text in violations]})
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return Reply.json({"error": {"code": http, "message": message, "status": _HTTP_STATUS.get(http, "UNKNOWN"),
                                 "details": details}}, http)


def unauthenticated() -> Reply:
    """What both APIs answer to a missing, expired or unknown access token."""
    return Reply.json({"error": {
        "code": 401, "status": "UNAUTHENTICATED",
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                   "other valid authentication credential.",
    }}, 401, {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'})


def oauth_error(http: int, error: str, description: str) -> Reply:
    """Google's token endpoint errors are flat: {"error": "invalid_grant", "error_description": ...}."""
    return Reply.json({"error": error, "error_description": description}, http)
