"""google_customer_match specifics: upload jobs (diff, mirror, status), request sizes, partial
failures, and every error the contract lists for the Google Ads API, as the sandbox enforces
it and as the destination reports it."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest
from threadline.contracts import MEMBER_SCHEMA, AudienceTarget, ConfigError, FatalError, PushMode, TransientError
from threadline.testing import sample_members
from threadline_google_customer_match import GoogleCustomerMatch
from threadline_google_customer_match.errors import RowsRejected, parse_status, raise_for, row_errors
from threadline_google_customer_match.sandbox import GoogleSandbox

NAME = "google_customer_match"
CM = GoogleCustomerMatch


def emails(members: pa.Table) -> set[str]:
    return {hashlib.sha256(e.encode()).hexdigest() for e in members.column("email").to_pylist()}


def requests_to(google: GoogleSandbox, suffix: str) -> list:
    return [r for r in google.requests if r.path.endswith(suffix)]


# ---------------------------------------------------------------------------- what it declares


def test_declares_advertising_the_request_maximum_the_serving_minimum_and_job_semantics():
    assert CM.channel == "advertising"
    assert CM.max_batch_rows == 100_000, "100,000 identifiers per addOperations request, at least one per member"
    assert CM.min_members == 100, "Google Ads: 100 active members to serve (README: sources)"
    assert CM.applies_each_batch is False, "nothing applies until finish() runs the jobs"
    assert set(CM.modes) == {PushMode.DIFF, PushMode.MIRROR}


# ---------------------------------------------------------------------------- jobs


def test_a_diff_is_one_remove_job_then_one_create_job_and_only_creates_carry_consent(google, cm_config, pusher):
    config = cm_config()
    first = sample_members(0, 30)
    pusher(CM, config, adds=first)
    google.clear_requests()
    pusher(CM, config, adds=sample_members(30, 5), removes=first.slice(0, 10))
    created = [json.loads(r.body)["job"]["customerMatchUserListMetadata"] for r in requests_to(google, "offlineUserDataJobs:create")]
    assert ["consent" in c for c in created] == [False, True], "the remove job has no consent, the create job has"
    jobs = google.jobs()[-2:]
    assert [j["kinds"] for j in jobs] == [["remove"], ["create"]] and all(j["status"] == "SUCCESS" for j in jobs)
    runs = [r.path for r in requests_to(google, ":run")]
    assert runs == [f"/v26/customers/{google.CUSTOMER_ID}/offlineUserDataJobs/{j['id']}:run" for j in jobs]
    assert google.email_hashes() == emails(first.slice(10)) | emails(sample_members(30, 5))


def test_a_mirror_runs_a_remove_all_job_to_success_before_the_create_job_runs(google, cm_config, pusher):
    config = cm_config()
    pusher(CM, config, adds=sample_members(0, 20))
    google.clear_requests()
    latest = sample_members(15, 10)
    pusher(CM, config, adds=latest, mode=PushMode.MIRROR)
    by_kind = {tuple(j["kinds"]): j for j in google.jobs()[-2:]}
    cleared, created = by_kind[("removeAll",)], by_kind[("create",)]  # the create job fills while batches arrive
    order = [(r.path, r.body) for r in google.requests]
    create_run = order.index((f"/v26/customers/{google.CUSTOMER_ID}/offlineUserDataJobs/{created['id']}:run", "{}"))
    polls_of_cleared = [i for i, (path, body) in enumerate(order) if path.endswith("googleAds:search")
                        and f"offlineUserDataJobs/{cleared['id']}'" in body]
    assert len(polls_of_cleared) == google.polls_to_finish and max(polls_of_cleared) < create_run, (
        "the create job must run only after the removeAll job reached SUCCESS")
    assert google.email_hashes() == emails(latest)


def test_an_empty_mirror_empties_the_list(google, cm_config, pusher):
    config = cm_config()
    pusher(CM, config, adds=sample_members(0, 10))
    report, _ = pusher(CM, config, mode=PushMode.MIRROR)
    assert google.email_hashes() == set() and report.sent == 0


def test_nothing_applies_before_finish_and_the_report_carries_googles_figures(google, cm_config):
    config = cm_config()
    dest = CM()
    writer = dest.open_audience(config, AudienceTarget("t", "a", PushMode.DIFF, "r", 30, 0))
    writer.add(dest.prepare(config, sample_members(0, 30)))
    assert google.email_hashes() == set(), "members applied before the job ran"
    report = writer.finish()
    assert google.email_hashes() == emails(sample_members(0, 30))
    assert report.match_estimate == google._lists[google.USER_LIST_ID].size("display")
    assert report.details["match_rate_range"].startswith("MATCH_RANGE_") and len(report.details["jobs"]) == 1


def test_a_failed_job_stops_the_push_and_applies_nothing(google, cm_config, pusher):
    google.fail_next_job()
    with pytest.raises(FatalError) as caught:
        pusher(CM, cm_config(), adds=sample_members(0, 10))
    assert "FAILED" in caught.value.render() and NAME in caught.value.render() and "run the push again" in caught.value.hint
    assert google.email_hashes() == set()


def test_a_job_still_running_after_job_timeout_is_a_transient_error(google, cm_config, pusher):
    google.polls_to_finish = 10**6
    with pytest.raises(TransientError) as caught:
        pusher(CM, cm_config(job_timeout=1e-9), adds=sample_members(0, 5))
    assert "still RUNNING" in caught.value.render() and google.email_hashes() == set()


def test_a_retried_run_of_a_job_that_already_started_is_not_an_error(google, cm_config, raw):
    jobs = CM._jobs(cm_config())
    job = jobs.create(with_consent=True)
    raw.add(job, [{"create": {"userIdentifiers": [raw.email(1)]}}])
    jobs.run(job)
    jobs.run(job)  # Google answers JOB_ALREADY_STARTED: it runs, which is what was asked
    assert jobs.wait(job)["status"] == "SUCCESS"


# ---------------------------------------------------------------------------- request sizes and headers


def test_requests_hold_at_most_identifiers_per_request(google, cm_config, pusher):
    pusher(CM, cm_config(identifiers_per_request=30), adds=sample_members(0, 40))
    sizes = [sum(len(op["create"]["userIdentifiers"]) for op in json.loads(r.body)["operations"])
             for r in requests_to(google, ":addOperations")]
    assert max(sizes) <= 30 and sum(sizes) == 40 * 3, f"identifiers per request: {sizes}"
    assert all(json.loads(r.body)["enablePartialFailure"] is True for r in requests_to(google, ":addOperations"))


def test_every_ads_request_carries_the_developer_token_and_login_customer_id_masked_in_logs(google, cm_config, pusher):
    pusher(CM, cm_config(login_customer_id=google.MANAGER_ID), adds=sample_members(0, 5))
    ads = [r for r in google.requests if r.path.startswith("/v26/")]
    assert ads and all(r.headers.get("login-customer-id") == google.MANAGER_ID for r in ads)
    assert all(r.headers.get("developer-token") == "***" for r in ads), "the developer token must be masked"


# ---------------------------------------------------------------------------- per-member errors


def test_partial_failures_are_rejected_per_member_with_googles_reason_and_the_rest_applied(google, cm_config, pusher):
    members = sample_members(0, 12)
    bad = members.slice(4, 1).to_pylist()[0]
    google.reject_identifier(next(iter(emails(members.slice(4, 1)))), "INVALID_SHA256_FORMAT")
    report, results = pusher(CM, cm_config(), adds=members)
    rejected = [r for result in results for r in result.rejected]
    assert [r.member_id for r in rejected] == [bad["member_id"]]
    assert rejected[0].reason.startswith("INVALID_SHA256_FORMAT: ") and bad["email"] not in rejected[0].reason
    assert (report.accepted, report.rejected) == (11, 1)
    assert google.email_hashes() == emails(members) - emails(members.slice(4, 1))


def test_a_country_that_names_none_leaves_the_address_out_and_a_name_becomes_its_code(google, cm_config, pusher):
    members = sample_members(0, 3).to_pylist()
    members[1]["country"], members[2]["country"] = "XX", "UK"
    _, results = pusher(CM, cm_config(), adds=pa.Table.from_pylist(members, schema=MEMBER_SCHEMA))
    assert not [r for result in results for r in result.rejected]
    operations = [op["create"]["userIdentifiers"] for r in requests_to(google, ":addOperations")
                  for op in json.loads(r.body)["operations"]]
    countries = [[i["addressInfo"]["countryCode"] for i in ids if "addressInfo" in i] for ids in operations]
    assert countries == [["US"], [], ["GB"]]


def test_a_member_without_identifiers_is_rejected_as_missing_and_never_sent(google, cm_config, pusher):
    members = sample_members(0, 3).to_pylist()
    members[0].update(email=None, phone=None, postal_code=None)
    report, results = pusher(CM, cm_config(), adds=pa.Table.from_pylist(members, schema=MEMBER_SCHEMA))
    rejected = [r for result in results for r in result.rejected]
    assert [r.member_id for r in rejected] == [members[0]["member_id"]] and "MISSING_USER_IDENTIFIER" in rejected[0].reason
    sent = sum(len(json.loads(r.body)["operations"]) for r in requests_to(google, ":addOperations"))
    assert sent == 2 and (report.sent, report.accepted, report.rejected) == (3, 2, 1)


def test_sandbox_refuses_user_data_without_identifiers_with_too_many_or_with_consent(raw):
    job = raw.job()
    answer = raw.add(job, [
        {"create": {"userIdentifiers": []}},
        {"create": {"userIdentifiers": [raw.email(n) for n in range(21)]}},
        {"create": {"userIdentifiers": [raw.email(1)], "consent": {"adUserData": "GRANTED"}}},
        {"create": {"userIdentifiers": [{"hashedEmail": "person@example.com"}]}},
        {"create": {"userIdentifiers": [raw.email(2)]}},
    ])
    assert answer.status_code == 200
    assert raw.codes(answer) == [("MISSING_USER_IDENTIFIER", 0), ("TOO_MANY_USER_IDENTIFIERS", 1),
                                 ("OPERATION_LEVEL_CONSENT_PROVIDED", 2), ("INVALID_SHA256_FORMAT", 3)]
    assert raw.google.jobs()[-1]["operations"] == 1, "the good operation is kept"


def test_without_partial_failure_one_bad_operation_fails_the_whole_request(raw):
    job = raw.job()
    answer = raw.add(job, [{"create": {"userIdentifiers": [raw.email(1)]}}, {"create": {"userIdentifiers": []}}], partial=False)
    assert answer.status_code == 400 and raw.codes(answer) == [("MISSING_USER_IDENTIFIER", 1)]
    assert raw.google.jobs()[-1]["operations"] == 0
    with pytest.raises(RowsRejected) as caught:
        raw.add(job, [{"create": {"userIdentifiers": []}}], partial=False, hook=NAME)
    assert [(e.code, e.index) for e in caught.value.errors] == [("MISSING_USER_IDENTIFIER", 0)]


def test_operation_level_consent_is_a_bug_not_a_rejection(raw):
    answer = raw.add(raw.job(), [{"create": {"userIdentifiers": [raw.email(1)], "consent": {"adUserData": "GRANTED"}}}])
    rows, others = row_errors(parse_status(answer.json()["partialFailureError"]))
    assert rows == [] and [e.code for e in others] == ["OPERATION_LEVEL_CONSENT_PROVIDED"]
    with pytest.raises(FatalError, match="OPERATION_LEVEL_CONSENT_PROVIDED") as caught:
        raise_for(others, "addOperations", NAME)
    assert "consent belongs on the job" in caught.value.hint


# ---------------------------------------------------------------------------- job-level errors


def test_more_than_100000_identifiers_in_one_request_is_too_many(raw):
    operations = [{"create": {"userIdentifiers": [raw.email(n), raw.email(n + 1)]}} for n in range(50_001)]
    answer = raw.add(raw.job(), operations)
    assert answer.status_code == 400 and raw.codes(answer) == [("TOO_MANY_USER_IDENTIFIERS", None)]


def test_creates_and_removes_in_one_job_conflict(raw):
    job = raw.job()
    assert raw.add(job, [{"create": {"userIdentifiers": [raw.email(1)]}}]).status_code == 200
    with pytest.raises(FatalError, match="CONFLICTING_OPERATION") as caught:
        raw.add(job, [{"remove": {"userIdentifiers": [raw.email(2)]}}], hook=NAME)
    assert "creates or removes, never both" in caught.value.hint and NAME in caught.value.render()


def test_remove_all_must_be_the_first_operation(raw):
    job = raw.job()
    raw.add(job, [{"create": {"userIdentifiers": [raw.email(1)]}}])
    answer = raw.add(job, [{"removeAll": True}])
    assert answer.status_code == 400 and raw.codes(answer) == [("INVALID_OPERATION_ORDER", 0)]
    with pytest.raises(FatalError, match="INVALID_OPERATION_ORDER"):
        raw.add(job, [{"removeAll": True}], hook=NAME)


def test_operations_after_run_are_refused_as_job_already_started(raw):
    job = raw.job()
    raw.add(job, [{"create": {"userIdentifiers": [raw.email(1)]}}])
    raw.post(f"/v26/{job}:run", {})
    with pytest.raises(FatalError, match="JOB_ALREADY_STARTED") as caught:
        raw.add(job, [{"create": {"userIdentifiers": [raw.email(2)]}}], hook=NAME)
    assert "run the push again" in caught.value.hint


def test_parallel_adds_to_one_job_are_concurrent_modification(raw):
    job = raw.job()
    with raw.google.hold_job(job.rpartition("/")[2]):
        answer = raw.add(job, [{"create": {"userIdentifiers": [raw.email(1)]}}])
    assert answer.status_code == 409 and raw.codes(answer) == [("CONCURRENT_MODIFICATION", None)]
    assert raw.add(job, [{"create": {"userIdentifiers": [raw.email(1)]}}]).status_code == 200, "free again after"


def test_concurrent_modification_is_retried(google, cm_config, pusher):
    google.contend(times=2)
    pusher(CM, cm_config(), adds=sample_members(0, 10))
    assert [r.status for r in requests_to(google, ":addOperations")][:3] == [409, 409, 200]
    assert google.email_hashes() == emails(sample_members(0, 10))


def test_denied_consent_is_a_config_error_on_consent_when_the_create_job_is_made(google, cm_config, pusher):
    with pytest.raises(ConfigError) as caught:
        pusher(CM, cm_config(consent={"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}), adds=sample_members(0, 5))
    assert caught.value.field == "consent" and "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS" in caught.value.message


def test_removals_go_through_even_when_consent_is_denied(google, cm_config, pusher):
    members = sample_members(0, 10)
    pusher(CM, cm_config(), adds=members)
    pusher(CM, cm_config(consent={"ad_user_data": "DENIED", "ad_personalization": "DENIED"}), removes=members.slice(0, 4))
    assert google.email_hashes() == emails(members.slice(4))


def test_a_list_of_crm_ids_is_incompatible_with_contact_info(google, cm_config, pusher):
    with pytest.raises(ConfigError) as caught:
        pusher(CM, cm_config(user_list_id=google.CRM_ID_LIST_ID), adds=sample_members(0, 5))
    assert caught.value.field == "user_list_id" and "INCOMPATIBLE_UPLOAD_KEY_TYPE" in caught.value.message


def test_an_unknown_list_is_invalid_user_list_id(google, cm_config, pusher):
    with pytest.raises(ConfigError) as caught:
        pusher(CM, cm_config(user_list_id="404404"), adds=sample_members(0, 5))
    assert caught.value.field == "user_list_id" and "INVALID_USER_LIST_ID" in caught.value.message


def test_a_missing_developer_token_is_named(raw):
    raw.headers.pop("developer-token")
    with pytest.raises(ConfigError) as caught:
        raw.post(f"/v26/customers/{raw.google.CUSTOMER_ID}/googleAds:search", {"query": "x"}, hook=NAME)
    assert caught.value.field == "developer_token" and "DEVELOPER_TOKEN_PARAMETER_MISSING" in caught.value.message


def test_a_token_expiring_while_finish_polls_the_jobs_is_renewed(google, cm_config):
    config = cm_config()
    writer = CM().open_audience(config, AudienceTarget("t", "a", PushMode.DIFF, "r", 10, 0))
    writer.add(CM().prepare(config, sample_members(0, 10)))
    google.expire_tokens()
    writer.finish()
    assert google.email_hashes() == emails(sample_members(0, 10))
    assert len(requests_to(google, "/token")) == 2, "one token at the start, one after it expired"


def test_a_sunset_api_version_is_a_config_error_on_api_version(google, cm_config, pusher):
    config = cm_config(api_version="v22")  # sunset on 2026-10-07
    with pytest.raises(ConfigError) as at_check:
        CM().check(config)
    with pytest.raises(ConfigError) as at_push:
        pusher(CM, config, adds=sample_members(0, 3))
    for caught in (at_check, at_push):
        assert caught.value.field == "api_version" and "UNSUPPORTED_VERSION" in caught.value.render()


def test_the_default_api_version_is_one_google_serves(google, cm_config):
    CM().check(cm_config())
    assert {r.path.split("/")[1] for r in google.requests if r.path.startswith("/v")} == {"v26"}
