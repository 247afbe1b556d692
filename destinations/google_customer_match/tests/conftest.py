"""Fixtures of the Google Customer Match tests: a started sandbox, configs of both
destinations for it, and a push helper driving a writer as the profile store's runner does."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
import requests
from threadline.contracts import AudienceDestination, AudienceTarget, PushMode, PushReport, PushResult
from threadline_google_customer_match import GoogleCustomerMatch, GoogleDataManager
from threadline_google_customer_match.errors import error_hook, parse_status
from threadline_google_customer_match.sandbox import GoogleSandbox

FAST = {"backoff_base": 0.01, "max_rate_limit_wait": 20}


@pytest.fixture
def google() -> Iterator[GoogleSandbox]:
    box = GoogleSandbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def dm_config(google: GoogleSandbox) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return GoogleDataManager.spec.model_validate({**google.job_config("google_data_manager"), **FAST, **overrides})

    return make


@pytest.fixture
def cm_config(google: GoogleSandbox) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return GoogleCustomerMatch.spec.model_validate({**google.job_config("google_customer_match"), **FAST, **overrides})

    return make


def push(destination: type[AudienceDestination], config: Any, adds: pa.Table | None = None, removes: pa.Table | None = None,
         mode: PushMode = PushMode.DIFF, batch_rows: int = 40) -> tuple[PushReport, list[PushResult]]:
    """Prepare, removes then adds in batches of `batch_rows`, finish (abort on failure)."""
    dest = destination()
    adds, removes = adds if adds is not None else _empty(), removes if removes is not None else _empty()
    writer = dest.open_audience(config, AudienceTarget("test", "audience", mode, "run-1", adds.num_rows, removes.num_rows))
    results = []
    try:
        for method, members in (("remove", removes), ("add", adds)):
            prepared = dest.prepare(config, members) if members.num_rows else members
            for offset in range(0, prepared.num_rows, batch_rows):
                results.append(getattr(writer, method)(prepared.slice(offset, batch_rows)))
        return writer.finish(), results
    except BaseException:
        writer.abort()
        raise


def _empty() -> pa.Table:
    from threadline.testing import sample_members

    return sample_members(0, 0)


@pytest.fixture
def pusher() -> Callable[..., tuple[PushReport, list[PushResult]]]:
    return push


class Raw:
    """Hand-made requests to the sandbox (what the destinations never send), with or without
    the destinations' error hook to see how an answer is classified."""

    def __init__(self, google: GoogleSandbox) -> None:
        self.google = google
        answer = requests.post(f"{google.base_url}/token", data={
            "grant_type": "refresh_token", "refresh_token": google.REFRESH_TOKEN,
            "client_id": google.CLIENT_ID, "client_secret": google.CLIENT_SECRET}, timeout=10)
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}", "developer-token": google.DEVELOPER_TOKEN}

    def post(self, path: str, body: Any, *, hook: str = "") -> requests.Response:
        session = requests.Session()
        if hook:
            session.hooks["response"].append(error_hook(hook))
        return session.post(f"{self.google.base_url}{path}", json=body, headers=self.headers, timeout=30)

    def job(self, **metadata: Any) -> str:
        """A new upload job for the seeded list (with consent GRANTED unless `metadata` says otherwise)."""
        meta = {"userList": f"customers/{self.google.CUSTOMER_ID}/userLists/{self.google.USER_LIST_ID}",
                "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}, **metadata}
        answer = self.post(f"/v26/customers/{self.google.CUSTOMER_ID}/offlineUserDataJobs:create",
                           {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": meta}})
        return answer.json()["resourceName"]

    def add(self, job: str, operations: list[dict[str, Any]], *, partial: bool = True, hook: str = "") -> requests.Response:
        return self.post(f"/v26/{job}:addOperations", {"operations": operations, "enablePartialFailure": partial}, hook=hook)

    @staticmethod
    def codes(response: requests.Response) -> list[tuple[str, int | None]]:
        """(code, index) of every error in an error answer or a partial failure."""
        body = response.json()
        status = body.get("error") or body.get("partialFailureError") or {}
        return [(e.code, e.index) for e in parse_status(status)]

    @staticmethod
    def email(n: int) -> dict[str, str]:
        """A UserIdentifier with the hashed email of person `n`."""
        return {"hashedEmail": hashlib.sha256(f"person{n}@example.com".encode()).hexdigest()}


@pytest.fixture
def raw(google: GoogleSandbox) -> Raw:
    return Raw(google)


@pytest.fixture
def make_raw() -> type[Raw]:
    """Raw requests to a sandbox the test starts itself (with its own limits)."""
    return Raw
