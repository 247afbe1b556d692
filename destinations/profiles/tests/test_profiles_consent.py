"""Consent from the sources: one statement per record, the latest per (profile, channel,
purpose) wins, a tie denies, and each channel has a default for people without a record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError
from threadline.contracts import ConfigError
from threadline_profiles import ProfileStore, api
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.config.audiences import DEFAULT_CONSENT, ConsentSettings
from threadline_profiles.land.mapping import check_mapping
from threadline_profiles.testing import Lander

CRM = {"identifiers": {"email": "email"}, "updated_at": "modified",
       "consent": [{"channel": "email", "column": "email_opt_in"},
                   {"channel": "sms", "column": "sms_status", "granted": ["Subscribed"], "denied": ["Unsubscribed"]}]}
ESP = {"identifiers": {"email": "email"},
       "consent": {"channel": "email", "column": "status", "timestamp": "changed_at"}}
UNSUBSCRIBES = {"identifiers": {"email": "email"},
                "consent": {"channel": "email", "every_record": "denied", "timestamp": "at"}}
NEWSLETTER = {"identifiers": {"email": "email"},
              "consent": {"channel": "email", "purpose": "newsletter", "column": "newsletter"}}


def build(tmp_path, streams: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]], **settings: Any) -> ProfileStore:
    config = {"path": str(tmp_path / "p.duckdb"), "resolve_on_finish": False,
              "mappings": {key: mapping for key, (mapping, _) in streams.items()}, **settings}
    lander = Lander(config)
    for key, (_, rows) in streams.items():
        source, stream = key.split(".")
        lander.land(source, stream, rows)
    store = lander.store()
    api.build(store, report=False)
    return store


def consent_of(store: ProfileStore, email: str, channel: str = "email", purpose: str = "marketing") -> dict[str, Any] | None:
    rows = store.engine.rows(
        'SELECT c.granted, c."at", c.source, c.stream, c.record_key FROM tl_consent AS c JOIN tl_golden AS g '
        f"ON g.profile_id = c.profile_id AND g.field = 'email' WHERE g.value = '{email}' "
        f"AND c.channel = '{channel}' AND c.purpose = '{purpose}'")
    return rows[0] if rows else None


def crm(pk: str, email: str, opt_in: Any, modified: str, sms: str | None = None) -> dict[str, Any]:
    return {"id": pk, "email": email, "email_opt_in": opt_in, "sms_status": sms, "modified": modified}


def esp(pk: str, email: str, status: str, changed_at: str | None) -> dict[str, Any]:
    return {"id": pk, "email": email, "status": status, "changed_at": changed_at}


def test_the_latest_statement_of_any_source_wins(tmp_path):
    store = build(tmp_path, {
        "crm.contacts": (CRM, [crm("1", "ana@x.test", True, "2024-01-01"), crm("2", "bob@x.test", True, "2024-05-01")]),
        "esp.members": (ESP, [esp("a", "ana@x.test", "unsubscribed", "2024-03-01"),
                              esp("b", "bob@x.test", "unsubscribed", "2024-03-01")]),
    })
    with store:
        ana, bob = consent_of(store, "ana@x.test"), consent_of(store, "bob@x.test")
        assert (ana["granted"], ana["source"], ana["stream"], ana["record_key"]) == (False, "esp", "members", "esp.members:a")
        assert ana["at"] == datetime(2024, 3, 1)
        assert (bob["granted"], bob["record_key"]) == (True, "crm.contacts:2")  # the CRM opt-in came later


def test_a_grant_and_a_denial_at_the_same_time_deny(tmp_path):
    store = build(tmp_path, {
        "crm.contacts": (CRM, [crm("1", "ana@x.test", "yes", "2024-03-01T12:00:00")]),
        "esp.members": (ESP, [esp("a", "ana@x.test", "unsubscribed", "2024-03-01T12:00:00Z")]),
    })
    with store:
        assert consent_of(store, "ana@x.test")["granted"] is False


def test_values_in_neither_list_say_nothing(tmp_path):
    store = build(tmp_path, {
        "crm.contacts": (CRM, [crm("1", "ana@x.test", "yes", "2024-01-01")]),
        "esp.members": (ESP, [esp("a", "ana@x.test", "pending", "2024-06-01"), esp("b", "bob@x.test", "cleaned", "2024-06-01")]),
    })
    with store:
        assert consent_of(store, "ana@x.test")["granted"] is True
        assert consent_of(store, "bob@x.test") is None


def test_values_are_compared_as_words_whatever_their_case_and_type(tmp_path):
    store = build(tmp_path, {"crm.contacts": (CRM, [
        crm("1", "ana@x.test", "Opted-In", "2024-01-01", sms="SUBSCRIBED"),
        crm("2", "bob@x.test", "NO", "2024-01-01", sms="unsubscribed"),
    ])})
    with store:
        assert consent_of(store, "ana@x.test")["granted"] is True
        assert consent_of(store, "ana@x.test", "sms")["granted"] is True
        assert consent_of(store, "bob@x.test")["granted"] is False
        assert consent_of(store, "bob@x.test", "sms")["granted"] is False


def test_boolean_columns_grant_and_deny(tmp_path):
    store = build(tmp_path, {"crm.contacts": (CRM, [crm("1", "ana@x.test", True, "2024-01-01"),
                                                    crm("2", "bob@x.test", False, "2024-01-01")])})
    with store:
        assert consent_of(store, "ana@x.test")["granted"] is True
        assert consent_of(store, "bob@x.test")["granted"] is False


def test_every_record_of_an_unsubscribes_stream_denies(tmp_path):
    store = build(tmp_path, {
        "crm.contacts": (CRM, [crm("1", "ana@x.test", "yes", "2024-01-01"), crm("2", "bob@x.test", "yes", "2024-09-01")]),
        "esp.unsubscribes": (UNSUBSCRIBES, [{"id": "u1", "email": "ana@x.test", "at": "2024-02-01"},
                                            {"id": "u2", "email": "bob@x.test", "at": "2024-02-01"}]),
    })
    with store:
        assert consent_of(store, "ana@x.test")["record_key"] == "esp.unsubscribes:u1"
        assert consent_of(store, "ana@x.test")["granted"] is False
        assert consent_of(store, "bob@x.test")["granted"] is True  # opted in again after unsubscribing


def test_the_timestamp_defaults_to_updated_at_then_to_when_the_record_landed(tmp_path):
    store = build(tmp_path, {
        "crm.contacts": (CRM, [crm("1", "ana@x.test", "yes", "2024-01-01")]),  # at = updated_at (modified)
        "esp.members": (ESP, [esp("a", "ana@x.test", "unsubscribed", None)]),  # no time: when it landed (now)
    })
    with store:
        ana = consent_of(store, "ana@x.test")
        assert ana["granted"] is False and ana["at"] > datetime(2024, 1, 1)


def test_purposes_are_kept_apart(tmp_path):
    store = build(tmp_path, {
        "crm.contacts": (CRM, [crm("1", "ana@x.test", "no", "2024-01-01")]),
        "web.signups": (NEWSLETTER, [{"id": "s1", "email": "ana@x.test", "newsletter": "yes"}]),
    })
    with store:
        assert consent_of(store, "ana@x.test")["granted"] is False
        assert consent_of(store, "ana@x.test", purpose="newsletter")["granted"] is True


def test_consent_is_never_cut_at_as_of(tmp_path):
    store = build(tmp_path, {
        "crm.contacts": (CRM, [crm("1", "ana@x.test", "yes", "2024-01-01")]),
        "esp.members": (ESP, [esp("a", "ana@x.test", "unsubscribed", "2024-09-01")]),
    }, traits={"as_of": "2024-06-30"})
    with store:
        assert consent_of(store, "ana@x.test")["granted"] is False


def test_without_a_record_each_channel_has_its_default(tmp_path):
    crm_mapping = {**CRM, "address": {"line1": "street", "postal_code": "zip"}, "identifiers": {"email": "email", "phone": "phone"},
                   "cleaning": {"phone_region": "US"}, "consent": []}
    rows = [{"id": "1", "email": "ana@x.test", "phone": "415 555 2671", "street": "1 Main St", "zip": "02139", "modified": None}]
    store = build(tmp_path, {"crm.contacts": (crm_mapping, rows)})
    with store:
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_consent") == 0
        assert store.engine.scalar("SELECT reachable_channels FROM tl_traits") == ["direct_mail"]
    assert DEFAULT_CONSENT == {"email": "denied", "sms": "denied", "advertising": "denied", "direct_mail": "granted"}


def test_defaults_are_configurable_per_channel(tmp_path):
    crm_mapping = {"identifiers": {"email": "email", "phone": "phone"}, "cleaning": {"phone_region": "US"}}
    rows = [{"id": "1", "email": "ana@x.test", "phone": "415 555 2671"}]
    store = build(tmp_path, {"crm.contacts": (crm_mapping, rows)},
                  consent={"defaults": {"email": "granted", "advertising": "granted"}})
    with store:
        assert store.engine.scalar("SELECT reachable_channels FROM tl_traits") == ["advertising", "email"]
        settings = store.config.consent
        assert settings.granted_by_default("email") and not settings.granted_by_default("sms")
        assert settings.granted_by_default("direct_mail")  # a channel left out keeps the built-in default


def test_a_recorded_opt_out_beats_a_granting_default(tmp_path):
    crm_mapping = {"identifiers": {"email": "email"}, "address": {"line1": "street", "postal_code": "zip"},
                   "consent": {"channel": "direct_mail", "column": "mail_ok"}}
    rows = [{"id": "1", "email": "ana@x.test", "street": "1 Main St", "zip": "02139", "mail_ok": "no"},
            {"id": "2", "email": "bob@x.test", "street": "2 Elm St", "zip": "02139", "mail_ok": None}]
    store = build(tmp_path, {"crm.contacts": (crm_mapping, rows)})
    with store:
        by_email = {r["email"]: r["reachable_channels"] for r in store.engine.rows(
            "SELECT g.value AS email, t.reachable_channels FROM tl_traits AS t JOIN tl_golden AS g "
            "ON g.profile_id = t.profile_id AND g.field = 'email'")}
        assert by_email == {"ana@x.test": [], "bob@x.test": ["direct_mail"]}


@pytest.mark.parametrize("block, message", [
    ({"channel": "email"}, "either `column`"),
    ({"channel": "email", "column": "s", "every_record": "denied"}, "either `column`"),
    ({"channel": "email", "column": "s", "granted": ["yes"], "denied": ["Yes"]}, "'yes' is listed as both"),
    ({"channel": "fax", "column": "s"}, "channel"),
])
def test_a_consent_block_that_cannot_be_read_is_a_config_error(block, message):
    with pytest.raises(ValidationError, match=message):
        ProfilesConfig.model_validate({"mappings": {"crm.contacts": {"identifiers": {"email": "email"}, "consent": block}}})


def test_consent_columns_are_checked_against_the_stream():
    config = ProfilesConfig.model_validate({"mappings": {"crm.contacts": CRM}})
    with pytest.raises(ConfigError, match="'sms_status'") as exc:
        check_mapping("crm.contacts", config.mappings["crm.contacts"], ["id", "email", "email_opt_in", "modified"])
    assert exc.value.field == "mappings.crm.contacts.consent.1.column"
    one = ProfilesConfig.model_validate({"mappings": {"esp.members": ESP}})
    with pytest.raises(ConfigError) as exc:
        check_mapping("esp.members", one.mappings["esp.members"], ["id", "email", "status"])
    assert exc.value.field == "mappings.esp.members.consent.timestamp"


def test_unknown_default_channels_are_refused():
    with pytest.raises(ValidationError):
        ConsentSettings.model_validate({"defaults": {"pigeon": "granted"}})
