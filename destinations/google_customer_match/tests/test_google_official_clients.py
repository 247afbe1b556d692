"""Google's official clients against the sandbox on 127.0.0.1, unmodified.

- google-ads-datamanager (REST transport, the endpoint in ClientOptions, OAuth through the
  sandbox's token endpoint) performs every write google_data_manager makes: ingest, remove and
  removeAll, with the members `prepare` makes, loaded into the client's own types.
- google-ads speaks gRPC only, and the sandbox serves the REST mapping, so its protos are the
  check: every request google_customer_match sends and every answer the sandbox gives (jobs,
  their status and match rate, user lists) must parse into the real messages, unknown fields
  and enum values refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
import requests
from google.ads import datamanager_v1 as dm
from google.ads.googleads.v26.services.types import google_ads_service, offline_user_data_job_service
from google.api_core.client_options import ClientOptions
from google.oauth2.credentials import Credentials
from threadline.contracts import PushMode
from threadline.testing import sample_members
from threadline_google_customer_match import GoogleCustomerMatch
from threadline_google_customer_match.identifiers import EMAIL_GOOGLE_CANONICAL, data_manager_members, prepare
from threadline_google_customer_match.sandbox import GoogleSandbox


def credentials(google: GoogleSandbox) -> Credentials:
    """OAuth as a user configures it, refreshed at the sandbox's token endpoint."""
    return Credentials(None, refresh_token=google.REFRESH_TOKEN, token_uri=f"{google.base_url}/token",
                       client_id=google.CLIENT_ID, client_secret=google.CLIENT_SECRET)


@pytest.fixture
def ingestion(google: GoogleSandbox) -> Iterator[dm.IngestionServiceClient]:
    client = dm.IngestionServiceClient(credentials=credentials(google), transport="rest",
                                       client_options=ClientOptions(api_endpoint=google.base_url))
    yield client
    client.transport.close()


def destination(google: GoogleSandbox) -> dm.Destination:
    account = dm.ProductAccount(account_type=dm.ProductAccount.AccountType.GOOGLE_ADS, account_id=google.CUSTOMER_ID)
    return dm.Destination(operating_account=account, product_destination_id=google.USER_LIST_ID)


def members_as_sent(members: pa.Table) -> list[dm.AudienceMember]:
    """The destination's AudienceMember JSON, loaded into the client's type (unknown fields fail)."""
    return [dm.AudienceMember.from_json(body) for body in data_manager_members(prepare(members, EMAIL_GOOGLE_CANONICAL))]


def test_data_manager_client_ingests_removes_and_removes_all_through_the_sandbox(google, ingestion):
    members = sample_members(0, 12)
    granted = dm.ConsentStatus.CONSENT_GRANTED
    ingestion.ingest_audience_members(request=dm.IngestAudienceMembersRequest(
        destinations=[destination(google)], audience_members=members_as_sent(members), encoding=dm.Encoding.HEX,
        consent=dm.Consent(ad_user_data=granted, ad_personalization=granted),
        terms_of_service=dm.TermsOfService(customer_match_terms_of_service_status=dm.TermsOfServiceStatus.ACCEPTED)))
    assert len(google.members()) == 12

    ingestion.remove_audience_members(request=dm.RemoveAudienceMembersRequest(
        destinations=[destination(google)], audience_members=members_as_sent(members.slice(0, 4)),
        encoding=dm.Encoding.HEX))
    assert len(google.members()) == 8

    answer = ingestion.remove_all_audience_members(request=dm.RemoveAllAudienceMembersRequest(
        destinations=[destination(google)]))
    assert answer.request_id and google.members() == []


def test_the_list_the_destination_reads_loads_into_the_clients_user_list(google, raw):
    client = dm.UserListServiceClient(credentials=credentials(google), transport="rest",
                                      client_options=ClientOptions(api_endpoint=google.base_url))
    name = f"accountTypes/GOOGLE_ADS/accounts/{google.CUSTOMER_ID}/userLists/{google.USER_LIST_ID}"
    assert list(client.get_user_list(name=name).ingested_user_list_info.upload_key_types) == [
        dm.IngestedUserListInfo.UploadKeyType.CONTACT_ID]
    client.transport.close()
    _parse(dm.UserList, requests.get(f"{google.base_url}/v1/{name}", headers=raw.headers, timeout=10).text)


def _parse(message_type, body: str | bytes) -> None:
    message_type.from_json(body if isinstance(body, str) else body.decode(), ignore_unknown_fields=False)


def test_every_ads_api_request_of_a_diff_and_a_mirror_parses_into_the_google_ads_protos(google, cm_config, pusher):
    pusher(GoogleCustomerMatch, cm_config(), adds=sample_members(0, 20))
    pusher(GoogleCustomerMatch, cm_config(), removes=sample_members(0, 5))
    pusher(GoogleCustomerMatch, cm_config(), adds=sample_members(30, 10), mode=PushMode.MIRROR)
    by_suffix = {":create": offline_user_data_job_service.CreateOfflineUserDataJobRequest,
                 ":addOperations": offline_user_data_job_service.AddOfflineUserDataJobOperationsRequest,
                 ":search": google_ads_service.SearchGoogleAdsRequest}
    checked = 0
    for request in google.requests:
        for suffix, message_type in by_suffix.items():
            if request.path.endswith(suffix):
                _parse(message_type, request.body)
                checked += 1
    assert checked >= 9


def test_job_and_list_answers_parse_into_the_google_ads_protos_with_real_enum_values(google, raw):
    rows = [raw.email(n) for n in range(3)]
    created = raw.job()
    assert raw.add(created, [{"create": {"userIdentifiers": [row]}} for row in rows]).ok
    removing = raw.job()
    assert raw.add(removing, [{"remove": {"userIdentifiers": [rows[0]]}}]).ok  # no creates: match rate UNKNOWN
    for job in (created, removing):
        assert raw.post(f"/v26/{job}:run", {}).ok
    version = "/v26/customers/" + google.CUSTOMER_ID
    answers = []
    for name in (created, removing):
        query = ("SELECT offline_user_data_job.status, offline_user_data_job.operation_metadata.match_rate_range "
                 f"FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '{name}'")
        for _ in range(google.polls_to_finish):
            answers.append(raw.post(f"{version}/googleAds:search", {"query": query}))
    answers.append(raw.post(f"{version}/googleAds:search", {"query": (
        "SELECT user_list.size_for_display FROM user_list "
        f"WHERE user_list.resource_name = 'customers/{google.CUSTOMER_ID}/userLists/{google.USER_LIST_ID}'")}))
    assert all(a.ok for a in answers)
    for answer in answers:
        _parse(google_ads_service.SearchGoogleAdsResponse, answer.text)
    ranges = [row["offlineUserDataJob"]["operationMetadata"]["matchRateRange"]
              for a in answers[:-1] for row in a.json().get("results", [])
              if "operationMetadata" in row.get("offlineUserDataJob", {})]
    assert "UNKNOWN" in ranges and any(r.startswith("MATCH_RANGE_") for r in ranges)
