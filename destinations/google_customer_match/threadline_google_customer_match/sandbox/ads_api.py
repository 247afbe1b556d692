"""The Google Ads API part of the sandbox: OfflineUserDataJobService and the few GAQL queries
a Customer Match upload needs. What it enforces is listed in the package's sandbox docstring."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from threadline.sandbox import Reply, SandboxRequest

from threadline_google_customer_match.sandbox.bodies import ads_error, ads_reply, partial_failure
from threadline_google_customer_match.sandbox.lists import (
    HEX64,
    Identifier,
    UserList,
    is_country,
    match_rate_range,
    matches,
    member_key,
)

# The Google Ads API versions served on 2026-12-06 (v22 was sunset on 2026-10-07); an older one
# answers as Google does after a sunset: 400, requestError UNSUPPORTED_VERSION.
OLDEST_VERSION, NEWEST_VERSION = 23, 26
MAX_IDENTIFIERS_PER_REQUEST = 100_000
MAX_IDENTIFIERS_PER_USER_DATA = 20
ADS_PATH = re.compile(
    r"^/(?P<version>v\d+)/customers/(?P<customer>\d+)/"
    r"(?:offlineUserDataJobs:(?P<create>create)|offlineUserDataJobs/(?P<job>\d+):(?P<verb>addOperations|run)"
    r"|googleAds:(?P<search>search))$"
)
_QUERY = re.compile(r"\bFROM\s+(\w+)\s+WHERE\s+([\w.]+)\s*=\s*'?([^'\s]+)'?", re.IGNORECASE)
_CONTACT_FIELDS = ("hashedEmail", "hashedPhoneNumber", "addressInfo")


@dataclass
class Job:
    """An OfflineUserDataJob: its operations in order, and where it is in its life."""

    id: str
    list_id: str
    consent_granted: bool
    operations: list[tuple[str, set[Identifier]]] = field(default_factory=list)  # (create|remove|removeAll, ids)
    status: str = "PENDING"
    started: bool = False
    polls: int = 0
    failure_reason: str = "UNSPECIFIED"
    match_rate_range: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.operations}


class AdsApi:
    """Mixed into the sandbox (which owns `_lock`, `_lists`, `_jobs` and the credentials)."""

    def _ads(self, req: SandboxRequest, match: re.Match[str]) -> Reply:
        version, customer = match["version"], match["customer"]
        if int(version[1:]) < OLDEST_VERSION:
            return ads_reply(400, version, [ads_error("UNSUPPORTED_VERSION", version=version)])
        if int(version[1:]) > NEWEST_VERSION:
            return Reply.json({"error": {"code": 404, "message": f"The requested URL {req.path} was not found on this "
                                                                 "server.", "status": "NOT_FOUND"}}, 404)
        refused = self._ads_access(req, version, customer)
        if refused is not None:
            return refused
        if match["search"]:
            return self._search(req, version, customer)
        if match["create"]:
            return self._create_job(req, version, customer)
        with self._lock:
            job = self._jobs.get(match["job"])
        if job is None or job.list_id not in self._lists:
            return ads_reply(404, version, [ads_error("RESOURCE_NOT_FOUND")])
        return self._add_operations(req, version, job) if match["verb"] == "addOperations" else self._run(version, job)

    def _ads_access(self, req: SandboxRequest, version: str, customer: str) -> Reply | None:
        """Bearer token, then developer token, then the customer (through login-customer-id)."""
        if not self._bearer_ok(req):
            return self._unauthenticated()
        token = req.headers.get("developer-token")
        if not token:
            return ads_reply(401, version, [ads_error("DEVELOPER_TOKEN_PARAMETER_MISSING")])
        if token != self.DEVELOPER_TOKEN:
            return ads_reply(401, version, [ads_error("DEVELOPER_TOKEN_INVALID")])
        login = req.headers.get("login-customer-id", customer)
        if customer != self.CUSTOMER_ID or login not in (self.CUSTOMER_ID, self.MANAGER_ID):
            return ads_reply(403, version, [ads_error("USER_PERMISSION_DENIED")])
        return None

    # ------------------------------------------------------------------ jobs

    def _create_job(self, req: SandboxRequest, version: str, customer: str) -> Reply:
        body = req.json()
        job = body.get("job") or {}
        metadata = job.get("customerMatchUserListMetadata") or {}
        list_id = str(metadata.get("userList", "")).rpartition("/")[2]
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST" or metadata.get("userList") != f"customers/{customer}/userLists/{list_id}" \
                or list_id not in self._lists:
            return ads_reply(400, version, [ads_error("INVALID_USER_LIST_ID")])
        consent = metadata.get("consent")
        if consent and "DENIED" in (consent.get("adUserData"), consent.get("adPersonalization")):
            return ads_reply(400, version, [ads_error("CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS")])
        if body.get("validateOnly"):
            return Reply.json({})
        granted = bool(consent) and consent.get("adUserData") == consent.get("adPersonalization") == "GRANTED"
        with self._lock:
            job_id = str(700000 + len(self._jobs) + 1)
            self._jobs[job_id] = Job(job_id, list_id, granted)
        return Reply.json({"resourceName": f"customers/{customer}/offlineUserDataJobs/{job_id}"})

    def _add_operations(self, req: SandboxRequest, version: str, job: Job) -> Reply:
        if self._take_contention() or not job.lock.acquire(blocking=False):
            return ads_reply(409, version, [ads_error("CONCURRENT_MODIFICATION")])
        try:
            body = req.json()
            with self._lock:
                return self._add_locked(version, job, body)
        finally:
            job.lock.release()

    def _add_locked(self, version: str, job: Job, body: dict[str, Any]) -> Reply:
        if job.started:
            return ads_reply(400, version, [ads_error("JOB_ALREADY_STARTED")])
        operations = body.get("operations") or []
        total = sum(len((op.get("create") or op.get("remove") or {}).get("userIdentifiers") or []) for op in operations)
        if total > MAX_IDENTIFIERS_PER_REQUEST:
            return ads_reply(400, version, [ads_error("TOO_MANY_USER_IDENTIFIERS")])
        kinds, errors, accepted = set(job.kinds), [], []
        for index, operation in enumerate(operations):
            kind = next((k for k in ("create", "remove", "removeAll") if k in operation), "")
            if kind == "removeAll":
                if job.operations or index or accepted:
                    return ads_reply(400, version, [ads_error("INVALID_OPERATION_ORDER", index)])
                accepted.append(("removeAll", set()))
                kinds.add(kind)
                continue
            if {"create": "remove", "remove": "create"}.get(kind) in kinds:
                return ads_reply(400, version, [ads_error("CONFLICTING_OPERATION", index)])
            kinds.add(kind)
            problem, identifiers = self._user_data(operation.get(kind) or {}, job)
            if problem:
                errors.append(ads_error(problem[0], index, (kind, *problem[1:])))
            else:
                accepted.append((kind, identifiers))
        if errors and not body.get("enablePartialFailure"):
            return ads_reply(400, version, errors)
        if not body.get("validateOnly"):
            job.operations.extend(accepted)
        return Reply.json({"partialFailureError": partial_failure(version, errors)} if errors else {})

    def _user_data(self, user_data: dict[str, Any], job: Job) -> tuple[tuple[str, ...] | None, set[Identifier]]:
        """(the error code and field path of a bad UserData, or None; its identifiers)."""
        if "consent" in user_data:
            return ("OPERATION_LEVEL_CONSENT_PROVIDED", "consent"), set()
        identifiers = user_data.get("userIdentifiers") or []
        if not identifiers:
            return ("MISSING_USER_IDENTIFIER", "user_identifiers"), set()
        if len(identifiers) > MAX_IDENTIFIERS_PER_USER_DATA:
            return ("TOO_MANY_USER_IDENTIFIERS", "user_identifiers"), set()
        contact_list = self._lists[job.list_id].upload_key_type == "CONTACT_INFO"
        found: set[Identifier] = set()
        for identifier in identifiers:
            if any(k in identifier for k in _CONTACT_FIELDS) != contact_list:
                return ("INCOMPATIBLE_UPLOAD_KEY_TYPE", "user_identifiers"), set()
            if "addressInfo" in identifier:
                address = identifier["addressInfo"]
                hashes = (address.get("hashedFirstName"), address.get("hashedLastName"))
                if not all(isinstance(h, str) and HEX64.match(h) for h in hashes):
                    return ("INVALID_SHA256_FORMAT", "user_identifiers", "address_info"), set()
                if not is_country(address.get("countryCode")):
                    return ("INVALID_COUNTRY_CODE", "user_identifiers", "address_info", "country_code"), set()
                found.add(("address", *hashes, address["countryCode"], str(address.get("postalCode", ""))))
                continue
            for key, name in (("hashedEmail", "email"), ("hashedPhoneNumber", "phone")):
                if key in identifier:
                    value = identifier[key]
                    if not (isinstance(value, str) and HEX64.match(value)):
                        return ("INVALID_SHA256_FORMAT", "user_identifiers", key), set()
                    if value in self._poisoned:
                        return (self._poisoned[value], "user_identifiers", key), set()
                    found.add((name, value))
            if "thirdPartyUserId" in identifier:
                found.add(("crm_id", str(identifier["thirdPartyUserId"])))
        return None, found

    def _run(self, version: str, job: Job) -> Reply:
        with self._lock:
            if job.started:
                return ads_reply(400, version, [ads_error("JOB_ALREADY_STARTED")])
            job.started = True
        return Reply.json({"name": f"customers/{self.CUSTOMER_ID}/operations/{job.id}"})

    def _advance(self, job: Job) -> None:
        """One status poll of a running job: RUNNING, then SUCCESS (applied) or FAILED."""
        if not job.started or job.status in ("SUCCESS", "FAILED"):
            return
        job.polls += 1
        if job.polls < self.polls_to_finish:
            job.status = "RUNNING"
            return
        if self._failing_jobs:
            self._failing_jobs -= 1
            job.status, job.failure_reason = "FAILED", "UNKNOWN"
            return
        target = self._lists[job.list_id]
        created = [ids for kind, ids in job.operations if kind == "create"]
        for kind, ids in job.operations:
            if kind == "removeAll":
                target.clear()
            elif kind == "create":
                target.add(set(ids), targetable=job.consent_granted)
            else:
                target.remove(ids)
        job.match_rate_range = match_rate_range(sum(matches(member_key(ids)) for ids in created), len(created))
        job.status = "SUCCESS"

    # ------------------------------------------------------------------ GAQL

    def _search(self, req: SandboxRequest, version: str, customer: str) -> Reply:
        found = _QUERY.search(str(req.json().get("query", "")))
        if not found:
            return ads_reply(400, version, [ads_error("INVALID_QUERY")])
        resource, key, value = found[1].lower(), found[2].lower(), found[3]
        with self._lock:
            if resource == "user_list" and key in ("user_list.resource_name", "user_list.id"):
                list_id = value.rpartition("/")[2]
                user_list = self._lists.get(list_id)
                rows = [{"userList": self._user_list_row(customer, user_list)}] if user_list else []
            elif resource == "offline_user_data_job" and key == "offline_user_data_job.resource_name":
                job = self._jobs.get(value.rpartition("/")[2])
                if job is not None:
                    self._advance(job)
                rows = [{"offlineUserDataJob": _job_row(customer, job)}] if job else []
            else:
                return ads_reply(400, version, [ads_error("INVALID_QUERY")])
        return Reply.json({"results": rows} if rows else {})

    @staticmethod
    def _user_list_row(customer: str, user_list: UserList) -> dict[str, Any]:
        return {
            "resourceName": f"customers/{customer}/userLists/{user_list.id}", "id": user_list.id, "name": user_list.name,
            "type": "CRM_BASED", "membershipStatus": "OPEN", "crmBasedUserList": {"uploadKeyType": user_list.upload_key_type},
            "sizeForDisplay": str(user_list.size("display")), "sizeForSearch": str(user_list.size("search")),
        }


def _job_row(customer: str, job: Job) -> dict[str, Any]:
    row: dict[str, Any] = {
        "resourceName": f"customers/{customer}/offlineUserDataJobs/{job.id}", "id": job.id,
        "type": "CUSTOMER_MATCH_USER_LIST", "status": job.status, "failureReason": job.failure_reason,
    }
    if job.match_rate_range:
        row["operationMetadata"] = {"matchRateRange": job.match_rate_range}
    return row

