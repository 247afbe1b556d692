"""meta_audiences under threadline's audience destination contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any

from threadline.activation import sha256_hex
from threadline.testing import AudienceContract
from threadline_meta_audiences import MetaAudiences
from threadline_meta_audiences.sandbox import MetaSandbox


def sandbox_config(sandbox: MetaSandbox, **overrides: Any) -> dict[str, Any]:
    """The config a job file would hold for the sandbox, with renewal and appsecret_proof on."""
    return {
        "base_url": sandbox.base_url, "api_version": sandbox.API_VERSION, "audience_id": sandbox.AUDIENCE_ID,
        "access_token": sandbox.ACCESS_TOKEN, "app_id": sandbox.APP_ID, "app_secret": sandbox.APP_SECRET,
        "exchange_token": sandbox.EXCHANGE_TOKEN, "backoff_base": 0.01, "max_wait": 20, **overrides,
    }


class TestMetaAudiencesContract(AudienceContract):
    destination = MetaAudiences
    sandbox = MetaSandbox
    sandbox_options = {"require_appsecret_proof": True}
    # an audience this business does not have; a wrong app secret (appsecret_proof refused)
    bad_config = {"audience_id": "23850000000000404", "app_secret": "not-the-app-secret"}
    credential_field = "access_token"
    data_path = f"/{MetaSandbox.API_VERSION}/{MetaSandbox.AUDIENCE_ID}/users"

    def config(self, sandbox, tmp_path):
        return sandbox_config(sandbox)

    def platform_members(self, sandbox, config):
        return sandbox.audience_hashes(config.audience_id)

    def expire_credentials(self, sandbox):
        sandbox.expire_access_tokens()

    def arrange_rejection(self, sandbox, member):
        return sandbox.refuse("EMAIL", sha256_hex(member["email"].strip().lower()))
