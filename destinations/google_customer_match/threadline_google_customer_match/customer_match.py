"""`google_customer_match`: Customer Match through the Google Ads API's OfflineUserDataJobService.

A push is upload jobs (see `jobs`): a diff is one remove job and then one create job; a mirror
is a removeAll job that must finish before the create job runs. Operations are added while
the runner hands over batches, each request holding at most `identifiers_per_request`
identifiers (10,000 recommended, 100,000 at most, 20 per member); operations Google refuses
come back as a partial failure and are reported per member with Google's reason. Nothing
applies until `finish()` runs the jobs and they succeed, so a push killed midway is sent
again in full (applies_each_batch = False).

Requests carry `developer-token`, optionally `login-customer-id` (the manager account the
OAuth user signs in through), and the OAuth2 bearer token from a refresh token.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    AudienceWriter,
    ConfigError,
    PushMode,
    PushReport,
    PushResult,
    RowRejection,
    ThreadlineError,
)
from threadline.http.source import checking
from threadline.secrets import register_secret

from threadline_google_customer_match.account import GoogleAccountSpec, google_client
from threadline_google_customer_match.identifiers import (
    EMAIL_TRIMMED_LOWER,
    PLAIN_COLUMNS,
    ads_operations,
    identifier_counts,
    prepare,
)
from threadline_google_customer_match.jobs import ListInfo, OfflineUserDataJobs
from threadline_google_customer_match.rejections import rejections_for, split_unmatchable

log = logging.getLogger("threadline.google_customer_match")

NAME = "google_customer_match"
MAX_IDENTIFIERS_PER_REQUEST = 100_000


class CustomerMatchSpec(GoogleAccountSpec):
    developer_token: str
    base_url: str = "https://googleads.googleapis.com"
    api_version: str = Field("v26", pattern=r"^v\d+$")
    identifiers_per_request: int = Field(10_000, ge=1, le=MAX_IDENTIFIERS_PER_REQUEST)
    poll_interval: float = Field(30.0, ge=0)
    job_timeout: float = Field(6 * 3600.0, gt=0)


class GoogleCustomerMatch(AudienceDestination[CustomerMatchSpec]):
    """Google Customer Match lists through Google Ads API upload jobs (see the module docstring)."""

    name: ClassVar[str] = NAME
    spec: ClassVar[type[CustomerMatchSpec]] = CustomerMatchSpec
    channel: ClassVar[str] = "advertising"
    # One identifier per member at the request maximum; the writer splits by identifiers.
    max_batch_rows: ClassVar[int] = MAX_IDENTIFIERS_PER_REQUEST
    min_members: ClassVar[int] = 100  # Google Ads: 100 active users in the last 30 days to serve (README)
    modes: ClassVar[tuple[PushMode, ...]] = (PushMode.DIFF, PushMode.MIRROR)
    applies_each_batch: ClassVar[bool] = False
    plain_columns: ClassVar[tuple[str, ...]] = PLAIN_COLUMNS

    def check(self, config: CustomerMatchSpec) -> None:
        jobs = self._jobs(config)
        with checking(jobs.client):
            found = jobs.list_info()
            if found is None:
                raise ConfigError(
                    f"customer {config.customer_id} has no user list {config.user_list_id} (INVALID_USER_LIST_ID)",
                    field="user_list_id", where=NAME, hint="take the id from Google Ads → Tools → Audience manager",
                )
            if found.type != "CRM_BASED" or found.upload_key_type != "CONTACT_INFO":
                raise ConfigError(
                    f"user list {config.user_list_id} is a {found.type} list with upload key type "
                    f"{found.upload_key_type or 'none'} (INCOMPATIBLE_UPLOAD_KEY_TYPE)", field="user_list_id", where=NAME,
                    hint="use a Customer Match list created with upload key type CONTACT_INFO",
                )
            jobs.create(with_consent=True, validate_only=True)  # consent and list, checked by Google without a job

    def prepare(self, config: CustomerMatchSpec, members: pa.Table) -> pa.Table:
        return prepare(members, EMAIL_TRIMMED_LOWER)

    def open_audience(self, config: CustomerMatchSpec, target: AudienceTarget) -> AudienceWriter:
        return CustomerMatchWriter(self._jobs(config), config, target.mode)

    @staticmethod
    def _jobs(config: CustomerMatchSpec) -> OfflineUserDataJobs:
        register_secret(config.developer_token)
        headers = {"developer-token": config.developer_token}
        if config.login_customer_id:
            headers["login-customer-id"] = config.login_customer_id
        client = google_client(NAME, config.base_url, config, headers=headers)
        return OfflineUserDataJobs(
            client, version=config.api_version, customer_id=config.customer_id, user_list_id=config.user_list_id,
            consent=config.consent.model_dump(), where=NAME, poll_interval=config.poll_interval, job_timeout=config.job_timeout,
        )


class CustomerMatchWriter(AudienceWriter):
    """One push: operations go into a remove job and a create job as batches arrive; finish()
    runs them (after the removeAll job, for a mirror) and waits for each to succeed."""

    def __init__(self, jobs: OfflineUserDataJobs, config: CustomerMatchSpec, mode: PushMode) -> None:
        self.jobs, self.config, self.mode = jobs, config, mode
        self.report = PushReport()
        self.open_jobs: dict[str, str] = {}  # "remove" / "create" → the job's resource name

    def add(self, rows: pa.Table) -> PushResult:
        return self._upload("create", rows)

    def remove(self, rows: pa.Table) -> PushResult:
        return self._upload("remove", rows)

    def _upload(self, verb: str, rows: pa.Table) -> PushResult:
        self.report.sent += rows.num_rows
        rows, rejected = split_unmatchable(rows)
        refused: list[RowRejection] = []
        if rows.num_rows:
            if verb not in self.open_jobs:
                self.open_jobs[verb] = self.jobs.create(with_consent=verb == "create")
            step = max(1, self.config.identifiers_per_request // max(1, pc.max(identifier_counts(rows)).as_py()))
            for offset in range(0, rows.num_rows, step):
                chunk = rows.slice(offset, step)
                refused += rejections_for(chunk, self.jobs.add(self.open_jobs[verb], ads_operations(chunk, verb)))
        result = PushResult(accepted=rows.num_rows - len(refused), rejected=rejected + refused)
        self.report.accepted += result.accepted
        self.report.rejected += len(result.rejected)
        return result

    def finish(self) -> PushReport:
        try:
            finished: list[dict] = []
            if self.mode is PushMode.MIRROR:
                cleared = self.jobs.create(with_consent=False)
                self.jobs.remove_all(cleared)
                self.jobs.run(cleared)
                finished.append(self.jobs.wait(cleared))  # emptied before the new members go in
            for verb in ("remove", "create"):
                if verb in self.open_jobs:
                    self.jobs.run(self.open_jobs[verb])
                    finished.append(self.jobs.wait(self.open_jobs[verb]))
            found = self._list_info()
        finally:
            self.jobs.client.close()
        self.report.match_estimate = found.size_for_display if found else None
        self.report.details.update(
            user_list=self.jobs.user_list, jobs=[job.get("resourceName", "") for job in finished],
            match_rate_range=next((j.get("operationMetadata", {}).get("matchRateRange") for j in reversed(finished)
                                   if j.get("operationMetadata")), None),
            size_for_search=found.size_for_search if found else None,
        )
        return self.report

    def _list_info(self) -> ListInfo | None:
        """The list's sizes for the report; the jobs succeeded, so a failure here only loses the estimate."""
        try:
            return self.jobs.list_info()
        except ThreadlineError as exc:
            log.warning("%s: pushed, but the list's size could not be read: %s", NAME, exc.render())
            return None

    def abort(self) -> None:
        """Jobs that never ran apply nothing (Google discards them), so there is nothing to undo."""
        self.jobs.client.close()

