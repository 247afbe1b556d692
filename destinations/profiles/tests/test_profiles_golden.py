"""Stage 5, merge: one golden value per field, chosen by survivorship, with its lineage."""

from __future__ import annotations

MAPPINGS = {
    "crm.contacts": {"identifiers": {"email": "email"}, "traits": {"first_name": "first", "city": "city"},
                     "updated_at": "updated", "cleaning": {"priority": 10}},
    "shop.customers": {"identifiers": {"email": "email"}, "traits": {"first_name": "first", "city": "city"},
                       "updated_at": "updated", "cleaning": {"priority": 1}},
}
STREAMS = {
    "crm.contacts": [{"id": 1, "email": "a@mail.com", "first": "Anna", "city": "Berlin", "updated": "2024-01-01 10:00:00"}],
    "shop.customers": [
        {"id": 1, "email": "a@mail.com", "first": "Ana", "city": "Hamburg", "updated": "2024-06-01 10:00:00"},
        {"id": 2, "email": "a@mail.com", "first": "Ana", "city": "Hamburg", "updated": "2023-01-01 10:00:00"},
    ],
}


def golden(store, field: str) -> dict:
    rows = store.engine.rows(f"SELECT * FROM tl_golden WHERE field = '{field}'")
    assert len(rows) == 1
    return rows[0]


def test_source_priority_takes_the_value_of_the_most_trusted_source(resolve_with):
    store = resolve_with(STREAMS, MAPPINGS)
    assert golden(store, "first_name")["value"] == "Anna"


def test_most_recent_takes_the_value_seen_last(resolve_with):
    store = resolve_with(STREAMS, MAPPINGS, survivorship={"fields": {"city": "most_recent"}})
    row = golden(store, "city")
    assert (row["value"], row["record_key"], row["seen_at"]) == ("Hamburg", "shop.customers:1", "2024-06-01 10:00:00")


def test_most_frequent_takes_the_value_most_records_agree_on(resolve_with):
    store = resolve_with(STREAMS, MAPPINGS, survivorship={"default": "most_frequent"})
    assert golden(store, "first_name")["value"] == "Ana"


def test_first_non_null_takes_the_value_seen_first(resolve_with):
    store = resolve_with(STREAMS, MAPPINGS, survivorship={"fields": {"city": "first_non_null"}})
    assert golden(store, "city")["record_key"] == "shop.customers:2"


def test_a_golden_value_names_its_source_record_and_rule(resolve_with):
    store = resolve_with(STREAMS, MAPPINGS)
    row = golden(store, "first_name")
    assert (row["source"], row["stream"], row["record_key"], row["rule"]) == ("crm", "contacts", "crm.contacts:1", "source_priority")


def test_invalid_values_never_win(resolve_with):
    mappings = {"crm.contacts": {"identifiers": {"email": "email"}, "traits": {"birth_date": "dob"},
                                 "cleaning": {"date_formats": {"dob": "%Y-%m-%d"}}}}
    rows = [{"id": 1, "email": "a@mail.com", "dob": "1980-13-45"}, {"id": 2, "email": "a@mail.com", "dob": "1980-02-03"}]
    store = resolve_with({"crm.contacts": rows}, mappings)
    assert golden(store, "birth_date")["value"] == "1980-02-03"


def test_without_an_update_time_the_record_landed_later_wins_even_within_one_second(tmp_path):
    """Two pages of one stream landed in two commits a moment apart: the later page's value is
    the most recent, whatever the record keys (to the second the two tied, and the key chose
    the first page on a fast engine and the second on a slow one)."""
    from threadline_profiles import api
    from threadline_profiles.testing import Lander

    lander = Lander({"path": str(tmp_path / "profiles.duckdb"), "resolve_on_finish": False, "mappings": {
        "x.followers": {"identifiers": {"email": "email"}, "traits": {"city": "location"}}}})
    lander.land("x", "followers", [{"id": 1, "email": "a@mail.com", "location": "Germany"}])
    lander.land("x", "followers", [{"id": 2, "email": "a@mail.com", "location": "Berlin"}])
    with lander.store() as store:
        api.build(store, report=False)
        seen = {r["record_key"]: r["seen_at"] for r in store.engine.rows("SELECT record_key, seen_at FROM tl_members")}
        assert seen["x.followers:1"] < seen["x.followers:2"]
        assert golden(store, "city")["value"] == "Berlin"
