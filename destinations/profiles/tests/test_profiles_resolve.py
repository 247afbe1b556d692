"""Stage 4, resolve: which records become one profile, and which guards keep them apart."""

from __future__ import annotations

from threadline_profiles.testing import profiles_of, together

EMAIL = {"crm.contacts": {"identifiers": {"email": "email"}}}
CRM = {"identifiers": {"email": "email", "phone": "phone", "cid": "customer_id:crm"}, "cleaning": {"phone_region": "US"}}


def test_records_sharing_an_email_become_one_profile(resolve_with):
    store = resolve_with({"crm.contacts": [{"id": 1, "email": "ana@mail.com"}, {"id": 2, "email": "ana@mail.com"},
                                           {"id": 3, "email": "bo@mail.com"}]}, EMAIL)
    assert profiles_of(store) == {frozenset({"crm.contacts:1", "crm.contacts:2"}), frozenset({"crm.contacts:3"})}


def test_emails_match_regardless_of_case_and_surrounding_spaces(resolve_with):
    store = resolve_with({"crm.contacts": [{"id": 1, "email": " Ana@Mail.COM"}, {"id": 2, "email": "ana@mail.com "}]}, EMAIL)
    assert together(store, "crm.contacts:1", "crm.contacts:2")


def test_gmail_dots_and_plus_tags_link_but_the_given_address_is_kept(resolve_with):
    store = resolve_with({"crm.contacts": [{"id": 1, "email": "ana.lee+shop@gmail.com"}, {"id": 2, "email": "analee@googlemail.com"}]}, EMAIL)
    assert together(store, "crm.contacts:1", "crm.contacts:2")
    kept = store.engine.rows("SELECT value FROM tl_record_values WHERE record_key = 'crm.contacts:1' AND field = 'email'")
    assert kept == [{"value": "ana.lee+shop@gmail.com"}]
    rules = {r["rule"] for r in store.engine.rows("SELECT rule FROM tl_links")}
    assert rules == {"email_canonical"}


def test_records_linked_through_different_identifiers_form_one_profile(resolve_with):
    rows = [{"id": 1, "email": "a@mail.com", "phone": None, "cid": None},
            {"id": 2, "email": "a@mail.com", "phone": "415-555-2671", "cid": None},
            {"id": 3, "email": None, "phone": "+1 415 555 2671", "cid": "c9"},
            {"id": 4, "email": "z@mail.com", "phone": None, "cid": "c9"}]
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM})
    assert profiles_of(store) == {frozenset(f"crm.contacts:{i}" for i in range(1, 5))}


def test_phones_written_nationally_use_the_sources_default_region(resolve_with):
    mappings = {"uk.members": {"identifiers": {"tel": "phone"}, "cleaning": {"phone_region": "GB"}},
                "us.members": {"identifiers": {"tel": "phone"}, "cleaning": {"phone_region": "US"}}}
    store = resolve_with({"uk.members": [{"id": 1, "tel": "020 7946 0958"}], "us.members": [{"id": 1, "tel": "+44 20 7946 0958"}]}, mappings)
    assert together(store, "uk.members:1", "us.members:1")


def test_an_invalid_email_is_kept_raw_flagged_and_never_links(resolve_with):
    store = resolve_with({"crm.contacts": [{"id": 1, "email": "ana at mail"}, {"id": 2, "email": "ana at mail"}]}, EMAIL)
    assert not together(store, "crm.contacts:1", "crm.contacts:2")
    row = store.engine.rows("SELECT raw, status, reason FROM tl_record_values WHERE record_key = 'crm.contacts:1'")[0]
    assert (row["raw"], row["status"], row["reason"]) == ("ana at mail", "invalid", "no @")
    assert store.engine.scalar("SELECT n FROM tl_dq WHERE field = 'email' AND status = 'invalid'") == 2


def test_a_placeholder_shared_by_thousands_of_records_is_blocked_not_a_giant_profile(resolve_with):
    rows = [{"id": i, "email": "test@test.com"} for i in range(3000)]
    store = resolve_with({"crm.contacts": rows}, EMAIL)
    assert len(profiles_of(store)) == 3000
    blocked = store.engine.rows("SELECT value, records, reason FROM tl_blocked")
    assert blocked == [{"value": "test@test.com", "records": 3000, "reason": "placeholder email"}]


def test_a_value_shared_by_more_records_than_the_maximum_is_blocked_and_reported(resolve_with):
    rows = [{"id": i, "email": "office@firm.com"} for i in range(6)] + [{"id": 10, "email": "x@firm.com"}, {"id": 11, "email": "x@firm.com"}]
    store = resolve_with({"crm.contacts": rows}, EMAIL, max_records_per_value=5)
    assert not together(store, "crm.contacts:0", "crm.contacts:1")
    assert together(store, "crm.contacts:10", "crm.contacts:11")
    assert store.engine.rows("SELECT value, records FROM tl_blocked WHERE field = 'email'") == [{"value": "office@firm.com", "records": 6}]


def test_placeholder_phones_are_blocked(resolve_with):
    mapping = {"crm.contacts": {"identifiers": {"phone": "phone"}, "cleaning": {"phone_region": "US"}}}
    store = resolve_with({"crm.contacts": [{"id": 1, "phone": "(555) 555-5555"}, {"id": 2, "phone": "555.555.5555"}]}, mapping)
    assert not together(store, "crm.contacts:1", "crm.contacts:2")


def test_configured_blocked_values_and_patterns_never_link(resolve_with):
    rows = [{"id": 1, "email": "info@shop.com"}, {"id": 2, "email": "info@shop.com"},
            {"id": 3, "email": "x@internal.shop.com"}, {"id": 4, "email": "x@internal.shop.com"}]
    store = resolve_with({"crm.contacts": rows}, EMAIL, blocked_values=["INFO@shop.com"], blocked_patterns=[r"@internal\."])
    assert len(profiles_of(store)) == 4


def test_a_shared_email_does_not_merge_two_customer_ids_of_one_system(resolve_with):
    rows = [{"id": 1, "email": "family@mail.com", "phone": None, "cid": "c1"},
            {"id": 2, "email": "family@mail.com", "phone": None, "cid": "c2"}]
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM})
    assert not together(store, "crm.contacts:1", "crm.contacts:2")
    dropped = store.engine.rows("SELECT rule, reason, links FROM tl_dropped_links")
    assert {"rule": "email", "reason": "profile limit on customer_id:crm", "links": 1} in dropped


def test_a_limit_holds_across_a_chain_of_individually_harmless_links(resolve_with):
    rows = [{"id": 1, "email": "a@mail.com", "phone": None, "cid": "c1"},
            {"id": 2, "email": "a@mail.com", "phone": None, "cid": None},
            {"id": 3, "email": "a@mail.com", "phone": None, "cid": "c2"}]
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM})
    assert not together(store, "crm.contacts:1", "crm.contacts:3")


def test_the_link_of_the_higher_priority_rule_wins_a_limit_conflict(resolve_with):
    rows = [{"id": 1, "email": "a@mail.com", "phone": None, "cid": "c1"},
            {"id": 2, "email": None, "phone": "4155552671", "cid": "c2"},
            {"id": 3, "email": "a@mail.com", "phone": "4155552671", "cid": None}]
    email_first = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM},
                               rules=[{"name": "e", "match": ["email"]}, {"name": "p", "match": ["phone"]}])
    assert together(email_first, "crm.contacts:1", "crm.contacts:3")
    assert not together(email_first, "crm.contacts:2", "crm.contacts:3")


def test_the_link_of_the_higher_priority_rule_wins_with_the_order_reversed(resolve_with):
    rows = [{"id": 1, "email": "a@mail.com", "phone": None, "cid": "c1"},
            {"id": 2, "email": None, "phone": "4155552671", "cid": "c2"},
            {"id": 3, "email": "a@mail.com", "phone": "4155552671", "cid": None}]
    phone_first = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM},
                               rules=[{"name": "p", "match": ["phone"]}, {"name": "e", "match": ["email"]}])
    assert together(phone_first, "crm.contacts:2", "crm.contacts:3")


def test_a_never_merge_pair_stays_apart_despite_a_shared_identifier(resolve_with):
    rows = [{"id": 1, "email": "a@mail.com"}, {"id": 2, "email": "a@mail.com"}]
    store = resolve_with({"crm.contacts": rows}, EMAIL, never_merge=[["crm.contacts:1", "crm.contacts:2"]])
    assert not together(store, "crm.contacts:1", "crm.contacts:2")


def test_an_always_merge_pair_is_one_profile_without_a_shared_identifier(resolve_with):
    rows = [{"id": 1, "email": "a@mail.com"}, {"id": 2, "email": "b@mail.com"}]
    store = resolve_with({"crm.contacts": rows}, EMAIL, always_merge=[["crm.contacts:1", "crm.contacts:2"]])
    assert together(store, "crm.contacts:1", "crm.contacts:2")
    assert store.engine.scalar("SELECT rule FROM tl_links") == "always_merge"


def test_records_without_identifiers_link_on_name_and_birth_date_with_nicknames(resolve_with):
    mapping = {"social.fans": {"traits": {"first_name": "first", "last_name": "last", "birth_date": "dob"},
                               "cleaning": {"date_formats": {"dob": ["%d.%m.%Y", "%Y-%m-%d"]}}}}
    rows = [{"id": 1, "first": "Bill", "last": "Müller", "dob": "02.03.1980"},
            {"id": 2, "first": "WILLIAM", "last": "Muller", "dob": "1980-03-02"},
            {"id": 3, "first": "William", "last": "Muller", "dob": "1981-03-02"}]
    store = resolve_with({"social.fans": rows}, mapping)
    assert profiles_of(store) == {frozenset({"social.fans:1", "social.fans:2"}), frozenset({"social.fans:3"})}


def test_a_long_chain_of_links_resolves_to_one_profile(resolve_with):
    rows = [{"id": i, "email": f"e{i // 2}@mail.com", "phone": f"+1415{2000000 + (i + 1) // 2}", "cid": None} for i in range(200)]
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM}, limits={})
    assert len(profiles_of(store)) == 1
