"""LinkedIn DMP segments under threadline's audience destination contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any

from threadline.activation import sha256_hex
from threadline.testing import AudienceContract
from threadline_linkedin_audiences import LinkedInAudiences
from threadline_linkedin_audiences.sandbox import LinkedInAudiencesSandbox


def sandbox_config(box: LinkedInAudiencesSandbox, **changes: Any) -> dict[str, Any]:
    return {"base_url": f"{box.base_url}/rest", "token_url": f"{box.base_url}/oauth/v2/accessToken",
            "client_id": box.CLIENT_ID, "client_secret": box.CLIENT_SECRET, "refresh_token": box.REFRESH_TOKEN,
            "ad_account_id": box.AD_ACCOUNT_ID, "segment_id": box.SEGMENT_ID, "backoff_base": 0.01, **changes}


class TestLinkedInAudiencesContract(AudienceContract):
    destination = LinkedInAudiences
    sandbox = LinkedInAudiencesSandbox
    bad_config = {
        "segment_id": "999",  # no such segment
        "ad_account_id": LinkedInAudiencesSandbox.OTHER_AD_ACCOUNT_ID,  # the segment belongs to another account
        "linkedin_version": "202001",  # retired: 426 NONEXISTENT_VERSION
        "client_secret": "not-the-secret",  # the token endpoint answers invalid_client
    }
    credential_field = "refresh_token"
    data_path = "/rest/dmpSegments/"

    def config(self, sandbox: LinkedInAudiencesSandbox, tmp_path: Any) -> dict[str, Any]:
        return sandbox_config(sandbox)

    def platform_members(self, sandbox: LinkedInAudiencesSandbox, config: Any) -> set[str]:
        return sandbox.segment_hashes(config.segment_id)

    def expire_credentials(self, sandbox: LinkedInAudiencesSandbox) -> None:
        sandbox.expire_tokens()

    def arrange_rejection(self, sandbox: LinkedInAudiencesSandbox, member: dict[str, Any]) -> str:
        return sandbox.reject(sha256_hex(member["email"].strip().lower()))
