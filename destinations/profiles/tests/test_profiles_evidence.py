"""Conflicts settled by evidence across rules (resolve/evidence.py): where a limit refuses a
link, the weakest links of the component give way whichever rule found them, and every
refused link is kept with its weight and reason for `profiles get --explain`."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from synthetic_customers import customers
from threadline_profiles import api
from threadline_profiles.cli.profiles import render
from threadline_profiles.resolve import evidence
from threadline_profiles.resolve.evidence import MANUAL_RULE, batches, settle
from threadline_profiles.testing import Lander, profile_ids, profiles_of, together

PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PEOPLE = {"identifiers": {"cid": "customer_id:crm", "phone": "phone", "email": "email"},
          "traits": {"first_name": "first", "last_name": "last", "birth_date": "dob"},
          "cleaning": {"phone_region": "US", "date_formats": {"dob": "%Y-%m-%d"}}}
SHOP = {"identifiers": {"phone": "phone"}, "traits": {"first_name": "first", "last_name": "last", "birth_date": "dob"},
        "cleaning": {"phone_region": "US", "date_formats": {"dob": "%Y-%m-%d"}}}

# CRM 1 is Kate Neal; CRM 2 is an account with no name whose phone the shop record carries
# too (a number passed on). The shop record is Kate Neal by name and birth date.
CRM_ROWS = [{"id": 1, "cid": "c1", "phone": None, "email": "kate@mail.com", "first": "Kate", "last": "Neal", "dob": "1985-04-02"},
            {"id": 2, "cid": "c2", "phone": "4155552671", "email": None, "first": None, "last": None, "dob": None}]
SHOP_ROWS = [{"id": 9, "phone": "4155552671", "first": "Kate", "last": "Neal", "dob": "1985-04-02"}]
# Other customers, so that the agreement model sees how rarely two people share a name or a
# birth date (three records alone say little).
OTHERS = [{"id": 100 + i, "cid": f"o{i}", "phone": None, "email": None, "first": f"Zo{chr(97 + i % 26)}{chr(97 + i // 26)}",
           "last": f"Quil{chr(97 + i % 26)}{chr(97 + i // 26)}", "dob": f"19{50 + i}-0{1 + i % 9}-1{i % 10}"} for i in range(40)]


@pytest.mark.parametrize("agreement", [None, {}], ids=["points", "model"])
def test_the_stronger_link_keeps_the_crm_id_whatever_rule_came_first(resolve_with, agreement):
    # The phone rule comes before name_birth_date: applied rule by rule, the phone link took
    # the shop record to CRM 2 first and Kate Neal's own CRM record was refused.
    store = resolve_with({"crm.contacts": CRM_ROWS + OTHERS, "shop.orders": SHOP_ROWS},
                         {"crm.contacts": PEOPLE, "shop.orders": SHOP}, agreement=agreement)
    assert together(store, "shop.orders:9", "crm.contacts:1")
    assert not together(store, "shop.orders:9", "crm.contacts:2")
    refused = store.engine.rows("SELECT record_key, linked_record_key, rule, weight, reason FROM tl_links_refused")
    assert [(r["rule"], r["reason"]) for r in refused] == [("phone", "profile limit on customer_id:crm")]
    assert {refused[0]["record_key"], refused[0]["linked_record_key"]} == {"shop.orders:9", "crm.contacts:2"}
    assert {"rule": "phone", "reason": "profile limit on customer_id:crm", "links": 1} in store.engine.rows(
        "SELECT rule, reason, links FROM tl_dropped_links")



def test_the_report_counts_records_with_a_refused_link_not_the_pairs(resolve_with):
    # A limit refuses a record's link to each record of the other profile, so links (pairs)
    # outnumber the records they belong to; the headline counts the records.
    from threadline_profiles.report.page import gather, render_report

    store = resolve_with({"crm.contacts": CRM_ROWS + OTHERS, "shop.orders": SHOP_ROWS},
                         {"crm.contacts": PEOPLE, "shop.orders": SHOP})
    store.engine.run("INSERT INTO tl_state_drops VALUES ('shop.orders:9', 'phone', 'profile limit on customer_id:crm', 2)")
    figures = gather(store)
    (row,) = [r for r in figures["dropped"] if r["reason"] == "profile limit on customer_id:crm"]
    assert (row["records"], row["links"]) == (1, 3) and figures["dropped_records"] == 1
    page = render_report(figures, api.build(store, report=False), "store")
    assert "<b>1</b>records with a link refused" in page and "links dropped by guards" not in page

def test_a_refused_link_is_weaker_than_the_links_that_hold(resolve_with):
    store = resolve_with({"crm.contacts": CRM_ROWS, "shop.orders": SHOP_ROWS}, {"crm.contacts": PEOPLE, "shop.orders": SHOP},
                         agreement=None)
    refused = float(store.engine.scalar("SELECT weight FROM tl_links_refused"))
    # name_birth_date's link: first name, last name and birth date exact, 2 points each
    assert refused == 2.0  # the shared phone alone: nothing of the person compared
    assert refused < 6.0


def test_explain_shows_the_refused_link_with_its_weight_and_reason(resolve_with):
    store = resolve_with({"crm.contacts": CRM_ROWS, "shop.orders": SHOP_ROWS}, {"crm.contacts": PEOPLE, "shop.orders": SHOP},
                         agreement=None)
    kate = api.find(store, email="kate@mail.com")[0]
    text = render(kate, explain=True)
    assert "links refused" in text
    line = next(x for x in text.splitlines() if "✗" in x)
    assert "shop.orders:9 ✗ crm.contacts:2" in line
    # the weight and what it is made of: nothing of the person compared, the shared phone 2 points
    assert "rule phone, weight +2.0 (identifier+2.0), refused: profile limit on customer_id:crm" in line
    assert "(in profile " in line  # the other record lives in another profile
    assert kate.to_dict()["refused_links"][0]["weight"] == 2.0
    assert "links refused" not in render(kate, explain=False)


def test_a_guard_drop_is_a_refused_link_with_a_negative_weight(resolve_with):
    # One family inbox, two people: first names and birth dates both differ.
    rows = [{"id": 1, "cid": None, "phone": None, "email": "home@mail.com", "first": "Ann", "last": "Lee", "dob": "1960-01-01"},
            {"id": 2, "cid": None, "phone": None, "email": "home@mail.com", "first": "Tom", "last": "Lee", "dob": "1995-07-09"}]
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": PEOPLE}, agreement=None)
    assert not together(store, "crm.contacts:1", "crm.contacts:2")
    refused = store.engine.rows("SELECT rule, weight, reason FROM tl_links_refused ORDER BY rule")
    assert [(r["rule"], r["reason"]) for r in refused] == [("email", "first name and birth date disagree"),
                                                          ("email_canonical", "first name and birth date disagree")]
    assert [float(r["weight"]) for r in refused] == [2 - 2 + 2 - 2] * 2  # shared email, first ≠, last =, birth ≠
    assert store.engine.scalar("SELECT detail FROM tl_links_refused WHERE rule = 'email'") == (
        "first_name≠-2.0 last_name=+2.0 birth_date≠-2.0 identifier+2.0")


def test_a_never_merge_pair_refuses_the_weakest_link_between_its_sides(resolve_with):
    # 1 and 3 must stay apart; 2 shares an email with each, and is 3 by name and birth date.
    rows = [{"id": 1, "cid": None, "phone": None, "email": "a@mail.com", "first": None, "last": None, "dob": None},
            {"id": 2, "cid": None, "phone": "4155552671", "email": "a@mail.com", "first": "Kate", "last": "Neal", "dob": "1985-04-02"},
            {"id": 3, "cid": None, "phone": "4155552671", "email": None, "first": "Kate", "last": "Neal", "dob": "1985-04-02"}]
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": PEOPLE}, agreement=None,
                         never_merge=[["crm.contacts:1", "crm.contacts:3"]])
    assert profiles_of(store) == {frozenset({"crm.contacts:1"}), frozenset({"crm.contacts:2", "crm.contacts:3"})}
    assert {r["reason"] for r in store.engine.rows("SELECT reason FROM tl_links_refused")} == {"never-merge pair"}


def test_settle_accepts_strongest_first_and_always_merge_is_never_refused():
    values = [(1, "customer_id:crm", "c1"), (2, "customer_id:crm", "c2")]
    limits = {"customer_id:crm": 1}
    links = [(3, 1, "email", 9.0), (3, 2, "phone", 5.0)]
    clusters, refused = settle(links, values, limits)
    assert clusters[3] == clusters[1] and clusters.get(2, 2) != clusters[3]
    assert [(r.rid, r.anchor, r.rule, r.ctype) for r in refused] == [(3, 2, "phone", "customer_id:crm")]
    clusters, refused = settle([(1, 2, MANUAL_RULE, float("inf"))] + links, values, limits)
    assert clusters[1] == clusters[2] and not any(r.rule == MANUAL_RULE for r in refused)


CRM_ONLY = {"identifiers": {"cid": "customer_id:crm", "email": "email"},
            "traits": {"first_name": "first", "last_name": "last", "birth_date": "dob"},
            "address": {"line1": "street"}, "cleaning": {"date_formats": {"dob": "%Y-%m-%d"}}}


def crm(i: int, cid: str, first: str, last: str, dob: str | None, street: str | None = None, email: str | None = None) -> dict:
    return {"id": i, "cid": cid, "first": first, "last": last, "dob": dob, "street": street, "email": email}


@pytest.mark.parametrize("agreement", [None, {}], ids=["points", "model"])
def test_two_accounts_of_one_person_join_past_the_one_id_limit(resolve_with, agreement):
    rows = [crm(1, "c1", "Kate", "Neal", "1985-04-02", email="kate@mail.com"),
            crm(2, "c2", "Katherine", "Neal", "1985-04-02"),  # a duplicate contact: a nickname, the same birth date
            crm(3, "c3", "Tom", "Neal", "1985-04-02", email="kate@mail.com"),  # her twin, on her address
            crm(4, "c4", "Ann", "Lee", None, "1 Elm St"), crm(5, "c5", "Ann", "Lee", None, "1 Elm St"),  # no birth dates
            crm(6, "c6", "Bob", "Lee", None, "1 Elm St")] + OTHERS  # her husband
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM_ONLY}, agreement=agreement)
    assert together(store, "crm.contacts:1", "crm.contacts:2")
    assert together(store, "crm.contacts:4", "crm.contacts:5")
    assert not together(store, "crm.contacts:1", "crm.contacts:3")
    assert not together(store, "crm.contacts:4", "crm.contacts:6")
    refused = {(r["record_key"], r["linked_record_key"]) for r in store.engine.rows(
        "SELECT record_key, linked_record_key FROM tl_links_refused WHERE reason = 'profile limit on customer_id:crm'")}
    assert {"crm.contacts:3"} <= {k for pair in refused for k in pair}


@pytest.mark.parametrize("agreement", [None, {}], ids=["points", "model"])
def test_two_accounts_with_a_short_first_name_join_where_birth_date_and_street_agree(resolve_with, agreement):
    """Jon and Jonathan Reyes, born the same day at one street, are one person's two CRM
    contacts; Jonah Reyes at another street with that birth date is not joined past the limit."""
    rows = [crm(1, "c1", "Jonathan", "Reyes", "1979-06-11", "12 Oak Ave"),
            crm(2, "c2", "Jon", "Reyes", "1979-06-11", "12 Oak Ave"),  # a short form: near, not close
            crm(3, "c3", "Jonah", "Reyes", "1979-06-11", "80 Pine Rd")] + OTHERS
    store = resolve_with({"crm.contacts": rows}, {"crm.contacts": CRM_ONLY}, agreement=agreement)
    assert together(store, "crm.contacts:1", "crm.contacts:2")
    assert not together(store, "crm.contacts:1", "crm.contacts:3")


def test_a_group_past_a_limit_still_takes_links_that_bring_no_new_value():
    values = [(1, "customer_id:crm", "c1"), (2, "customer_id:crm", "c2"), (4, "customer_id:crm", "c3")]
    limits = {"customer_id:crm": 1}
    links = [(1, 2, "name_birth_date", 30.0), (3, 1, "email", 20.0), (4, 3, "phone", 10.0)]
    clusters, refused = settle(links, values, limits, same_person={0}, yielding={"customer_id:crm"})
    assert clusters[1] == clusters[2] == clusters[3]  # the email link brings no customer id
    assert [(r.rid, r.anchor) for r in refused] == [(4, 3)]  # a third id: refused
    _, refused = settle(links, values, limits, same_person={0}, yielding=set())
    assert [(r.rid, r.anchor) for r in refused] == [(1, 2), (4, 3)]  # without yielding, the limit holds


def test_batches_hold_whole_components_of_about_the_given_number_of_links():
    sizes = pa.table({"label": [3, 5, 8, 9, 12], "n": [2, 2, 7, 1, 1]})
    assert batches(sizes, 4) == [(3, 5), (8, 8), (9, 12)]  # a component past the size alone
    assert batches(sizes, 100) == [(3, 12)]
    assert batches(sizes.slice(0, 0), 4) == []


def _build(config: dict) -> tuple[dict, list]:
    data = customers(400, seed=11)
    config = {**config, "resolve_on_finish": False, "mappings": data.mappings,
              "resolution": {"never_merge": [["crm.contacts:C1", "shop.customers:S2"]],
                             "always_merge": [["crm.contacts:C3", "loyalty.members:L4"]]}}
    lander = Lander(config)
    lander.land_tables(data.tables, batch_rows=250)
    with lander.store() as store:
        api.build(store)
        return profile_ids(store), sorted(
            (r["record_key"], r["linked_record_key"], r["rule"], float(r["weight"]), r["reason"])
            for r in store.engine.rows("SELECT * FROM tl_links_refused"))


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_settling_a_component_at_a_time_gives_what_settling_all_at_once_gives(engine, tmp_path, monkeypatch, request):
    def config(name: str) -> dict:
        if engine == "duckdb":
            return {"path": str(tmp_path / f"{name}.duckdb"), "report_dir": str(tmp_path / name)}
        schema = request.getfixturevalue("pg_schema") + ("" if name == "all" else "_b")
        if name != "all":  # (the fixture drops its own schema; this one is dropped here)
            request.addfinalizer(lambda: _drop_schema(schema))
        return {"engine": "postgres", "dsn": PG_DSN, "schema": schema, "report_dir": str(tmp_path / name)}

    ranges: list[list[tuple[int, int]]] = []

    def counted(sizes: pa.Table, most: int) -> list[tuple[int, int]]:
        ranges.append(batches(sizes, most))
        return ranges[-1]

    monkeypatch.setattr(evidence, "batches", counted)
    at_once = _build(config("all"))
    monkeypatch.setattr(evidence, "SETTLE_BATCH", 1)
    one_by_one = _build(config("one"))
    assert len(ranges[0]) == 1 and len(ranges[1]) > 1  # settled in one batch, then component by component
    assert any("limit" in r[4] or "never-merge" in r[4] for r in at_once[1])  # a limit did refuse links
    assert one_by_one == at_once
