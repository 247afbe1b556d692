"""The Google Ads API calls of a Customer Match upload, one method each:

    POST /{v}/customers/{cid}/offlineUserDataJobs:create      a job for one list, with consent
    POST /{v}/{job}:addOperations                             creates or removes (or one removeAll)
    POST /{v}/{job}:run                                       starts it (long-running)
    POST /{v}/customers/{cid}/googleAds:search                the job's status; the list's size

A job holds creates or removes, never both (CONFLICTING_OPERATION); a removeAll must be its
first operation (INVALID_OPERATION_ORDER); it takes no operations once run
(JOB_ALREADY_STARTED). Its status goes PENDING → RUNNING → SUCCESS or FAILED, and nothing of
it applies before SUCCESS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from threadline.contracts import ConfigError, FatalError, TransientError
from threadline.http import HttpClient

from threadline_google_customer_match.errors import GoogleError, parse_status, raise_for, row_errors

DONE = ("SUCCESS", "FAILED")


@dataclass(frozen=True)
class ListInfo:
    """What check() and the report need of the user list."""

    resource_name: str
    type: str
    upload_key_type: str
    size_for_display: int | None
    size_for_search: int | None


class OfflineUserDataJobs:
    """OfflineUserDataJobService for one customer and one list (see the module docstring)."""

    def __init__(self, client: HttpClient, *, version: str, customer_id: str, user_list_id: str, consent: dict[str, str],
                 where: str, poll_interval: float, job_timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.version, self.customer_id, self.where = client, version, customer_id, where
        self.user_list = f"customers/{customer_id}/userLists/{user_list_id}"
        self.consent = consent
        self.poll_interval, self.job_timeout, self.sleep = poll_interval, job_timeout, sleep

    def _post(self, path: str, body: Any = None, *, data: bytes | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} if data is not None else None
        answer = self.client.request(
            "POST", f"/{self.version}/{path}", json=body, data=data, headers=headers, stream=self.user_list,
            parse=lambda r: r.json(),
        )
        return answer or {}

    # ------------------------------------------------------------------ the list

    def list_info(self) -> ListInfo | None:
        rows = self.search(
            "SELECT user_list.resource_name, user_list.type, user_list.crm_based_user_list.upload_key_type, "
            f"user_list.size_for_display, user_list.size_for_search FROM user_list WHERE user_list.resource_name = '{self.user_list}'"
        )
        if not rows:
            return None
        found = rows[0].get("userList") or {}

        def size(key: str) -> int | None:
            return int(found[key]) if found.get(key) is not None else None

        return ListInfo(
            str(found.get("resourceName", self.user_list)), str(found.get("type", "")),
            str((found.get("crmBasedUserList") or {}).get("uploadKeyType", "")),
            size("sizeForDisplay"), size("sizeForSearch"),
        )

    def search(self, query: str) -> list[dict[str, Any]]:
        return list(self._post(f"customers/{self.customer_id}/googleAds:search", {"query": query}).get("results") or [])

    # ------------------------------------------------------------------ jobs

    def create(self, *, with_consent: bool, validate_only: bool = False) -> str:
        """A new job; consent goes on jobs that add members (remove jobs need none, so a
        withdrawn consent never blocks a removal)."""
        metadata: dict[str, Any] = {"userList": self.user_list}
        if with_consent:
            metadata["consent"] = {"adUserData": self.consent["ad_user_data"], "adPersonalization": self.consent["ad_personalization"]}
        body: dict[str, Any] = {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}}
        if validate_only:
            body["validateOnly"] = True
        return str(self._post(f"customers/{self.customer_id}/offlineUserDataJobs:create", body).get("resourceName", ""))

    def add(self, job: str, operations: list[str]) -> list[GoogleError]:
        """Add operations (JSON texts) with partial failure on: the errors about single
        operations come back (their index is the operation's); any other error is raised."""
        body = '{"operations":[' + ",".join(operations) + '],"enablePartialFailure":true}'
        answer = self._post(f"{job}:addOperations", data=body.encode())
        errors = parse_status(answer.get("partialFailureError"))
        rows, others = row_errors(errors)
        raise_for(others, f"POST {job}:addOperations partly failed:", self.where)
        return rows

    def remove_all(self, job: str) -> None:
        self.add(job, ['{"removeAll":true}'])

    def run(self, job: str) -> None:
        try:
            self._post(f"{job}:run", {})
        except FatalError as exc:
            # A retried :run whose first attempt started the job gets JOB_ALREADY_STARTED: it runs.
            if "JOB_ALREADY_STARTED" not in exc.message:
                raise

    def wait(self, job: str) -> dict[str, Any]:
        """Poll the job's status until SUCCESS (returned) or FAILED (raised), at most job_timeout seconds."""
        started = time.monotonic()
        while True:
            rows = self.search(
                "SELECT offline_user_data_job.resource_name, offline_user_data_job.status, "
                "offline_user_data_job.failure_reason, offline_user_data_job.operation_metadata.match_rate_range "
                f"FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '{job}'"
            )
            state = (rows[0].get("offlineUserDataJob") if rows else None) or {}
            status = state.get("status", "UNKNOWN")
            if status == "SUCCESS":
                return state
            if status == "FAILED":
                raise FatalError(
                    f"upload job {job} FAILED (failure reason {state.get('failureReason', 'UNSPECIFIED')}): nothing of it "
                    "was applied", where=self.where,
                    hint="run the push again (it creates a new job); if it fails again, see the job in Google Ads → "
                         "Tools → Audience manager",
                )
            if not rows:
                raise ConfigError(f"upload job {job} is not found in customer {self.customer_id}", field="customer_id",
                                  where=self.where, hint="check customer_id and login_customer_id")
            if time.monotonic() - started > self.job_timeout:
                raise TransientError(
                    f"upload job {job} is still {status} after {self.job_timeout:.0f}s", where=self.where,
                    hint="Google keeps running it; the push is sent again in full next time (adding a member twice is "
                         "harmless), or raise job_timeout",
                )
            self.sleep(self.poll_interval)
