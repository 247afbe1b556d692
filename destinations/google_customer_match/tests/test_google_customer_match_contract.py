"""Both Google destinations under threadline's audience destination contract suite, against the sandbox."""

from __future__ import annotations

from threadline.activation import sha256_hex
from threadline.testing import AudienceContract
from threadline_google_customer_match import GoogleCustomerMatch, GoogleDataManager
from threadline_google_customer_match.sandbox import GoogleSandbox

FAST = {"backoff_base": 0.01, "max_rate_limit_wait": 20}


class GoogleContract(AudienceContract):
    sandbox = GoogleSandbox
    credential_field = "refresh_token"

    def config(self, sandbox, tmp_path):
        return {**sandbox.job_config(self.destination.name), **FAST}

    def platform_members(self, sandbox, config):
        return sandbox.email_hashes(config.user_list_id)

    def expire_credentials(self, sandbox):
        sandbox.expire_tokens()

    def arrange_rejection(self, sandbox, member):
        sandbox.reject_identifier(sha256_hex(member["email"].strip().lower()), "INVALID_SHA256_FORMAT")
        return "INVALID_SHA256_FORMAT"


class TestGoogleDataManagerContract(GoogleContract):
    destination = GoogleDataManager
    # a list the customer does not have; a customer the OAuth user cannot reach; the terms not accepted
    bad_config = {"user_list_id": "404404", "customer_id": "1111111111", "terms_of_service_accepted": False}
    data_path = "/v1/audienceMembers"


class TestGoogleCustomerMatchContract(GoogleContract):
    destination = GoogleCustomerMatch
    # a list the customer does not have; a CRM-id list; another customer; a wrong developer token;
    # a manager that is not ours; consent denied
    bad_config = {
        "user_list_id": "404404", "customer_id": "1111111111", "developer_token": "not-the-developer-token",
        "login_customer_id": "2222222222", "consent.ad_user_data": "DENIED",
    }
    data_path = f"/v26/customers/{GoogleSandbox.CUSTOMER_ID}/offlineUserDataJobs"

    def config(self, sandbox, tmp_path):
        return {**super().config(sandbox, tmp_path), "identifiers_per_request": 50}
