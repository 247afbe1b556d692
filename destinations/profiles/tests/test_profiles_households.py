"""Households against duplicates: the agreement model learns one person, not one home.

A customer file holds families: records that share a surname, a street, a postal code and
often an email or a phone, with different first names and birth dates. The model's match
class must be one person's records, so a store full of households still keeps each member
apart while one person's noisy records join.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadline_profiles import api
from threadline_profiles.config import AgreementRule
from threadline_profiles.engines.base import work_table
from threadline_profiles.testing import Lander, together

PEOPLE = {"crm.people": {"traits": {"first_name": "first", "last_name": "last", "birth_date": "dob", "city": "city"},
                         "address": {"line1": "street", "postal_code": "zip"},
                         "identifiers": {"email": "email", "phone": "phone", "crm_id": "customer_id:crm"},
                         "cleaning": {"phone_region": "US"}}}
FIRST = ["olivia", "liam", "emma", "noah", "ava", "elijah", "sophia", "lucas", "mia", "mason", "harper", "ethan",
         "ella", "logan", "aria", "jacob", "chloe", "owen", "nora", "henry", "grace", "leo", "zoe", "jack"]
LAST = ["nguyen", "okafor", "schmidt", "rossi", "kowalski", "tanaka", "haddad", "murphy", "silva", "jensen", "novak",
        "ibrahim", "costa", "weber", "dubois", "moreau", "fischer", "larsen", "petrov", "santos", "becker", "kim"]
STREETS = ["oak", "pine", "cedar", "elm", "maple", "birch", "willow", "aspen"]


def person(rng: np.random.Generator, pid: str, **fixed) -> dict:
    row = {"id": pid, "first": FIRST[rng.integers(len(FIRST))], "last": LAST[rng.integers(len(LAST))],
           "dob": f"{rng.integers(1940, 2005)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
           "city": ["Austin", "Dallas", "Houston"][rng.integers(3)],
           "street": f"{rng.integers(1, 999)} {STREETS[rng.integers(len(STREETS))]} street",
           "zip": f"78{rng.integers(100, 999)}", "email": None, "phone": None, "crm_id": None}
    return {**row, **fixed}


def typo(rng: np.random.Generator, text: str) -> str:
    i = int(rng.integers(1, len(text) - 1))
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def household_store(seed: int = 7, homes: int = 80, members: int = 3, duplicated: int = 60) -> tuple[list[dict], list, list]:
    """Homes of `members` people (one surname and address, their own first names and birth
    dates), and `duplicated` people with two records each (a typo in the surname, the street
    written another way). Returns the rows, the pairs of one home, and the pairs of one person."""
    rng = np.random.default_rng(seed)
    rows, family_pairs, same_person = [], [], []
    for h in range(homes):
        home = person(rng, f"h{h}")
        firsts = rng.choice(len(FIRST), size=members, replace=False)
        ids = []
        for k in range(members):
            dob = f"{rng.integers(1940, 2005)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
            rows.append({**home, "id": f"h{h}m{k}", "first": FIRST[firsts[k]], "dob": dob})
            ids.append(f"crm.people:h{h}m{k}")
        family_pairs += [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    for d in range(duplicated):
        one = person(rng, f"d{d}a")
        rows.append(one)
        rows.append({**one, "id": f"d{d}b", "last": typo(rng, one["last"]), "street": one["street"].replace("street", "st")})
        same_person.append((f"crm.people:d{d}a", f"crm.people:d{d}b"))
    rows += [person(rng, f"bg{i}") for i in range(200)]
    return rows, family_pairs, same_person


def build(tmp_path, rows: list[dict], **resolution):
    config = {"resolve_on_finish": False, "mappings": PEOPLE, "path": str(tmp_path / "profiles.duckdb"),
              "report_dir": str(tmp_path / "reports")}
    if resolution:
        config["resolution"] = resolution
    lander = Lander(config)
    lander.land("crm", "people", rows)
    store = lander.store()
    api.build(store, report=False)
    return store


@pytest.fixture
def resolved(tmp_path):
    opened = []

    def run(rows: list[dict], **resolution):
        store = build(tmp_path, rows, **resolution)
        opened.append(store)
        return store

    yield run
    for store in opened:
        store.close()


def test_the_model_links_one_persons_records_and_not_the_members_of_a_household(resolved):
    rows, family_pairs, same_person = household_store()
    # The guard off: what keeps family members apart here is the model alone.
    store = resolved(rows)
    assert not [p for p in family_pairs if together(store, *p)]
    assert all(together(store, *p) for p in same_person)


def test_a_field_seen_in_too_few_matching_pairs_keeps_the_priors_and_the_report_says_so(resolved):
    # The duplicates' surnames carry a typo, so no first name + last name block holds them
    # (and the first name + last initial block is left out here): birth dates are compared in
    # no block that leaves them out, and keep the stated priors.
    rows, _, same_person = household_store()
    blocks = [b for b in AgreementRule().block_on if b != ["first_name", "last_name:1"]]
    store = resolved(rows, agreement={"block_on": blocks})
    reasons = [r["reason"] for r in store.engine.rows("SELECT reason FROM tl_dropped_links WHERE rule = 'agreement'")]
    assert [r for r in reasons if r.startswith("model: m of ")] == [
        "model: m of birth_date from the stated priors (fewer than 30 matching pairs in the blocks that leave each out)"]
    assert all(together(store, *p) for p in same_person)


def with_family_contacts(rows: list[dict]) -> list[dict]:
    """Every home's members share one family email and one home phone."""
    out = []
    for row in rows:
        if row["id"].startswith("h"):
            home = row["id"].split("m")[0][1:]
            row = {**row, "email": f"family{home}@mail.com", "phone": f"512-3{int(home):02d}-{4000 + int(home)}"}
        out.append(row)
    return out


def test_the_guard_drops_family_links_in_a_household_heavy_store(resolved):
    # The guard's typo rates are fixed, not the model's: however the model is fitted, a store
    # of families sharing inboxes and home phones shows conflicts far above them.
    rows, family_pairs, same_person = household_store()
    store = resolved(with_family_contacts(rows))
    dropped = {(r["rule"], r["reason"]): r["links"] for r in store.engine.rows("SELECT rule, reason, links FROM tl_dropped_links")}
    assert dropped.get(("email", "first name and birth date disagree"), 0) > 0
    assert dropped.get(("phone", "first name and birth date disagree"), 0) > 0
    assert not [p for p in family_pairs if together(store, *p)]
    assert all(together(store, *p) for p in same_person)


def test_a_stronger_link_wins_a_limit_over_a_weaker_one_that_arrived_first(resolved):
    # Two CRM accounts share an inbox with a shop record; a profile holds one CRM id. The
    # account that lands first (and sorts first) is another person who only looks alike;
    # the shop record is the second account's person to the letter.
    rng = np.random.default_rng(11)
    look_alike = person(rng, "a1", first="maria", last="lopes", dob="1981-07-03", email="lopez.home@mail.com", crm_id="C1")
    maria = person(rng, "b2", first="maria", last="lopez", dob="1980-02-03", email="lopez.home@mail.com", crm_id="C2",
                   street=look_alike["street"], zip=look_alike["zip"], city=look_alike["city"])
    shop = {**maria, "id": "c3", "crm_id": None}
    store = resolved([look_alike, maria, shop] + [person(rng, f"bg{i}") for i in range(100)])
    assert together(store, "crm.people:b2", "crm.people:c3")
    assert not together(store, "crm.people:a1", "crm.people:c3")
    dropped = {r["reason"] for r in store.engine.rows("SELECT reason FROM tl_dropped_links WHERE rule = 'email'")}
    assert "profile limit on customer_id:crm" in dropped


def test_an_inbox_shared_by_two_clearly_different_people_does_not_merge_them(resolved):
    # A register-like store: one person's records share their own inbox, and the data shows
    # no households, so no conflict class is believed store-wide. One inbox is shared by two
    # people whose first names and birth dates both differ: it is evidence, not a key.
    rng = np.random.default_rng(5)
    rows = []
    for d in range(40):
        one = person(rng, f"d{d}a", email=f"own{d}@mail.com")
        rows += [one, {**one, "id": f"d{d}b", "last": typo(rng, one["last"])}]
    ann = person(rng, "ann", first="ann", dob="1980-01-01", email="family@mail.com")
    bob = person(rng, "bob", first="robert", dob="1975-05-05", email="family@mail.com")
    ann2 = {**ann, "id": "ann2", "street": None, "email": None}
    store = resolved(rows + [ann, bob, ann2] + [person(rng, f"bg{i}") for i in range(150)])
    assert not together(store, "crm.people:ann", "crm.people:bob")
    assert together(store, "crm.people:ann", "crm.people:ann2")
    assert all(together(store, f"crm.people:d{d}a", f"crm.people:d{d}b") for d in range(40))


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_birth_year_alone_tells_apart_two_people_of_one_name(tmp_path, request, engine):
    # A loyalty programme asks only for the year of birth. Two CRM customers share a name;
    # the loyalty member born in 1980 is the one born on 1980-02-03, not the one of 1955.
    mappings = {**PEOPLE, "loyalty.members": {"traits": {"first_name": "first", "last_name": "last", "birth_year": "born"},
                                              "address": {"postal_code": "zip"}}}
    rng = np.random.default_rng(3)
    crm = [person(rng, f"bg{i}") for i in range(200)]
    crm += [person(rng, "m80", first="maria", last="lopez", dob="1980-02-03", zip="78701"),
            person(rng, "m55", first="maria", last="lopez", dob="1955-07-08", zip="78702")]
    members = [{"id": f"L{i}", "first": r["first"], "last": r["last"], "born": int(r["dob"][:4]), "zip": r["zip"]}
               for i, r in enumerate(crm[:120])]
    members.append({"id": "Lmaria", "first": "Maria", "last": "Lopez", "born": 1980, "zip": None})
    config = {"resolve_on_finish": False, "mappings": mappings, "report_dir": str(tmp_path / "reports")}
    if engine == "postgres":
        config.update(engine="postgres", schema=request.getfixturevalue("pg_schema"))
    else:
        config["path"] = str(tmp_path / "p.duckdb")
    lander = Lander(config)
    lander.land("crm", "people", crm)
    lander.land("loyalty", "members", members)
    with lander.store() as store:
        api.build(store, report=False)
        assert together(store, "crm.people:m80", "loyalty.members:Lmaria")
        assert not together(store, "crm.people:m55", "loyalty.members:Lmaria")
        key = store.engine.scalar("SELECT key FROM tl_links WHERE record_key = 'loyalty.members:Lmaria' "
                                  "OR linked_record_key = 'loyalty.members:Lmaria'")
        assert " birth_year=+" in key


def test_a_member_known_by_a_nickname_of_another_initial_is_compared_with_the_contact_of_its_surname_and_birth_year(tmp_path):
    # Polly (a listed nickname of Mary) Lopez, born 1980, with no postal code: no default key
    # on a first name or its initial holds both her and the CRM's Mary Lopez, and the loyalty
    # record has no full date. The key on last name and birth year pairs them (and not Mary
    # Lopez of 1955, nor Polly Lopez's neighbour of another surname born in 1980).
    from threadline_profiles.engines import DuckDBEngine
    from threadline_profiles.resolve import agreement

    fields = ["first_name", "last_name", "birth_date", "birth_year", "postal_code"]
    people = [(1, "mary", "lopez", "1980-02-03", "1980", "78701"), (2, "mary", "lopez", "1955-07-08", "1955", "78702"),
              (3, "polly", "lopez", None, "1980", None), (4, "anne", "kerr", None, "1980", None)]
    engine = DuckDBEngine(tmp_path / "blocks.duckdb")
    try:
        values = ", ".join("(" + ", ".join("NULL" if v is None else repr(v) if isinstance(v, str) else str(v) for v in row) + ")"
                           for row in people)
        engine.run(f"CREATE TEMP TABLE tl_work_person AS SELECT * FROM (VALUES {values}) AS t(rid, {', '.join(fields)})")
        rule = AgreementRule()
        blocks = agreement.usable_blocks(rule, fields)
        engine.run([agreement.block_keys_sql(blocks, fields), agreement.block_sizes_sql(),
                    agreement.candidates_sql(len(blocks), rule.max_block, rule.refine_over)])
        pairs = {(r["a"], r["b"]) for r in engine.rows("SELECT a, b FROM tl_work_cand")}
    finally:
        engine.close()
    assert ["last_name", "birth_year"] in blocks
    assert (1, 3) in pairs and (2, 3) not in pairs and (3, 4) not in pairs


def test_a_birth_year_tells_people_apart_where_no_two_full_dates_do(tmp_path):
    from threadline_profiles.engines import DuckDBEngine
    from threadline_profiles.resolve import agreement, conflicts

    # (first, birth_date, birth_year) of two records; the year column holds a full date's year too
    pairs = [(("ann", None, "1960"), ("zoe", None, "1994")),  # a parent and a child on one phone: two people
             (("ann", None, "1960"), ("zoe", None, "1960")),  # the same year: a nickname the store does not know
             (("ann", None, "1960"), ("zoe", None, "1961")),  # a year apart: a typo
             (("ann", "1960-03-02", "1960"), ("zoe", None, "1994")),  # a full date against a year
             (("ann", "1960-03-02", "1960"), ("zoe", "1960-03-02", "1960")),  # two full dates: compared as dates
             (("ann", None, None), ("zoe", None, "1994"))]  # nothing to compare but the first name
    rows = ", ".join(f"({i}, {side}, '{f}', {'NULL' if d is None else repr(d)}, {'NULL' if y is None else repr(y)})"
                     for i, pair in enumerate(pairs) for side, (f, d, y) in enumerate(pair))
    fields = ["first_name", "birth_date", "birth_year"]
    engine = DuckDBEngine(tmp_path / "years.duckdb")
    try:
        agreement.require_comparisons(engine)  # first names are compared with their nicknames
        engine.run(work_table(
            "p",
            f"AS SELECT * FROM (VALUES {rows}) AS t(i, side, first_name, birth_date, birth_year)"))
        got = [r["c"] for r in engine.rows(f"SELECT {conflicts.class_sql('x', 'y', fields)} AS c FROM p AS x "
                                           "JOIN p AS y ON x.i = y.i AND x.side = 0 AND y.side = 1 ORDER BY x.i")]
        without_years = [r["c"] for r in engine.rows(f"SELECT {conflicts.class_sql('x', 'y', fields[:2])} AS c FROM p AS x "
                                                     "JOIN p AS y ON x.i = y.i AND x.side = 0 AND y.side = 1 ORDER BY x.i")]
    finally:
        engine.close()
    assert got == [conflicts.BOTH_DIFFER, 0, 0, conflicts.BOTH_DIFFER, 0, 1]
    assert without_years == [1, 1, 1, 1, 0, 1]  # a year alone was not compared
