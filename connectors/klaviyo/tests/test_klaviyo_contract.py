"""Klaviyo under threadline's source contract suite, against its sandbox."""

from __future__ import annotations

from typing import Any

from threadline.testing import SourceContract
from threadline_klaviyo import KlaviyoSource
from threadline_klaviyo.sandbox import KlaviyoSandbox


def expected_profile(p: dict[str, Any]) -> dict[str, Any]:
    a = p["attributes"]
    email, sms = a["subscriptions"]["email"]["marketing"], a["subscriptions"]["sms"]["marketing"]
    return {
        "id": p["id"], **{k: a[k] for k in ("email", "phone_number", "external_id", "first_name", "last_name", "locale",
                                             "created", "updated", "last_event_date", "properties")},
        "organization": a["organization"] or None, **{k: a["location"][k] for k in ("city", "country", "zip", "timezone")},
        "email_consent": email["consent"], "email_consent_timestamp": email["consent_timestamp"],
        "email_can_receive_marketing": email["can_receive_email_marketing"],
        "email_suppression_reason": email["suppression"][0]["reason"] if email["suppression"] else None,
        "sms_consent": sms["consent"], "sms_consent_timestamp": sms["consent_timestamp"],
    }


def expected_event(e: dict[str, Any]) -> dict[str, Any]:
    a, r = e["attributes"], e["relationships"]
    return {
        "id": e["id"], "profile_id": r["profile"]["data"]["id"], "metric_id": r["metric"]["data"]["id"],
        "metric_name": KlaviyoSandbox.metric_name(r["metric"]["data"]["id"]), "datetime": a["datetime"],
        "timestamp": a["timestamp"], "uuid": a["uuid"], "value": a["event_properties"].get("$value"),
        "campaign_name": a["event_properties"].get("Campaign Name"), "event_properties": a["event_properties"],
    }


def expected_membership(m: dict[str, Any]) -> dict[str, Any]:
    a = m["profile"]["attributes"]
    return {"list_id": m["list_id"], "profile_id": m["profile"]["id"], "email": a["email"],
            "phone_number": a["phone_number"], "external_id": a["external_id"], "joined_group_at": m["joined_group_at"]}


class TestKlaviyoContract(SourceContract):
    source = KlaviyoSource
    sandbox = KlaviyoSandbox
    sandbox_options = {"people": 30, "events_page_size": 9}
    # an unreachable API; a revision Klaviyo does not know; a wrong key; a list that does not exist
    bad_config = {"base_url": "http://127.0.0.1:9", "revision": "2019-01-01", "api_key": "pk_wrong", "list_ids": ["NoSuch"]}
    credential_field = "api_key"
    data_path = "/api/"

    def config(self, sandbox):
        return {"base_url": f"{sandbox.base_url}/api", "api_key": sandbox.API_KEY, "page_size": 7, "backoff_base": 0.01}

    def expected_records(self, sandbox):
        return {
            "profiles": [expected_profile(p) for p in sandbox.profiles()],
            "lists": [{"id": x["id"], **x["attributes"]} for x in sandbox.lists()],
            "list_memberships": [expected_membership(m) for m in sandbox.memberships()],
            "events": [expected_event(e) for e in sandbox.events()],
        }

    def change(self, sandbox):
        unsubscribed = sandbox.unsubscribe(2)
        added = sandbox.add_profiles(2, list_id=sandbox.list_ids[1])
        events = sandbox.add_events(3)
        joined = [m for m in sandbox.memberships() if m["profile"]["id"] in {p["id"] for p in added}]
        return {
            "profiles": [expected_profile(p) for p in unsubscribed + added],
            "list_memberships": [expected_membership(m) for m in joined],
            "events": [expected_event(e) for e in events],
        }
