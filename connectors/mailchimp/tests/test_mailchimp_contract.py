"""Mailchimp under threadline's source contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any

from threadline.testing import SourceContract
from threadline_mailchimp import MailchimpSource
from threadline_mailchimp.sandbox import MailchimpSandbox


def expected_lists(sandbox: Any) -> list[dict[str, Any]]:
    return [
        {**lst, "from_email": lst["campaign_defaults"]["from_email"], **{k: lst["stats"][k] for k in
         ("member_count", "unsubscribe_count", "cleaned_count")}}
        for lst in sandbox.lists()
    ]


def expected_member(m: dict[str, Any]) -> dict[str, Any]:
    merge = m["merge_fields"]
    return {
        **m,
        "first_name": merge.get("FNAME") or None, "last_name": merge.get("LNAME") or None,
        "phone": merge.get("PHONE") or None, "country_code": m["location"]["country_code"] or None,
        "language": m["language"] or None, "timestamp_signup": m["timestamp_signup"] or None,
        "tags": [t["name"] for t in m["tags"]], "unsubscribe_reason": m.get("unsubscribe_reason"),
    }


def expected_activity(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox.activity()


def expected_reports(sandbox: Any) -> list[dict[str, Any]]:
    return [{**r, **r["bounces"], **{k: r["opens"][k] for k in ("opens_total", "unique_opens", "open_rate")},
             **{k: r["clicks"][k] for k in ("clicks_total", "unique_clicks", "unique_subscriber_clicks", "click_rate")},
             "last_open": r["opens"]["last_open"] or None, "last_click": r["clicks"]["last_click"] or None}
            for r in sandbox.reports()]


def expected_sent_to(sandbox: Any) -> list[dict[str, Any]]:
    sent = {r["id"]: r["send_time"] for r in sandbox.reports()}
    return [{**r, "last_open": r["last_open"] or None, "absplit_group": r["absplit_group"] or None,
             "send_time": sent[r["campaign_id"]]} for r in sandbox.sent_to()]


class TestMailchimpContract(SourceContract):
    source = MailchimpSource
    sandbox = MailchimpSandbox
    sandbox_options = {"people": 30}
    # an unreachable API; a key for another data centre; an audience that does not exist
    bad_config = {"base_url": "http://127.0.0.1:9", "api_key": MailchimpSandbox.WRONG_DC_KEY, "list_ids": ["0000000000"]}
    credential_field = "api_key"
    data_path = "/3.0/lists"

    def config(self, sandbox):
        return {"base_url": f"{sandbox.base_url}/3.0", "api_key": sandbox.API_KEY, "page_size": 7, "backoff_base": 0.01}

    def expected_records(self, sandbox):
        return {
            "lists": expected_lists(sandbox),
            "members": [expected_member(m) for m in sandbox.members()],
            "member_activity": expected_activity(sandbox),
            "campaign_reports": expected_reports(sandbox),
            "sent_to": expected_sent_to(sandbox),
            "email_activity": sandbox.email_activity(),
            "unsubscribes": sandbox.unsubscribes(),
        }

    def change(self, sandbox):
        changed = sandbox.unsubscribe(2) + sandbox.add_members(sandbox.list_ids[1], 2) + sandbox.update_members(sandbox.list_ids[2], 1)
        return {"members": [expected_member(m) for m in changed]}
