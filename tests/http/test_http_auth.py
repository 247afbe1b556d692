"""Auth schemes, token refresh, and secrets kept out of errors, logs and recordings."""

from __future__ import annotations

import logging

import pytest

from threadline.contracts import ConfigError
from threadline.http import ApiKeyAuth, BasicAuth, BearerAuth, HttpClient, OAuth2Auth, RetryPolicy
from threadline.sandbox import CustomersSandbox as S

FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, max_retry_time=5)


@pytest.fixture
def crm():
    with S(count=5) as sandbox:
        yield sandbox


def get(sandbox, auth, **kw):
    c = HttpClient(sandbox.base_url, auth=auth, retry=FAST, connector="crm", **kw)
    return c.request("GET", "/customers", stream="customers"), c


def test_bearer_token_is_sent(crm):
    response, _ = get(crm, BearerAuth(S.TOKEN))
    assert response.status_code == 200
    assert crm.requests[0].headers["authorization"] == "Bearer ***"


def test_api_key_in_a_header(crm):
    response, _ = get(crm, ApiKeyAuth(S.API_KEY, name="X-API-Key"))
    assert response.status_code == 200
    assert crm.requests[0].headers["x-api-key"] == "***"


def test_api_key_in_the_query(crm):
    response, _ = get(crm, ApiKeyAuth(S.API_KEY, name="api_key", location="query"))
    assert response.status_code == 200
    assert crm.requests[0].query["api_key"] == ["***"]


def test_basic_auth(crm):
    response, _ = get(crm, BasicAuth(S.USERNAME, S.PASSWORD))
    assert response.status_code == 200


def test_oauth_client_credentials_fetches_a_token_first(crm):
    auth = OAuth2Auth(crm.base_url + "/oauth/token", client_id=S.CLIENT_ID, client_secret=S.CLIENT_SECRET)
    response, _ = get(crm, auth)
    assert response.status_code == 200
    assert [r.path for r in crm.requests] == ["/oauth/token", "/customers"]


def test_oauth_refresh_token_flow(crm):
    auth = OAuth2Auth(crm.base_url + "/oauth/token", refresh_token=S.REFRESH_TOKEN)
    assert get(crm, auth)[0].status_code == 200
    assert "grant_type=refresh_token" in crm.requests[0].body
    assert S.REFRESH_TOKEN not in crm.requests[0].body


def test_an_expired_token_is_refreshed_once_and_the_request_retried(crm):
    auth = OAuth2Auth(crm.base_url + "/oauth/token", client_id=S.CLIENT_ID, client_secret=S.CLIENT_SECRET)
    crm.inject("expired_token", path="/customers")
    response, client = get(crm, auth)
    assert response.status_code == 200
    assert [r.path for r in crm.requests] == ["/oauth/token", "/customers", "/oauth/token", "/customers"]
    assert client.stats.auth_refreshes == 1


def test_a_token_near_expiry_is_refreshed_before_use():
    with S(count=3, token_ttl=1) as crm:  # expires inside the 30 s leeway: refreshed every use
        auth = OAuth2Auth(crm.base_url + "/oauth/token", client_id=S.CLIENT_ID, client_secret=S.CLIENT_SECRET)
        _, client = get(crm, auth)
        client.request("GET", "/customers")
        assert auth.refreshes == 2
        assert [r.status for r in crm.requests_to("/customers")] == [200, 200]


def test_a_second_401_after_refreshing_is_a_config_error(crm):
    auth = OAuth2Auth(crm.base_url + "/oauth/token", client_id=S.CLIENT_ID, client_secret=S.CLIENT_SECRET)
    crm.inject("expired_token", path="/customers", times=2)
    with pytest.raises(ConfigError) as raised:
        get(crm, auth)
    assert raised.value.field == "auth"
    assert "again after refreshing" in str(raised.value)


def test_a_refused_static_token_is_a_config_error_naming_the_field(crm):
    with pytest.raises(ConfigError) as raised:
        get(crm, BearerAuth("wrong-token-123", field="auth.token"))
    assert raised.value.field == "auth.token"
    assert len(crm.requests) == 1  # a static token cannot be refreshed: no retry


def test_wrong_client_secret_is_a_config_error(crm):
    auth = OAuth2Auth(crm.base_url + "/oauth/token", client_id=S.CLIENT_ID, client_secret="not-the-secret")
    with pytest.raises(ConfigError) as raised:
        get(crm, auth)
    assert "not-the-secret" not in str(raised.value)


def test_secrets_never_appear_in_errors_or_logs(crm, caplog):
    crm.inject("status", status=500, times=0)
    auth = ApiKeyAuth("query-key-secret-42", name="api_key", location="query")
    with caplog.at_level(logging.DEBUG, logger="threadline.http"), pytest.raises(Exception) as raised:
        get(crm, auth)
    assert "query-key-secret-42" not in str(raised.value)
    assert "api_key=***" in str(raised.value)
    assert all("query-key-secret-42" not in r.getMessage() for r in caplog.records)
