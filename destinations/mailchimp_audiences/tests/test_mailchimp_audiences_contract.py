"""mailchimp_audiences under the audience destination contract suite, against its sandbox:
once pushing into a tag (found or created by name), once into an existing static segment."""

from __future__ import annotations

from typing import Any

import pytest
from threadline.activation import sha256_hex
from threadline.testing import AudienceContract
from threadline_mailchimp_audiences import MailchimpAudiences
from threadline_mailchimp_audiences.sandbox import NOT_ON_LIST, MailchimpAudiencesSandbox

# The suite's members (member.<i>@example.com) are contacts of the newsletter audience already:
# a push tags people Mailchimp holds, it never adds anyone.
CONTACTS = [f"member.{i}@example.com" for i in range(300)]


class TestMailchimpTagContract(AudienceContract):
    destination = MailchimpAudiences
    sandbox = MailchimpAudiencesSandbox
    sandbox_options = {"people": 30, "contacts": CONTACTS}
    # an audience that does not exist; a key for another data centre; an unreachable API
    bad_config = {"list_id": "0000000000", "api_key": MailchimpAudiencesSandbox.WRONG_DC_KEY,
                  "base_url": "http://127.0.0.1:9/3.0"}
    credential_field = "api_key"
    data_path = "/3.0/lists"

    def config(self, sandbox: Any, tmp_path: Any) -> dict[str, Any]:
        return {"base_url": f"{sandbox.base_url}/3.0", "api_key": sandbox.API_KEY, "list_id": sandbox.newsletter,
                "backoff_base": 0.01}

    def segment_id(self, sandbox: Any, config: Any) -> int | None:
        return sandbox.tag_id(config.list_id, "contract_audience")  # the tag is named after the audience

    def platform_members(self, sandbox: Any, config: Any) -> set[str]:
        segment = self.segment_id(sandbox, config)
        return {sha256_hex(e) for e in sandbox.segment_emails(config.list_id, segment)} if segment else set()

    def expire_credentials(self, sandbox: Any) -> None:
        pytest.skip("Mailchimp API keys (and its OAuth tokens) do not expire: there is nothing to renew mid-push")

    def arrange_rejection(self, sandbox: Any, member: dict[str, Any]) -> str:
        sandbox.archive(sandbox.newsletter, member["email"])  # no longer a contact: Mailchimp will not tag it
        return NOT_ON_LIST


class TestMailchimpStaticSegmentContract(TestMailchimpTagContract):
    bad_config = {**TestMailchimpTagContract.bad_config, "segment_id": 999999}

    def config(self, sandbox: Any, tmp_path: Any) -> dict[str, Any]:
        return {**super().config(sandbox, tmp_path), "target": "static_segment",
                "segment_id": MailchimpAudiencesSandbox.STATIC_SEGMENT_ID}

    def segment_id(self, sandbox: Any, config: Any) -> int | None:
        return config.segment_id
