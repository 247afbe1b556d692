"""TikTok audiences under threadline's audience destination contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from threadline.testing import AudienceContract
from threadline_tiktok_audiences import TikTokAudiences
from threadline_tiktok_audiences.destination import MAPPING_PATH
from threadline_tiktok_audiences.sandbox import TikTokAudiencesSandbox


class TestTikTokAudiencesContract(AudienceContract):
    destination = TikTokAudiences
    sandbox = TikTokAudiencesSandbox
    # an audience that does not exist; an advertiser the token may not operate (TikTok code 40001)
    bad_config = {"audience_id": "999", "advertiser_id": TikTokAudiencesSandbox.OTHER_ADVERTISER_ID}
    credential_field = "access_token"
    data_path = MAPPING_PATH

    def config(self, sandbox: TikTokAudiencesSandbox, tmp_path: Any) -> dict[str, Any]:
        return {"base_url": sandbox.base_url, "access_token": sandbox.TOKEN, "advertiser_id": sandbox.ADVERTISER_ID,
                "audience_id": sandbox.AUDIENCE_ID, "backoff_base": 0.01}

    def platform_members(self, sandbox: TikTokAudiencesSandbox, config: Any) -> set[str]:
        return sandbox.audience_hashes(config.audience_id)

    def expire_credentials(self, sandbox: TikTokAudiencesSandbox) -> None:
        pytest.skip("TikTok's advertiser access tokens are long-term: they do not expire and there is no refresh "
                    "flow; a revoked token (code 40105) is a ConfigError, tested in test_tiktok_audiences_vendor")

    def arrange_rejection(self, sandbox: TikTokAudiencesSandbox, member: dict[str, Any]) -> str:
        pytest.skip("TikTok's mapping endpoint answers per request, not per row: a bad row makes TikTok refuse the "
                    "whole call (40002, a FatalError; tested in test_tiktok_audiences_vendor). Rows this "
                    "destination cannot send (no email, no phone) are rejected before sending, also tested there")
