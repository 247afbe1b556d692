"""Google Customer Match on loopback (`threadline sandbox google_customer_match`): Google's OAuth
token endpoint, the Google Ads API's OfflineUserDataJobService and the Data Manager API's
audienceMembers, over one customer's user lists — so both destinations push to the same lists.

    POST /token                                                      refresh_token grant → access token
    POST /{v}/customers/{cid}/offlineUserDataJobs:create             → {resourceName}
    POST /{v}/customers/{cid}/offlineUserDataJobs/{id}:addOperations → {} | {partialFailureError}
    POST /{v}/customers/{cid}/offlineUserDataJobs/{id}:run           → {name} (long-running)
    POST /{v}/customers/{cid}/googleAds:search                       user_list by resource name / id,
                                                                     offline_user_data_job by resource name
    POST /v1/audienceMembers:ingest | :remove | :removeAll           → {requestId}
    GET  /v1/accountTypes/GOOGLE_ADS/accounts/{cid}/userLists/{id}   → UserList (upload key types, sizes)

What it enforces, as ../shared/contracts/ad-platforms.md and Google's docs say:
- OAuth: the token endpoint takes the seeded client (HTTP basic or form) and refresh token;
  access tokens live until `expire_tokens()`; a revoked refresh token answers invalid_grant.
  Every API call needs a live bearer token (else 401 UNAUTHENTICATED).
- Google Ads API: versions v23 to v26 (served on 2026-12-06); an older one answers 400
  UNSUPPORTED_VERSION ("Version v22 is deprecated…"), as Google does after a sunset, a newer one
  404. `developer-token` (missing → DEVELOPER_TOKEN_PARAMETER_MISSING, wrong →
  DEVELOPER_TOKEN_INVALID, 401); the customer, reached directly or through `login-customer-id`
  = the manager (else USER_PERMISSION_DENIED, 403). Job create: type CUSTOMER_MATCH_USER_LIST
  and a list of the customer (INVALID_USER_LIST_ID); consent DENIED →
  CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS; `validateOnly` creates nothing. addOperations: at
  most 100,000 identifiers a request and 20 a UserData (TOO_MANY_USER_IDENTIFIERS), creates and
  removes never in one job (CONFLICTING_OPERATION), removeAll first (INVALID_OPERATION_ORDER),
  nothing after :run (JOB_ALREADY_STARTED), no consent on operations
  (OPERATION_LEVEL_CONSENT_PROVIDED), at least one identifier (MISSING_USER_IDENTIFIER),
  64 lower-case hex characters (INVALID_SHA256_FORMAT), a real ISO country code
  (INVALID_COUNTRY_CODE), identifiers matching the list's upload key type
  (INCOMPATIBLE_UPLOAD_KEY_TYPE), one writer at a time (CONCURRENT_MODIFICATION, 409); with
  enablePartialFailure the bad operations come back in `partialFailureError` with their index
  and the rest are kept, without it the whole request fails. A run job reads PENDING →
  RUNNING → SUCCESS (applied then) or FAILED, one step per status query (`polls_to_finish`).
- Data Manager API: operating account = the customer, login account the customer or its
  manager (else PERMISSION_DENIED, 403); the list exists (INVALID_USER_LIST_ID) and takes
  contact info (INVALID_USER_LIST_TYPE); ingest needs termsOfService ACCEPTED
  (TERMS_AND_CONDITIONS_NOT_SIGNED); encoding HEX or BASE64; at most 10,000 members
  (TOO_MANY_AUDIENCE_MEMBERS) with 1 to 10 identifiers (TOO_MANY_USER_IDENTIFIERS), hex that
  is hex (INVALID_HEX_ENCODING) and a SHA-256 (INVALID_SHA256_FORMAT); any bad member fails
  the whole request (synchronous, no partial failure) with one fieldViolation per member
  naming `audience_members[i]`; removeAll empties the destination lists (with
  `removeAsOfTime`, of the members last added before it, which must not be in the future); at most `requests_per_minute` requests a `rate_window` →
  429 RESOURCE_EXHAUSTED (reason RATE_LIMIT_EXCEEDED, the wait in a RetryInfo detail; Google
  sends no Retry-After header). Members ingested without consent GRANTED are kept but not targetable
  (they do not count in the list's size) — the sandbox's reading of Google's consent docs.

Seeded (the same for every seed): customer CUSTOMER_ID, manager MANAGER_ID, CONTACT_INFO
list USER_LIST_ID (empty), CRM_ID list CRM_ID_LIST_ID, and the OAuth client, refresh token
and developer token below. Test hooks: `email_hashes`, `members`, `jobs`, `expire_tokens`,
`revoke_credentials`, `reject_identifier`, `fail_next_job`, `contend`, `hold_job`; the first
few are also control endpoints (`POST /_sandbox/expire_tokens`, ...) for a sandbox run by the CLI.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections import deque
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qs

from threadline.sandbox import Reply, Sandbox, SandboxRequest

from threadline_google_customer_match.sandbox.ads_api import ADS_PATH, AdsApi, Job
from threadline_google_customer_match.sandbox.bodies import oauth_error, unauthenticated
from threadline_google_customer_match.sandbox.data_manager_api import DATA_MANAGER_PATH, DataManagerApi
from threadline_google_customer_match.sandbox.lists import Identifier, UserList


class GoogleSandbox(AdsApi, DataManagerApi, Sandbox):
    """Both Customer Match APIs and Google's token endpoint (see the module docstring)."""

    name: ClassVar[str] = "google_customer_match"
    CLIENT_ID = "sandbox-client.apps.googleusercontent.com"
    CLIENT_SECRET = "GOCSPX-sandbox-client-secret"
    REFRESH_TOKEN = "1//sandbox-refresh-token"
    DEVELOPER_TOKEN = "sandbox-developer-token"
    CUSTOMER_ID = "1234567890"
    MANAGER_ID = "9876543210"
    USER_LIST_ID = "5550001"
    CRM_ID_LIST_ID = "5550002"

    def __init__(self, *, seed: int = 0, port: int = 0, polls_to_finish: int = 2, requests_per_minute: int = 300,
                 rate_window: float = 60.0) -> None:
        self.polls_to_finish, self.requests_per_minute, self.rate_window = polls_to_finish, requests_per_minute, rate_window
        super().__init__(seed=seed, port=port)

    def seed_data(self) -> None:
        self._lists: dict[str, UserList] = {
            self.USER_LIST_ID: UserList(self.USER_LIST_ID, "Customer Match: threadline", "CONTACT_INFO"),
            self.CRM_ID_LIST_ID: UserList(self.CRM_ID_LIST_ID, "CRM ids", "CRM_ID"),
        }
        self._jobs: dict[str, Job] = {}
        self._tokens: set[str] = set()
        self._issued = 0
        self._revoked = False
        self._poisoned: dict[str, str] = {}
        self._failing_jobs = 0
        self._contention = 0
        self._recent: deque[float] = deque()

    def secrets(self) -> list[str]:
        return [self.CLIENT_SECRET, self.REFRESH_TOKEN, self.DEVELOPER_TOKEN]

    # ------------------------------------------------------------------ what tests use

    def job_config(self, destination: str) -> dict[str, Any]:
        """The `config:` of an activation pushing to this sandbox with `destination`."""
        common = {
            "customer_id": self.CUSTOMER_ID, "user_list_id": self.USER_LIST_ID, "client_id": self.CLIENT_ID,
            "client_secret": self.CLIENT_SECRET, "refresh_token": self.REFRESH_TOKEN,
            "token_url": f"{self.base_url}/token", "base_url": self.base_url,
        }
        if destination == "google_data_manager":
            return {**common, "terms_of_service_accepted": True}
        if destination == "google_customer_match":
            return {**common, "developer_token": self.DEVELOPER_TOKEN, "poll_interval": 0}
        raise ValueError(f"this sandbox serves google_data_manager and google_customer_match, not {destination!r}")

    def email_hashes(self, list_id: str | None = None) -> set[str]:
        """SHA-256 emails of every member the list holds now."""
        with self._lock:
            return self._lists[list_id or self.USER_LIST_ID].email_hashes()

    def members(self, list_id: str | None = None) -> list[set[Identifier]]:
        with self._lock:
            return [set(ids) for ids in self._lists[list_id or self.USER_LIST_ID].members.values()]

    def jobs(self) -> list[dict[str, Any]]:
        """Every upload job: id, status, kinds of operation and how many."""
        with self._lock:
            return [{"id": j.id, "list_id": j.list_id, "status": j.status, "started": j.started,
                     "kinds": sorted(j.kinds), "operations": len(j.operations)} for j in self._jobs.values()]

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (the refresh token still works)."""
        with self._lock:
            self._tokens.clear()

    def revoke_credentials(self) -> None:
        """The refresh token is revoked, and every access token with it."""
        with self._lock:
            self._revoked = True
            self._tokens.clear()

    def reject_identifier(self, sha256: str, code: str = "INVALID_SHA256_FORMAT") -> None:
        """Refuse any member carrying this hashed email or phone with `code` (a row-level error)."""
        with self._lock:
            self._poisoned[sha256] = code

    def fail_next_job(self, times: int = 1) -> None:
        with self._lock:
            self._failing_jobs += times

    def contend(self, times: int = 1) -> None:
        """The next `times` addOperations find their job busy with another writer."""
        with self._lock:
            self._contention += times

    @contextlib.contextmanager
    def hold_job(self, job_id: str) -> Iterator[None]:
        """Hold a job as a concurrent addOperations would, while the block runs."""
        job = self._jobs[job_id]
        with job.lock:
            yield

    def control_expire_tokens(self, body: dict[str, Any]) -> dict[str, Any]:
        self.expire_tokens()
        return {"expired": True}

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    def control_fail_next_job(self, body: dict[str, Any]) -> dict[str, Any]:
        self.fail_next_job(int(body.get("times", 1)))
        return {"failing": self._failing_jobs}

    def control_email_hashes(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"email_hashes": sorted(self.email_hashes(body.get("list_id")))}

    # ------------------------------------------------------------------ dispatch and auth

    def _dispatch(self, req: SandboxRequest) -> Reply:
        """Google's paths carry ids and verbs after ':', so routes are patterns."""
        if req.method == "POST" and req.path == "/token":
            return self._token(req)
        match = ADS_PATH.match(req.path)
        if match and req.method == "POST":
            return self._ads(req, match)
        match = DATA_MANAGER_PATH.match(req.path)
        if match and req.method == ("POST" if match["verb"] else "GET"):
            return self._data_manager(req, match)
        return Reply.json({"error": {"code": 404, "message": f"The requested URL {req.path} was not found on this server.",
                                     "status": "NOT_FOUND"}}, 404)

    def _token(self, req: SandboxRequest) -> Reply:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = req.headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode("utf-8", "replace").partition(":")
        if client_id != self.CLIENT_ID or client_secret != self.CLIENT_SECRET:
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("grant_type") != "refresh_token":
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type: " + str(form.get("grant_type")))
        with self._lock:
            if self._revoked or form.get("refresh_token") != self.REFRESH_TOKEN:
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            self._issued += 1
            token = f"ya29.sandbox-{self._issued:06d}"
            self._tokens.add(token)
        return Reply.json({"access_token": token, "expires_in": 3599, "token_type": "Bearer",
                           "scope": "https://www.googleapis.com/auth/adwords https://www.googleapis.com/auth/datamanager"})

    def _bearer_ok(self, req: SandboxRequest) -> bool:
        given = re.sub(r"^Bearer ", "", req.headers.get("authorization", ""))
        with self._lock:
            return given in self._tokens

    @staticmethod
    def _unauthenticated() -> Reply:
        return unauthenticated()

    def _take_contention(self) -> bool:
        with self._lock:
            if self._contention:
                self._contention -= 1
                return True
        return False
