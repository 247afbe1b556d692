"""klaviyo_lists under the audience destination contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from threadline.activation import sha256_hex
from threadline.testing import AudienceContract
from threadline_klaviyo_lists import KlaviyoLists
from threadline_klaviyo_lists.destination import NO_PROFILE
from threadline_klaviyo_lists.sandbox import KlaviyoListsSandbox

# The suite's members (member.<i>@example.com) have Klaviyo profiles already: a push puts
# people Klaviyo holds on a list, it never creates a profile.
CONTACTS = [f"member.{i}@example.com" for i in range(300)]


class TestKlaviyoListsContract(AudienceContract):
    destination = KlaviyoLists
    sandbox = KlaviyoListsSandbox
    sandbox_options = {"people": 30, "contacts": CONTACTS}
    # a list that does not exist; a revision Klaviyo does not know; an unreachable API
    bad_config = {"list_id": "NoSuchList", "revision": "2019-01-01", "base_url": "http://127.0.0.1:9/api"}
    credential_field = "api_key"
    data_path = "/api/"

    def config(self, sandbox: Any, tmp_path: Any) -> dict[str, Any]:
        return {"base_url": f"{sandbox.base_url}/api", "api_key": sandbox.API_KEY, "list_id": sandbox.AUDIENCE_LIST_ID,
                "backoff_base": 0.01}

    def platform_members(self, sandbox: Any, config: Any) -> set[str]:
        return {sha256_hex(e) for e in sandbox.list_emails(config.list_id)}

    def expire_credentials(self, sandbox: Any) -> None:
        pytest.skip("Klaviyo private API keys do not expire: there is nothing to renew mid-push")

    def arrange_rejection(self, sandbox: Any, member: dict[str, Any]) -> str:
        sandbox.delete_profile(member["email"])  # Klaviyo no longer has the person
        return NO_PROFILE
