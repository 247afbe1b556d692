"""Meta's error codes, as the sandbox answers them, and the error each becomes: what went
wrong, where (the config field), and what to do next."""

from __future__ import annotations

import pytest
from threadline.contracts import ConfigError, FatalError, TransientError
from threadline.testing import sample_members
from threadline_meta_audiences import MetaAudiences
from threadline_meta_audiences.graph import regain_seconds
from threadline_meta_audiences.sandbox import MISMATCH


def test_unknown_audience_is_a_config_error_on_audience_id(meta, make_config, pusher):
    config = make_config(audience_id="23850000000000404")
    with pytest.raises(ConfigError) as at_check:
        MetaAudiences().check(config)
    with pytest.raises(ConfigError) as at_push:
        pusher(config, adds=sample_members(0, 3))
    for caught in (at_check, at_push):
        assert caught.value.field == "audience_id"
        assert "code 100/33" in caught.value.render() and "meta_audiences" in caught.value.render()


def test_a_retired_marketing_api_version_is_a_config_error_on_api_version(meta, make_config, pusher):
    config = make_config(api_version="v24.0")  # expired 2026-11-10
    with pytest.raises(ConfigError) as at_check:
        MetaAudiences().check(config)
    with pytest.raises(ConfigError) as at_push:
        pusher(config, adds=sample_members(0, 3))
    for caught in (at_check, at_push):
        assert caught.value.field == "api_version" and "code 2635" in caught.value.render()


def test_the_default_version_is_one_meta_serves(meta, make_config):
    MetaAudiences().check(make_config(api_version=None))


def test_a_website_audience_cannot_take_uploads(meta, make_config):
    with pytest.raises(ConfigError, match="WEBSITE") as caught:
        MetaAudiences().check(make_config(audience_id=meta.WEBSITE_AUDIENCE_ID))
    assert caught.value.field == "audience_id"


def test_expired_token_without_renewal_is_a_config_error_saying_how_to_renew(meta, make_config, pusher):
    meta.expire_access_tokens()
    with pytest.raises(ConfigError) as caught:
        pusher(make_config(), adds=sample_members(0, 3))
    assert caught.value.field == "access_token"
    assert "code 190/463" in caught.value.render() and "exchange_token" in caught.value.hint
    assert meta.ACCESS_TOKEN not in caught.value.render()


def test_expired_token_is_renewed_by_exchange_and_the_push_completes(meta, make_config, pusher):
    config = make_config(app_id=meta.APP_ID, app_secret=meta.APP_SECRET, exchange_token=meta.EXCHANGE_TOKEN)
    meta.expire_access_tokens()
    pushed = pusher(config, adds=sample_members(0, 5))
    assert meta.exchanges == 1 and pushed.report.details["token_renewals"] == 1
    assert len(meta.audience_hashes()) == 5


def test_renewal_refused_is_a_config_error_on_access_token(meta, make_config, pusher):
    config = make_config(app_id=meta.APP_ID, app_secret=meta.APP_SECRET, exchange_token=meta.EXCHANGE_TOKEN)
    meta.revoke_credentials()
    with pytest.raises(ConfigError, match="renewing it failed") as caught:
        pusher(config, adds=sample_members(0, 3))
    assert caught.value.field == "access_token"


def test_renewal_needs_app_id_app_secret_and_exchange_token_together(meta, make_config):
    with pytest.raises(ValueError, match="app_secret"):
        make_config(app_id=meta.APP_ID, exchange_token=meta.EXCHANGE_TOKEN)


def test_token_without_ads_management_is_a_config_error_naming_the_permission(meta, make_config, pusher):
    with pytest.raises(ConfigError, match="ads_management") as caught:
        pusher(make_config(access_token=meta.NO_ADS_TOKEN), adds=sample_members(0, 3))
    assert caught.value.field == "access_token" and "code 294" in caught.value.render()


def test_audience_shared_by_another_business_is_a_permission_error(meta, make_config, pusher):
    config = make_config(audience_id=meta.SHARED_AUDIENCE_ID)
    MetaAudiences().check(config)  # readable: it is shared with this business
    with pytest.raises(ConfigError, match="lacks permission") as caught:
        pusher(config, adds=sample_members(0, 3))
    assert caught.value.field == "access_token" and "code 200" in caught.value.render()


def test_wrong_app_secret_is_a_config_error_on_app_secret(meta, make_config):
    with pytest.raises(ConfigError, match="appsecret_proof") as caught:
        MetaAudiences().check(make_config(app_secret="not-the-secret"))
    assert caught.value.field == "app_secret"


def test_appsecret_proof_is_sent_when_the_app_requires_it(make_config, pusher):
    from threadline_meta_audiences.sandbox import MetaSandbox

    with MetaSandbox(require_appsecret_proof=True) as strict:
        config = make_config(base_url=strict.base_url, app_secret=strict.APP_SECRET)
        pusher(config, adds=sample_members(0, 3))
        assert all(r.param("appsecret_proof") == "***" for r in strict.requests)
        with pytest.raises(ConfigError, match="appsecret_proof"):
            MetaAudiences().check(make_config(base_url=strict.base_url))


@pytest.mark.parametrize("code", [4, 17, 613, 80003])
def test_throttling_is_waited_out_and_the_push_completes(meta, make_config, pusher, code):
    meta.inject_graph_error(code, times=2)
    pusher(make_config(), adds=sample_members(0, 5))
    assert len(meta.audience_hashes()) == 5
    assert [r.status for r in meta.requests if r.method == "POST"][:3] == [400, 400, 200]


def test_throttling_longer_than_max_wait_stops_with_metas_wait(meta, make_config, pusher):
    meta.inject_graph_error(80003, times=1, regain_minutes=3)
    with pytest.raises(TransientError, match="wait 180s") as caught:
        pusher(make_config(max_wait=20), adds=sample_members(0, 5))
    assert caught.value.retry_after == 180


def test_business_use_case_usage_gives_the_wait_in_seconds():
    usage = '{"100": [{"type": "custom_audience", "call_count": 100, "estimated_time_to_regain_access": 2}], ' \
            '"200": [{"type": "ads_management", "estimated_time_to_regain_access": 5}]}'
    assert regain_seconds({"X-Business-Use-Case-Usage": usage}) == 300
    assert regain_seconds({"X-Business-Use-Case-Usage": '{"1": [{"estimated_time_to_regain_access": 0}]}'}) is None
    assert regain_seconds({}) is None and regain_seconds({"X-Business-Use-Case-Usage": "not json"}) is None


@pytest.mark.parametrize("code", [1, 2])
def test_transient_graph_errors_are_retried(meta, make_config, pusher, code):
    meta.inject_graph_error(code, times=2)
    pusher(make_config(), adds=sample_members(0, 5))
    assert len(meta.audience_hashes()) == 5


def test_schema_mismatch_is_fatal_with_metas_message_and_a_hint(meta, make_config, pusher):
    meta.inject_graph_error(100, message=MISMATCH)
    with pytest.raises(FatalError) as caught:
        pusher(make_config(), adds=sample_members(0, 3))
    text = caught.value.render()
    assert "Data is missing or does not match schema" in text and "meta_audiences" in text
    assert "report it" in caught.value.hint
