"""LinkedIn's official Python client (linkedin-api-client 0.3.0, from linkedin-developers, unmodified)
against the sandbox: it refreshes a token, finds and reads DMP segments, creates one and adds and
removes members with the same BATCH_CREATE the destination sends, and reads every answer into its
response objects.

The client sends to https://api.linkedin.com/rest and https://www.linkedin.com/oauth/v2
(hard-coded); its sessions get a transport adapter that carries those requests to the sandbox
(threadline.testing.vendor), as a proxy would. The client, its URLs and its headers are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadline.testing.audience import sample_members
from threadline.testing.vendor import route_to_sandbox
from threadline_linkedin_audiences import LinkedInAudiences, LinkedInAudiencesConfig
from threadline_linkedin_audiences.sandbox import LinkedInAudiencesSandbox

pytest.importorskip("linkedin_api", reason="needs LinkedIn's client: pip install linkedin-api-client")
from linkedin_api.clients.auth.client import AuthClient  # noqa: E402
from linkedin_api.clients.restli.client import RestliClient  # noqa: E402

API_ROOT, OAUTH_ROOT = "https://api.linkedin.com", "https://www.linkedin.com"
VERSION = LinkedInAudiencesConfig.model_fields["linkedin_version"].default  # the destination's own version


@pytest.fixture
def linkedin() -> Iterator[LinkedInAudiencesSandbox]:
    with LinkedInAudiencesSandbox(ready_after=0.0) as box:
        yield box


def clients(box: LinkedInAudiencesSandbox) -> tuple[RestliClient, str]:
    """A Rest.li client on the sandbox and an access token from the client's own refresh flow."""
    auth = AuthClient(client_id=box.CLIENT_ID, client_secret=box.CLIENT_SECRET, redirect_url="https://localhost/cb")
    route_to_sandbox(auth.session, OAUTH_ROOT, box.base_url)
    token = auth.exchange_refresh_token_for_access_token(refresh_token=box.REFRESH_TOKEN)
    assert token.status_code == 200 and token.expires_in > 0
    restli = RestliClient()
    route_to_sandbox(restli.session, API_ROOT, box.base_url)
    return restli, token.access_token


def users_of(prepared_emails: list[str], action: str) -> list[dict]:
    return [{"action": action, "userIds": [{"idType": "SHA256_EMAIL", "idValue": h}]} for h in prepared_emails]


def test_the_client_finds_the_ad_accounts_segments_and_reads_one(linkedin):
    restli, token = clients(linkedin)
    account = f"urn:li:sponsoredAccount:{linkedin.AD_ACCOUNT_ID}"
    found = restli.finder(resource_path="/dmpSegments", finder_name="account", query_params={"account": account},
                          access_token=token, version_string=VERSION)
    assert found.status_code == 200, found.response.text
    assert {e["name"] for e in found.elements} == set(linkedin.segment_names().values())
    assert found.paging.total == len(found.elements)
    one = restli.get(resource_path="/dmpSegments/{id}", path_keys={"id": linkedin.SEGMENT_ID}, access_token=token,
                     version_string=VERSION)
    assert one.status_code == 200 and one.entity["name"] == linkedin.SEGMENT_NAME and one.entity["type"] == "USER"


def test_the_client_creates_a_segment_and_gets_its_id_from_the_restli_header(linkedin):
    restli, token = clients(linkedin)
    created = restli.create(resource_path="/dmpSegments", access_token=token, version_string=VERSION, entity={
        "name": "lapsed buyers", "sourcePlatform": "THREADLINE", "type": "USER", "accessPolicy": "PRIVATE",
        "account": f"urn:li:sponsoredAccount:{linkedin.AD_ACCOUNT_ID}", "destinations": [{"destination": "LINKEDIN"}]})
    assert created.status_code == 201
    assert linkedin.segment_names()[str(created.entity_id)] == "lapsed buyers"


def test_the_client_adds_and_removes_members_with_the_destinations_elements(linkedin):
    restli, token = clients(linkedin)
    config = LinkedInAudiencesConfig(client_id="c", client_secret="s", refresh_token="r", ad_account_id="1",
                                     segment_id=linkedin.SEGMENT_ID)
    hashes = LinkedInAudiences().prepare(config, sample_members(0, 4)).column("email_sha256").to_pylist()
    added = restli.batch_create(resource_path="/dmpSegments/{id}/users", path_keys={"id": linkedin.SEGMENT_ID},
                                entities=users_of(hashes, "ADD"), access_token=token, version_string=VERSION)
    assert added.status_code == 200 and [e.status for e in added.elements] == [201] * 4
    assert linkedin.segment_hashes(linkedin.SEGMENT_ID) == set(hashes)
    removed = restli.batch_create(resource_path="/dmpSegments/{id}/users", path_keys={"id": linkedin.SEGMENT_ID},
                                  entities=users_of(hashes[:1], "REMOVE"), access_token=token, version_string=VERSION)
    assert [e.status for e in removed.elements] == [201]
    assert linkedin.segment_hashes(linkedin.SEGMENT_ID) == set(hashes[1:])


def test_a_refused_element_is_the_clients_per_element_error(linkedin):
    restli, token = clients(linkedin)
    answer = restli.batch_create(resource_path="/dmpSegments/{id}/users", path_keys={"id": linkedin.SEGMENT_ID},
                                 entities=users_of(["not-a-hash", "a" * 64], "ADD"), access_token=token,
                                 version_string=VERSION)
    assert [e.status for e in answer.elements] == [400, 201]
    assert "SHA256_EMAIL" in answer.elements[0].error["message"]


def test_a_retired_version_and_a_wrong_token_are_linkedins_errors_to_the_client(linkedin):
    restli, token = clients(linkedin)
    retired = restli.get(resource_path="/dmpSegments/{id}", path_keys={"id": linkedin.SEGMENT_ID},
                         access_token=token, version_string="202301")
    assert retired.status_code == 426
    wrong = restli.get(resource_path="/dmpSegments/{id}", path_keys={"id": linkedin.SEGMENT_ID},
                       access_token="not-a-token", version_string=VERSION)
    assert wrong.status_code == 401 and wrong.response.json()["serviceErrorCode"] == 65600
