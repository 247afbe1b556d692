"""`threadline forget`: a person erased from the store stays erased, and nobody else is."""

from __future__ import annotations

from threadline_profiles import api
from threadline_profiles.activation.forget import audit_log
from threadline_profiles.api import forget
from threadline_profiles.testing import Lander

MAPPING = {
    "crm.contacts": {"identifiers": {"email": "email", "phone": "phone"}, "traits": {"first_name": "first_name"},
                     "cleaning": {"phone_region": "US"}},
    "esp.members": {"identifiers": {"email": "email"}},
}
CRM = [
    {"id": 1, "email": "Kelly.Neal@example.com", "phone": "(512) 353-5601", "first_name": "Kelly"},
    {"id": 2, "email": "sam.lee@example.com", "phone": "(512) 353-5602", "first_name": "Sam"},
    {"id": 3, "email": "home@example.com", "phone": "(512) 353-5603", "first_name": "Ann"},
]
ESP = [
    {"id": 10, "email": "kelly.neal@example.com"},
    {"id": 11, "email": "sam.lee@example.com"},
]


def landed(store_config: dict) -> Lander:
    lander = Lander({**store_config, "mappings": MAPPING})
    lander.land("crm", "contacts", CRM)
    lander.land("esp", "members", ESP)
    lander.build()
    return lander


def raw_rows(store, table: str) -> list[dict]:
    return store.engine.rows(f"SELECT * FROM {table} ORDER BY id")


def test_forget_deletes_every_record_of_the_person_and_keeps_others(store_config):
    lander = landed(store_config)
    with lander.store() as store:
        assert api.get(store, email="kelly.neal@example.com") is not None
        result = forget(store, email="KELLY.NEAL@example.com ")
        assert (result.profiles, result.records) == (1, 2)
        assert api.get(store, email="kelly.neal@example.com") is None
        assert api.get(store, email="sam.lee@example.com") is not None
        assert [r["id"] for r in raw_rows(store, "raw_crm__contacts")] == [2, 3]
        assert [r["id"] for r in raw_rows(store, "raw_esp__members")] == [11]


def test_a_later_sync_cannot_bring_a_forgotten_person_back(store_config):
    lander = landed(store_config)
    with lander.store() as store:
        forget(store, email="kelly.neal@example.com")
    lander.land("crm", "contacts", CRM, run_id="run-2")  # the CRM still has Kelly and sends her again
    lander.land("esp", "members", [{"id": 12, "email": "kelly.neal@example.com"}], run_id="run-2")
    lander.build()
    with lander.store() as store:
        assert api.get(store, email="kelly.neal@example.com") is None
        assert api.get(store, phone="+15123535601") is None  # her phone is tombstoned too
        assert [r["id"] for r in raw_rows(store, "raw_crm__contacts")] == [2, 3]  # and not kept raw either
        assert [r["id"] for r in raw_rows(store, "raw_esp__members")] == [11]


def test_tombstones_and_audit_hold_no_identifier(store_config):
    lander = landed(store_config)
    with lander.store() as store:
        result = forget(store, email="kelly.neal@example.com")
        stored = " ".join(str(v) for r in store.engine.rows("SELECT * FROM tl_tombstones") for v in r.values())
        stored += " ".join(str(v) for r in audit_log(store) for v in r.values())
        assert result.tombstones == 2  # her email and her phone
        assert "kelly" not in stored.lower() and "3535601" not in stored
        assert [a["action"] for a in audit_log(store)] == ["forget"]


def test_an_identifier_shared_with_someone_not_forgotten_is_not_tombstoned(store_config):
    shared = [*CRM, {"id": 4, "email": "home@example.com", "phone": "(512) 353-5699", "first_name": "Bob"}]
    lander = Lander({**store_config, "mappings": MAPPING,
                     "resolution": {"never_merge": [["crm.contacts:3", "crm.contacts:4"]]}})  # Ann and Bob share an email
    lander.land("crm", "contacts", shared)
    lander.build()
    with lander.store() as store:
        holders = api.find(store, email="home@example.com")
        assert len(holders) == 2, "the test needs the household email held by two profiles"
        ann = [p for p in holders if any(m.record_key.endswith(":3") for m in p.members)][0]
        result = forget(store, profile_id=ann.profile_id)
        assert result.shared_identifiers_kept == 1
        left = api.find(store, email="home@example.com")
        assert len(left) == 1 and [m.record_key for m in left[0].members] == ["crm.contacts:4"]


def test_forgetting_an_email_nobody_holds_yet_still_blocks_it_when_asked(store_config):
    lander = landed(store_config)
    with lander.store() as store:
        result = forget(store, email="new.person@example.com", even_if_unknown=True)
        assert (result.profiles, result.tombstones) == (0, 1)
    lander.land("esp", "members", [{"id": 20, "email": "New.Person@example.com"}], run_id="run-2")
    lander.build()
    with lander.store() as store:
        assert api.get(store, email="new.person@example.com") is None
