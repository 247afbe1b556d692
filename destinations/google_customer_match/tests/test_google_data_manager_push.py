"""google_data_manager specifics: the request Google gets, 10,000 members and 10 identifiers per
request, all-or-nothing answers turned into per-member rejections, 300 requests a minute and
429 RESOURCE_EXHAUSTED, terms of service and consent, and each error mapped to its field."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest
from threadline.contracts import MEMBER_SCHEMA, AudienceTarget, ConfigError, PushMode, TransientError
from threadline.testing import sample_members
from threadline_google_customer_match import GoogleDataManager
from threadline_google_customer_match.data_manager import DataManagerWriter, _budget
from threadline_google_customer_match.sandbox import GoogleSandbox

NAME = "google_data_manager"
DM = GoogleDataManager
INGEST, REMOVE = "/v1/audienceMembers:ingest", "/v1/audienceMembers:remove"


def emails(members: pa.Table) -> set[str]:
    return {hashlib.sha256(e.encode()).hexdigest() for e in members.column("email").to_pylist()}


def member_body(n: int, identifiers: int = 1) -> dict:
    ids = [{"emailAddress": hashlib.sha256(f"p{n}.{k}@example.com".encode()).hexdigest()} for k in range(identifiers)]
    return {"userData": {"userIdentifiers": ids}}


def ingest_body(google, members: list[dict], **overrides) -> dict:
    return {
        "destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": google.CUSTOMER_ID},
                          "productDestinationId": google.USER_LIST_ID}],
        "audienceMembers": members, "encoding": "HEX",
        "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"}, **overrides,
    }


def test_declares_advertising_10000_members_a_request_100_to_serve_and_diffs_applied_per_batch():
    assert DM.channel == "advertising" and DM.max_batch_rows == 10_000 and DM.min_members == 100
    assert DM.applies_each_batch is True and DM.modes == (PushMode.DIFF, PushMode.MIRROR)


def test_ingest_and_remove_carry_what_google_documents(google, dm_config, pusher):
    members = sample_members(0, 6)
    pusher(GoogleDataManager, dm_config(login_customer_id=google.MANAGER_ID), adds=members)
    pusher(GoogleDataManager, dm_config(), removes=members.slice(0, 2))
    ingest, remove = (json.loads(r.body) for r in google.requests if r.path in (INGEST, REMOVE))
    assert ingest["destinations"] == [{
        "reference": "threadline", "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": google.CUSTOMER_ID},
        "loginAccount": {"accountType": "GOOGLE_ADS", "accountId": google.MANAGER_ID}, "productDestinationId": google.USER_LIST_ID}]
    assert ingest["encoding"] == "HEX" and ingest["termsOfService"] == {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
    assert ingest["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    assert len(ingest["audienceMembers"]) == 6 and len(ingest["audienceMembers"][0]["userData"]["userIdentifiers"]) == 3
    assert "consent" not in remove and "termsOfService" not in remove, "removals carry no consent: they always go through"
    assert google.email_hashes() == emails(members.slice(2))


def test_each_batch_is_applied_when_its_request_returns(google, dm_config):
    dest = DM()
    config = dm_config()
    writer = dest.open_audience(config, AudienceTarget("t", "a", PushMode.DIFF, "r", 10, 0))
    writer.add(dest.prepare(config, sample_members(0, 10)))
    assert google.email_hashes() == emails(sample_members(0, 10)), "the Data Manager API is synchronous"
    report = writer.finish()
    assert report.match_estimate == google._lists[google.USER_LIST_ID].size("display") and report.details["requests"] == 1


def test_a_request_of_more_than_10000_members_is_refused(google, raw):
    answer = raw.post(INGEST, ingest_body(google, [member_body(n) for n in range(10_001)]))
    assert answer.status_code == 400 and raw.codes(answer) == [("TOO_MANY_AUDIENCE_MEMBERS", None)]
    writer = DM().open_audience(DM.spec.model_validate(google.job_config(NAME)), AudienceTarget("t", "a", PushMode.DIFF, "r", 1, 0))
    with pytest.raises(ValueError, match="at most 10000"):
        writer.add(DM().prepare(None, sample_members(0, 10_001)))


def test_more_than_10_identifiers_for_a_member_is_refused_and_nothing_applied(google, raw):
    answer = raw.post(INGEST, ingest_body(google, [member_body(1), member_body(2, identifiers=11)]))
    assert answer.status_code == 400 and raw.codes(answer) == [("TOO_MANY_USER_IDENTIFIERS", 1)]
    assert google.email_hashes() == set(), "synchronous and no partial failure: the good member is not applied either"


def test_plain_or_unhashed_values_are_refused_as_google_shows(google, raw):
    answer = raw.post(INGEST, ingest_body(google, [
        {"userData": {"userIdentifiers": [{"emailAddress": "dana@example.com"}]}},
        {"userData": {"userIdentifiers": [{"emailAddress": "dana@example.com".encode().hex()}]}},
    ]))
    assert raw.codes(answer) == [("INVALID_HEX_ENCODING", 0), ("INVALID_SHA256_FORMAT", 1)]


def test_members_google_refuses_are_rejected_and_the_others_sent_again(google, dm_config, pusher):
    members = sample_members(0, 10)
    bad = members.slice(3, 1)
    google.reject_identifier(next(iter(emails(bad))), "INVALID_SHA256_FORMAT")
    report, results = pusher(GoogleDataManager, dm_config(), adds=members)
    assert [r.status for r in google.requests if r.path == INGEST] == [400, 200]
    second = json.loads([r for r in google.requests if r.path == INGEST][1].body)
    assert len(second["audienceMembers"]) == 9
    rejected = [r for result in results for r in result.rejected]
    assert [r.member_id for r in rejected] == bad.column("member_id").to_pylist()
    assert rejected[0].reason.startswith("INVALID_SHA256_FORMAT")
    assert (report.sent, report.accepted, report.rejected) == (10, 9, 1)
    assert google.email_hashes() == emails(members) - emails(bad)


def test_a_member_without_identifiers_is_rejected_and_not_sent(google, dm_config, pusher):
    members = sample_members(0, 3).to_pylist()
    members[2].update(email=None, phone=None, first_name=None)
    _, results = pusher(GoogleDataManager, dm_config(), adds=pa.Table.from_pylist(members, schema=MEMBER_SCHEMA))
    assert [r.member_id for result in results for r in result.rejected] == [members[2]["member_id"]]
    assert len(json.loads([r for r in google.requests if r.path == INGEST][0].body)["audienceMembers"]) == 2


def test_rate_limit_is_429_resource_exhausted_without_retry_after_and_is_waited_out():
    # a window long enough that even a loaded machine sends the third request inside it
    with GoogleSandbox(requests_per_minute=2, rate_window=2.0) as google:
        config = DM.spec.model_validate({**google.job_config(NAME), "backoff_base": 0.05, "max_rate_limit_wait": 30})
        writer = DataManagerWriter(DM._client(config), config)
        for start in range(0, 40, 10):
            writer.add(DM().prepare(config, sample_members(start, 10)))
        limited = [r for r in google.requests if r.status == 429]
        assert limited, "the sandbox never rate limited"
        assert google.email_hashes() == emails(sample_members(0, 40))


def test_a_rate_limit_that_does_not_pass_in_time_is_a_transient_error_naming_the_destination():
    with GoogleSandbox(requests_per_minute=1, rate_window=3600) as google:
        config = DM.spec.model_validate({**google.job_config(NAME), "backoff_base": 0.01, "max_rate_limit_wait": 0.05})
        writer = DataManagerWriter(DM._client(config), config)
        writer.add(DM().prepare(config, sample_members(0, 5)))
        with pytest.raises(TransientError) as caught:
            writer.add(DM().prepare(config, sample_members(5, 5)))
        assert "429" in caught.value.render() and NAME in caught.value.render()


def test_the_retry_delay_google_puts_in_the_body_is_handed_to_the_kit_as_retry_after(make_raw):
    with GoogleSandbox(requests_per_minute=1, rate_window=3600) as google:
        raw = make_raw(google)
        raw.post(INGEST, ingest_body(google, [member_body(1)]))
        plain = raw.post(INGEST, ingest_body(google, [member_body(2)]))
        assert plain.status_code == 429 and raw.codes(plain) == [("RATE_LIMIT_EXCEEDED", None)]
        assert "Retry-After" not in plain.headers, "Google's 429 carries its delay in a RetryInfo detail, not a header"
        hooked = raw.post(INGEST, ingest_body(google, [member_body(3)]), hook=NAME)
        assert 3500 < float(hooked.headers["Retry-After"]) <= 3600


def test_one_request_budget_of_300_a_minute_is_shared_by_pushes_of_one_oauth_client(dm_config):
    first, second = _budget(dm_config()), _budget(dm_config(user_list_id="777"))
    assert first is second and (first.calls, first.per_seconds) == (300, 60.0)


def test_without_accepted_terms_nothing_is_sent_and_the_field_is_named(google, dm_config):
    config = dm_config(terms_of_service_accepted=False)
    for call in (lambda: DM().check(config),
                 lambda: DM().open_audience(config, AudienceTarget("t", "a", PushMode.DIFF, "r", 1, 0))):
        with pytest.raises(ConfigError) as caught:
            call()
        assert caught.value.field == "terms_of_service_accepted"
    assert not [r for r in google.requests if r.path.startswith("/v1/")]


def test_google_refusing_the_terms_is_mapped_to_the_terms_field(google, raw):
    with pytest.raises(ConfigError) as caught:
        raw.post(INGEST, ingest_body(google, [member_body(1)], termsOfService={}), hook=NAME)
    assert caught.value.field == "terms_of_service_accepted" and "TERMS_AND_CONDITIONS_NOT_SIGNED" in caught.value.message


def test_members_sent_without_consent_are_kept_but_not_targetable(google, dm_config, pusher):
    report, _ = pusher(GoogleDataManager, dm_config(consent={"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}),
                       adds=sample_members(0, 20))
    assert len(google.email_hashes()) == 20 and report.match_estimate == 0


def test_a_list_that_does_not_take_contact_info_is_named(google, dm_config, pusher):
    with pytest.raises(ConfigError) as caught:
        pusher(GoogleDataManager, dm_config(user_list_id=google.CRM_ID_LIST_ID), adds=sample_members(0, 3))
    assert caught.value.field == "user_list_id" and "INVALID_USER_LIST_TYPE" in caught.value.message


def test_an_unknown_list_while_pushing_is_invalid_user_list_id(google, dm_config, pusher):
    with pytest.raises(ConfigError) as caught:
        pusher(GoogleDataManager, dm_config(user_list_id="404404"), adds=sample_members(0, 3))
    assert caught.value.field == "user_list_id" and "INVALID_USER_LIST_ID" in caught.value.message


def test_a_manager_that_is_not_ours_is_permission_denied_on_customer_id(google, dm_config, pusher):
    with pytest.raises(ConfigError) as caught:
        pusher(GoogleDataManager, dm_config(login_customer_id="2222222222"), adds=sample_members(0, 3))
    assert caught.value.field == "customer_id" and "login_customer_id" in caught.value.hint


def test_a_mirror_ingests_everyone_then_removes_all_added_before_it_began(google, dm_config, pusher):
    pusher(GoogleDataManager, dm_config(), adds=sample_members(0, 30))
    latest = sample_members(20, 30)  # 10 stay, 20 leave, 20 join
    pusher(GoogleDataManager, dm_config(), adds=latest, mode=PushMode.MIRROR)
    assert google.email_hashes() == emails(latest)
    verbs = [r.path.rpartition(":")[2] for r in google.requests if ":" in r.path]
    assert verbs[-2:] == ["ingest", "removeAll"], "the list never holds less than the audience"
    body = json.loads(next(r.body for r in google.requests if r.path.endswith(":removeAll")))
    assert set(body) == {"destinations", "removeAsOfTime"} and body["removeAsOfTime"].endswith("Z")


def test_a_mirror_that_fails_midway_leaves_the_old_members_next_to_the_new(google, dm_config):
    before, latest = sample_members(0, 10), sample_members(100, 10)
    writer = DM().open_audience(dm_config(), AudienceTarget("t", "a", PushMode.DIFF, "r", 10, 0))
    writer.add(DM().prepare(dm_config(), before))
    writer.finish()
    mirror = DM().open_audience(dm_config(), AudienceTarget("t", "a", PushMode.MIRROR, "r", 10, 0))
    mirror.add(DM().prepare(dm_config(), latest))
    mirror.abort()  # the push broke before finish
    assert google.email_hashes() == emails(before) | emails(latest)


def test_the_sandbox_refuses_a_remove_as_of_time_in_the_future(google, raw):
    answer = raw.post("/v1/audienceMembers:removeAll", {"removeAsOfTime": "2999-01-01T00:00:00Z", "destinations": [{
        "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": google.CUSTOMER_ID},
        "productDestinationId": google.USER_LIST_ID}]})
    assert answer.status_code == 400 and "future" in answer.text


def test_a_mirror_of_no_members_empties_the_list(google, dm_config, pusher):
    pusher(GoogleDataManager, dm_config(), adds=sample_members(0, 5))
    pusher(GoogleDataManager, dm_config(), mode=PushMode.MIRROR)
    assert google.email_hashes() == set()


def test_customer_ids_with_dashes_are_accepted_and_bad_ones_named(dm_config):
    assert dm_config(customer_id="123-456-7890").customer_id == "1234567890"
    with pytest.raises(ValueError, match="10 digits"):
        dm_config(customer_id="12345")


def test_people_sharing_a_phone_and_address_stay_two_members_and_removing_one_keeps_the_other(google, dm_config, pusher):
    household = sample_members(0, 2).to_pylist()
    household[1].update(phone=household[0]["phone"], first_name=household[0]["first_name"],
                        last_name=household[0]["last_name"], postal_code=household[0]["postal_code"])
    members = pa.Table.from_pylist(household, schema=MEMBER_SCHEMA)
    pusher(GoogleDataManager, dm_config(), adds=members)
    assert google.email_hashes() == emails(members)
    pusher(GoogleDataManager, dm_config(), removes=members.slice(0, 1))
    assert google.email_hashes() == emails(members.slice(1))
