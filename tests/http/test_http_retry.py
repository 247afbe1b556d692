"""The HTTP client's retries, waits and classified errors, against the real sandbox."""

from __future__ import annotations

import logging
import socket

import pytest

from threadline.contracts import ConfigError, FatalError, TransientError
from threadline.http import Action, BearerAuth, DEFAULT_ACTIONS, HttpClient, RequestBudget, RetryPolicy, Timeouts
from threadline.http.backoff import server_wait
from threadline.sandbox import CustomersSandbox

FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, max_backoff=0.05, max_retry_time=5)
EPSILON = 0.05


@pytest.fixture
def crm():
    with CustomersSandbox(count=20) as sandbox:
        yield sandbox


def client(sandbox, **kw) -> HttpClient:
    options = {"auth": BearerAuth(CustomersSandbox.TOKEN), "retry": FAST, "connector": "crm"} | kw
    return HttpClient(sandbox.base_url, **options)


def get(c: HttpClient):
    return c.request("GET", "/customers", params={"limit": 5}, stream="customers")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_until_success(crm, status):
    crm.inject("status", status=status, times=2)
    assert get(client(crm)).status_code == 200
    assert [r.status for r in crm.requests] == [status, status, 200]


def test_retry_after_is_honoured(crm):
    crm.inject("rate_limit", retry_after=1)
    assert get(client(crm)).status_code == 200
    first, second = crm.requests
    assert second.time - first.time >= 1 - EPSILON


def test_vendor_reset_header_in_seconds_is_honoured(crm):
    crm.inject("rate_limit", retry_after=None, headers={"X-RateLimit-Reset": "0.5"})
    get(client(crm))
    first, second = crm.requests
    assert second.time - first.time >= 0.5 - EPSILON


def test_reset_header_as_epoch_seconds_is_read_as_a_moment():
    assert server_wait({"x-rate-limit-reset": "1700000010"}, now=1700000000.0) == pytest.approx(10)
    assert server_wait({"X-RateLimit-Reset": "1700000010000"}, now=1700000000.0) == pytest.approx(10)
    assert server_wait({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == pytest.approx(10)


def test_rate_limit_wait_is_logged_without_secrets(crm, caplog):
    crm.inject("rate_limit", retry_after=0.1)
    with caplog.at_level(logging.INFO, logger="threadline.http"):
        get(client(crm, auth=BearerAuth(CustomersSandbox.TOKEN)))
    messages = [r.getMessage() for r in caplog.records if r.name == "threadline.http"]
    assert any("rate limited" in m and "waiting" in m for m in messages)
    assert not any(CustomersSandbox.TOKEN in m for m in messages)


def test_a_wait_longer_than_the_retry_cap_is_not_waited_for(crm):
    crm.inject("rate_limit", retry_after=3600)
    with pytest.raises(TransientError) as raised:
        get(client(crm, retry=RetryPolicy(max_attempts=5, max_retry_time=2)))
    assert raised.value.retry_after == 3600
    assert len(crm.requests) == 1


def test_exhausted_retries_raise_a_transient_error_naming_connector_stream_and_request(crm):
    crm.inject("status", status=503, times=0)
    with pytest.raises(TransientError) as raised:
        get(client(crm))
    text = str(raised.value)
    assert "crm / customers" in text
    assert "GET http://127.0.0.1:" in text and "/customers?limit=5" in text
    assert "503" in text and "4 attempts" in text
    assert len(crm.requests) == FAST.max_attempts


def test_dropped_connections_are_retried(crm):
    crm.inject("drop", times=2)
    assert get(client(crm)).status_code == 200


def test_read_timeouts_are_retried(crm):
    crm.inject("timeout", delay=0.3)
    assert get(client(crm, timeouts=Timeouts(connect=1, read=0.1))).status_code == 200
    assert [r.fault for r in crm.requests] == ["timeout", ""]


def test_a_refused_connection_is_a_transient_error_pointing_at_base_url():
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        c = HttpClient(f"http://127.0.0.1:{port}", retry=FAST, connector="crm")
        with pytest.raises(TransientError) as raised:
            get(c)
    assert "connection refused" in str(raised.value)
    assert "base_url" in raised.value.hint


def test_404_fails_at_once_with_a_fatal_error(crm):
    c = client(crm)
    with pytest.raises(FatalError) as raised:
        c.request("GET", "/nope", stream="customers")
    assert "GET http://127.0.0.1:" in str(raised.value) and "/nope" in str(raised.value)
    assert "404" in str(raised.value)
    assert len(crm.requests) == 1


def test_a_connector_can_override_the_action_table(crm):
    c = client(crm, actions=DEFAULT_ACTIONS.override({404: Action.IGNORE}))
    assert c.request("GET", "/nope") is None


def test_403_is_a_config_error_naming_the_auth_field(crm):
    crm.inject("status", status=403)
    with pytest.raises(ConfigError) as raised:
        get(client(crm, auth=BearerAuth(CustomersSandbox.TOKEN, field="auth.token")))
    assert raised.value.field == "auth.token"


def test_action_table_lookup_order():
    assert DEFAULT_ACTIONS.for_status(503) is Action.RETRY
    assert DEFAULT_ACTIONS.for_status(501) is Action.FAIL  # exact beats class
    assert DEFAULT_ACTIONS.for_status(418) is Action.FAIL
    assert DEFAULT_ACTIONS.for_status(204) is Action.SUCCESS
    assert DEFAULT_ACTIONS.for_status(429) is Action.RATE_LIMITED


def test_request_budget_spaces_requests_out(crm):
    c = client(crm, budget=RequestBudget(calls=2, per_seconds=0.5))
    for _ in range(3):
        get(c)
    times = [r.time for r in crm.requests]
    assert times[2] - times[0] >= 0.5 - EPSILON
    assert c.stats.waited > 0


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(backoff_base=1, backoff_factor=2, max_backoff=5, jitter=False)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = RetryPolicy(backoff_base=1, backoff_factor=2, max_backoff=5)
    assert all(1 <= jittered.backoff(2) <= 2 for _ in range(50))
