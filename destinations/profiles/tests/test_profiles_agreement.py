"""The agreement rule (fuzzy, weighted matching) and the guard on shared identifiers.

Each case is set among a small background population, so the weights the rule estimates
from the data (value frequencies, EM) are those of a store, not of two lone records.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pytest
from threadline_profiles import api
from threadline_profiles.engines import DuckDBEngine
from threadline_profiles.engines.base import work_table
from threadline_profiles.resolve import agreement
from threadline_profiles.report.page import gather
from threadline_profiles.testing import Lander, comparison_levels, profile_ids, profiles_of, together

PEOPLE = {"crm.people": {"traits": {"first_name": "first", "middle_name": "middle", "last_name": "last", "birth_date": "dob",
                                    "city": "city"},
                         "address": {"line1": "street", "postal_code": "zip"},
                         "identifiers": {"email": "email", "ssn": "national_id"}}}
FIRST = ["olivia", "liam", "emma", "noah", "ava", "elijah", "sophia", "lucas", "mia", "mason", "harper", "ethan",
         "ella", "logan", "aria", "jacob", "chloe", "owen", "nora", "henry"]
LAST = ["nguyen", "okafor", "schmidt", "rossi", "kowalski", "tanaka", "haddad", "murphy", "silva", "jensen",
        "novak", "ibrahim", "costa", "weber", "dubois"]
STREETS = ["oak", "pine", "cedar", "elm", "maple", "birch", "willow", "aspen"]


def background(n: int = 240, seed: int = 3) -> list[dict]:
    """n different people, each once: the population the cases are set among."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append({
            "id": f"bg{i}", "first": FIRST[rng.integers(len(FIRST))], "last": LAST[rng.integers(len(LAST))],
            "dob": f"{rng.integers(1940, 2005)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
            "city": ["Austin", "Dallas", "Houston"][rng.integers(3)],
            "street": f"{rng.integers(1, 999)} {STREETS[rng.integers(len(STREETS))]} street",
            "zip": f"78{rng.integers(100, 999)}", "email": f"bg{i}@mail.com", "ssn": f"{500000000 + i * 7919}",
            "middle": "ABCDEFGH"[rng.integers(8)],
        })
    return rows


def maria(i: int, **changes) -> dict:
    row = {"id": str(i), "first": "Maria", "last": "Lopez", "dob": "1980-02-03", "city": "Austin", "street": "12 Oak Street",
           "zip": "78701", "email": None, "ssn": None, "middle": None}
    return {**row, **changes}


def build(tmp_path, rows: list[dict], engine: str = "duckdb", schema: str = "", **resolution):
    config = {"resolve_on_finish": False, "mappings": PEOPLE, "report_dir": str(tmp_path / f"reports_{engine}")}
    if engine == "postgres":
        config.update(engine="postgres", schema=schema)
    else:
        config["path"] = str(tmp_path / "profiles.duckdb")
    if resolution:
        config["resolution"] = resolution
    lander = Lander(config)
    lander.land("crm", "people", background() + rows)
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


def test_typos_in_the_last_name_and_a_swapped_day_and_month_still_link(resolved):
    store = resolved([maria(1), maria(2, last="Lopes", dob="1980-03-02")])
    assert together(store, "crm.people:1", "crm.people:2")


def test_a_nickname_and_a_missing_street_still_link(resolved):
    store = resolved([maria(1, first="William", last="Kerr"), maria(2, first="Bill", last="Kerr", street=None)])
    assert together(store, "crm.people:1", "crm.people:2")


def test_first_and_last_names_written_the_other_way_round_link(resolved):
    store = resolved([maria(1), maria(2, first="Lopez", last="Maria", street="12 Oak St")])
    assert together(store, "crm.people:1", "crm.people:2")


def test_a_household_member_with_another_first_name_and_birth_date_stays_apart(resolved):
    store = resolved([maria(1), maria(2, first="Jose", dob="1978-05-06")])
    assert not together(store, "crm.people:1", "crm.people:2")


def test_different_names_at_the_same_address_with_the_same_birth_date_stay_apart(resolved):
    store = resolved([maria(1), maria(2, first="Jose", last="Perez", zip="78710")])
    assert not together(store, "crm.people:1", "crm.people:2")


def test_a_family_email_does_not_merge_two_household_members(resolved):
    rows = [maria(1, email="lopez.family@mail.com"), maria(2, first="Jose", dob="1978-05-06", email="lopez.family@mail.com"),
            maria(3, email="lopez.family@mail.com", street=None)]
    store = resolved(rows)
    assert together(store, "crm.people:1", "crm.people:3")
    assert not together(store, "crm.people:1", "crm.people:2")
    dropped = store.engine.rows("SELECT rule, reason, links FROM tl_dropped_links WHERE rule = 'email'")
    assert dropped == [{"rule": "email", "reason": "first name and birth date disagree", "links": 2}]


def test_the_shared_identifier_guard_can_be_turned_off(resolved):
    rows = [maria(1, email="lopez.family@mail.com"), maria(2, first="Jose", dob="1978-05-06", email="lopez.family@mail.com")]
    store = resolved(rows, conflict_guard=False)
    assert together(store, "crm.people:1", "crm.people:2")


def test_a_mistyped_national_id_does_not_keep_one_person_apart(resolved):
    store = resolved([maria(1, ssn="123-45-6789"), maria(2, ssn="123-45-6798", street="12 Oak St")])
    assert together(store, "crm.people:1", "crm.people:2")


def test_a_national_id_copied_to_a_household_member_does_not_merge_them(resolved):
    store = resolved([maria(1, ssn="123-45-6789"), maria(2, first="Jose", dob="1978-05-06", ssn="123 45 6789")])
    assert not together(store, "crm.people:1", "crm.people:2")


def test_a_record_with_nothing_to_tell_family_members_apart_joins_none_of_them(resolved):
    family = [maria(1), maria(2, first="Jose", dob="1978-05-06")]
    store = resolved(family + [maria(3, first=None, dob=None)])
    assert not together(store, "crm.people:1", "crm.people:3")
    assert not together(store, "crm.people:2", "crm.people:3")


def test_one_national_id_and_middle_name_with_another_first_name_and_no_birth_date_links(resolved):
    family = [maria(1, ssn="536-22-1048", middle="P"), maria(2, first="Jose", dob="1978-05-06")]
    store = resolved(family + [maria(3, first="Bunny", dob=None, ssn="536221048", middle="P"),
                               maria(4, first="Alba", dob=None, ssn="536221048", middle="Q")])
    assert together(store, "crm.people:1", "crm.people:3")  # a name on a form, or a nickname
    assert not together(store, "crm.people:1", "crm.people:4")  # the id copied to a family member


def test_blocks_larger_than_max_block_are_skipped_and_counted(resolved):
    # 30 people sharing one birth date and postal code; max_block 10 leaves those blocks out,
    # so Maria's two records (which agree on nothing else exactly) are never compared.
    crowd = [maria(f"c{i}", first=FIRST[i % len(FIRST)], last=f"crowd{i}", street=f"{i} crowd road", city="Waco")
             for i in range(30)]
    rows = crowd + [maria(1, street="12 Oak St"), maria(2, first="Mariah", last="Lopes", street="12 Oak Street")]
    small = resolved(rows, agreement={"max_block": 10, "block_on": [["birth_date"], ["postal_code"]]})
    assert not together(small, "crm.people:1", "crm.people:2")
    skipped = {r["reason"]: r["links"] for r in small.engine.rows("SELECT reason, links FROM tl_dropped_links WHERE rule = 'agreement' "
                                                                 "AND reason LIKE 'blocks%'")}
    assert skipped == {"blocks on birth_date over 10 records skipped": 32 * 31 // 2,
                       "blocks on postal_code over 10 records skipped": 32 * 31 // 2}
    # The report keeps pairs never compared out of its "links dropped" headline and lists them apart.
    figures = gather(small)
    assert {(r["reason"], r["pairs"]) for r in figures["not_compared"]} >= {
        ("blocks on birth_date over 10 records skipped", 32 * 31 // 2), ("blocks on postal_code over 10 records skipped", 32 * 31 // 2)}
    assert not any(r["reason"].startswith("blocks on") for r in figures["dropped"])
    large = resolved(rows, agreement={"max_block": 100, "block_on": [["birth_date"], ["postal_code"]]})
    assert together(large, "crm.people:1", "crm.people:2")


def test_blocks_larger_than_refine_over_pair_only_records_sharing_the_refined_key_and_are_counted(resolved):
    # 30 people born on Maria's day whose first names begin with M: the birth date + first
    # initial block holds 33 records, over refine_over 10, so only records that also share
    # the whole first name are compared there (the cost of a record stays bounded however
    # many people a store holds).
    crowd = [maria(f"c{i}", first="Mo" + FIRST[i % len(FIRST)], last=f"crowd{i}", street=f"{i} crowd road", city="Waco",
                   zip=f"7{i:04d}") for i in range(30)]
    rows = crowd + [maria(1), maria(2, first="Mariah", last="Lopes", street="12 Oak Street"), maria(3, street="12 Oak St")]
    rule = {"block_on": [["birth_date", "first_name:1"]], "refine_over": 10}
    narrow = resolved(rows, agreement=rule)
    assert together(narrow, "crm.people:1", "crm.people:3")  # one first name: compared, and one person
    assert not together(narrow, "crm.people:1", "crm.people:2")  # Maria and Mariah: never compared
    counted = narrow.engine.rows("SELECT reason, links FROM tl_dropped_links WHERE rule = 'agreement' AND reason LIKE 'blocks%'")
    # 33 records make 528 pairs; those sharing a first name (crowd i and i + 20, the two Marias) are 11
    assert counted == [{"reason": "blocks on birth_date+first_name:1 over 10 records compared within birth_date+first_name "
                                  "only", "links": 528 - 11}]
    whole = resolved(rows, agreement={**rule, "refine_over": 100})  # at max_block or over: every pair of the block
    assert together(whole, "crm.people:1", "crm.people:2")


def test_a_refined_key_writes_prefixes_in_full_or_adds_a_field():
    fields = ["first_name", "last_name", "birth_date", "postal_code", "email"]
    assert agreement.refined(["birth_date", "first_name:1"], fields) == ["birth_date", "first_name"]
    assert agreement.refined(["first_name", "last_name"], fields) == ["first_name", "last_name", "birth_date"]
    assert agreement.refined(["birth_date", "postal_code"], fields) == ["birth_date", "postal_code", "last_name"]
    assert agreement.refined(["email_local"], ["email"]) == ["email_local"]  # nothing to add: the block as it is


def test_a_store_with_nothing_to_compare_builds(tmp_path):
    lander = Lander({"path": str(tmp_path / "empty.duckdb"), "resolve_on_finish": False, "mappings": PEOPLE})
    lander.land("crm", "people", [maria(1)][:0], schema=pa.Table.from_pylist([maria(1)]).schema)
    with lander.store() as store:
        api.build(store, report=False)
        assert profiles_of(store) == set()


def test_the_link_says_how_each_field_compared_without_any_value(resolved):
    store = resolved([maria(1), maria(2, last="Lopes", dob="1980-03-02")])
    key = store.engine.scalar("SELECT key FROM tl_links WHERE rule = 'agreement'")
    assert key.startswith("p=0.9")
    # each field: how it compared and its match weight (log2 m/u), "?" where a record lacks it
    marks = [re.sub(r"[+-]\d+\.\d$", "", part) for part in key.split(" ")[1:]]
    assert marks == ["first_name=", "middle_name?", "last_name~", "birth_date~", "address_line1=", "postal_code=", "city=",
                     "national_id?", "email?", "handle_year?"]
    weights = {part.split("=")[0].split("~")[0]: float(re.search(r"[+-]\d+\.\d$", part).group())
               for part in key.split(" ")[1:] if not part.endswith("?")}
    assert weights["first_name"] > 0 and weights["last_name"] > 0 and weights["birth_date"] > 0
    assert "lopez" not in key.lower() and "1980" not in key


def test_the_agreement_rule_can_be_turned_off(resolved):
    store = resolved([maria(1), maria(2, last="Lopes", dob="1980-03-02")], agreement=None)
    assert not together(store, "crm.people:1", "crm.people:2")


def test_em_recovers_the_m_probabilities_of_a_mixture_without_labels():
    rng = np.random.default_rng(5)
    levels = [agreement.levels_of("first_name"), agreement.levels_of("birth_date")]
    true_m = [{3: 0.8, 2: 0.1, 1: 0.05, 0: 0.05}, {3: 0.9, 2: 0.04, 1: 0.02, 0: 0.04}]
    u = [{3: 0.01, 2: 0.02, 1: 0.05, 0: 0.92}, {3: 0.001, 2: 0.002, 1: 0.02, 0: 0.977}]

    def draw(probabilities: dict[int, float], n: int) -> np.ndarray:
        return rng.choice(list(probabilities), size=n, p=list(probabilities.values()))

    matches = np.column_stack([draw(m, 3000) for m in true_m])
    others = np.column_stack([draw(x, 20000) for x in u])
    patterns, counts = np.unique(np.vstack([matches, others]), axis=0, return_counts=True)
    m, share = agreement.em(patterns, counts.astype(float), [0, 1], levels,
                            [agreement._m_prior(lv) for lv in levels], u)
    assert share == pytest.approx(3000 / 23000, abs=0.01)
    for fitted, truth in zip(m, true_m):
        for level, p in truth.items():
            assert fitted[level] == pytest.approx(p, abs=0.02)


def test_exact_agreement_on_a_rare_value_weighs_more_than_on_a_common_one(tmp_path):
    engine = DuckDBEngine(tmp_path / "work.duckdb")
    try:
        engine.run([work_table(
            "tl_work_person",
            "AS SELECT * FROM (VALUES (1, 'smith'), (2, 'smith'), (3, 'smith'), "
            "(4, 'zabrowski')) AS t(rid, last_name)"), agreement.frequencies_sql(["last_name"])])
        lu = {r["key"]: r["lu"] for r in engine.rows("SELECT key, lu FROM tl_work_tf")}
    finally:
        engine.close()
    assert lu["zabrowski"] < lu["smith"] < 0  # log2 of the value's share: rarer is more negative, so weighs more
    # u is how often another record has the value: smith's other two records of four
    assert math.isclose(2 ** lu["smith"], (2 + 20 * 0.005) / (4 + 20))


def test_a_persons_own_records_do_not_make_a_rare_value_look_common(tmp_path):
    """A rare surname held by one customer's four records is as rare as one seen once: the
    records expected to be that person's own (`own`) are not other people holding it."""
    engine = DuckDBEngine(tmp_path / "work.duckdb")
    rows = ", ".join(f"({i}, '{name}')" for i, name in enumerate(["vetrano"] * 4 + ["smith"] * 12 + ["zabrowski"], 1))
    try:
        engine.run([work_table("tl_work_person", f"AS SELECT * FROM (VALUES {rows}) AS t(rid, last_name)"),
                    agreement.frequencies_sql(["last_name"], own=[3.0])])
        lu = {r["key"]: r["lu"] for r in engine.rows("SELECT key, lu FROM tl_work_tf")}
        engine.run(["DROP TABLE tl_work_tf", agreement.frequencies_sql(["last_name"])])
        counted = {r["key"]: r["lu"] for r in engine.rows("SELECT key, lu FROM tl_work_tf")}
    finally:
        engine.close()
    assert math.isclose(lu["vetrano"], lu["zabrowski"])  # its three other records are the person's own
    assert math.isclose(2 ** lu["smith"], (12 - 1 - 3 + 20 * 0.005) / (17 + 20))  # other people's smiths
    assert lu["vetrano"] < counted["vetrano"] - 1.4  # counted as other people it weighs 1.5 bits less
    assert math.isclose(counted["zabrowski"], agreement.once_lu("name", 17))  # a value seen once: the stored model's lu_once


def test_own_records_come_from_the_estimated_matching_pairs():
    """Records per person less one (2E/N), times the share of records having the field and m of exact agreement."""
    levels = agreement.levels_of("last_name")
    field = agreement.FieldModel("last_name", levels, {3: 0.9, 2: 0.05, 1: 0.03, 0: 0.02}, {3: 0.01, 2: 0.01, 1: 0.01, 0: 0.97},
                                 having=500)
    model = agreement.AgreementModel([field], prior=-10.0, threshold=4.0, expected_pairs=1000.0, records=1000)
    assert agreement.own_records(model) == pytest.approx([2 * 1000 / 1000 * 0.5 * 0.9])


def test_matching_pairs_are_estimated_alike_when_some_records_lack_a_blocking_keys_field(tmp_path):
    """Each of 240 people twice. Blanking the last name on a third of the records, each record
    apart from the other (as a source that often leaves it blank does), leaves as many
    duplicates; the name keys only see the pairs whose two records both have one, so the
    estimate scales their matches by the share of pairs that do (else 4/9 of them)."""
    people = background()
    twice = people + [{**row, "id": f"{row['id']}b", "email": f"{row['id']}b@mail.com"} for row in people]
    # person i's first record is blanked where (i % 9) // 3 == 0, its second where i % 3 == 0:
    # each a third of the records, independently, so 4/9 of the people keep both last names
    lacking = {f"bg{i}" for i in range(240) if (i % 9) // 3 == 0} | {f"bg{i}b" for i in range(240) if i % 3 == 0}
    estimates = []
    for blank in (False, True):
        rows = [{**row, "last": None} if blank and row["id"] in lacking else row for row in twice]
        lander = Lander({"resolve_on_finish": False, "mappings": PEOPLE, "report_dir": str(tmp_path / f"r{blank}"),
                         "path": str(tmp_path / f"p{blank}.duckdb")})
        lander.land("crm", "people", rows)
        with lander.store() as store:
            api.build(store, report=False)
            estimates.append(float(store.engine.scalar("SELECT matching_pairs FROM tl_model")))
    assert estimates[0] == pytest.approx(240, rel=0.15)
    assert estimates[1] == pytest.approx(estimates[0], rel=0.15)


@pytest.mark.postgres
def test_duckdb_and_postgres_give_the_same_agreement_links(tmp_path, pg_schema):
    rows = [maria(1, email="lopez.family@mail.com"), maria(2, last="Lopes", dob="1980-03-02"),
            maria(3, first="Lopez", last="Maria", street="12 Oak St"), maria(4, first="Jose", dob="1978-05-06", email="lopez.family@mail.com"),
            maria(5, ssn="123-45-6789"), maria(6, ssn="123-45-6798", street="12 Oak St")]
    results = []
    for engine in ("duckdb", "postgres"):
        store = build(tmp_path, rows, engine=engine, schema=pg_schema)
        try:
            links = sorted((r["record_key"], r["linked_record_key"], r["rule"], r["key"]) for r in store.engine.rows("SELECT * FROM tl_links"))
            dropped = sorted((r["rule"], r["reason"], r["links"]) for r in store.engine.rows("SELECT * FROM tl_dropped_links"))
            results.append((profiles_of(store), links, dropped, len(set(profile_ids(store).values()))))
        finally:
            store.close()
    assert together_in(results[0][0], "crm.people:1", "crm.people:2", "crm.people:3", "crm.people:5", "crm.people:6")
    assert results[0] == results[1]


def together_in(profiles: set[frozenset[str]], *keys: str) -> bool:
    return any(set(keys) <= p for p in profiles)


def test_a_placeholder_first_name_is_kept_raw_and_never_compared():
    from threadline_profiles.resolve.normalize import normalize_name

    assert normalize_name("Mom", "given").reason == "placeholder name"
    assert normalize_name("Lady in the", "given").status == "invalid"
    assert normalize_name("Patsy", "given").key == normalize_name("Patricia", "given").key


def test_levels_for_initials_typos_swapped_names_and_transposed_dates(tmp_path):
    engine = DuckDBEngine(tmp_path / "levels.duckdb")
    fields = ["first_name", "last_name", "birth_date"]
    rows = [("Maria", "Lopez", "1980-02-03", "Maria", "Lopez", "1980-02-03"),  # exact
            ("Maria", "Lopez", "1980-02-03", "Mria", "Lopes", "1980-03-02"),  # one edit; day and month swapped
            ("Maria", "Lopez", "1980-02-03", "Lopez", "Maria", "1980-12-03"),  # names the other way round; one edit
            ("M", "Lopez", "1980-02-03", "Maria", "Lopez", "1979-02-03"),  # an initial; two edits
            ("Al", "Lopez", "1980-02-03", "Ed", "Perez", "1951-07-19")]  # short names: no fuzzy level
    values = ", ".join("(" + ", ".join(f"'{v}'" for v in (i,) + row) + ")" for i, row in enumerate(rows))
    try:
        agreement.require_comparisons(engine)
        engine.run(work_table("pairs", f"AS SELECT * FROM (VALUES {values}) AS t(i, xf, xl, xd, yf, yl, yd)"))
        select = agreement.levels_select(fields)
        got = engine.rows(f"SELECT {select} FROM (SELECT i, xf AS first_name, xl AS last_name, xd AS birth_date FROM pairs) AS x "
                          "JOIN (SELECT i, yf AS first_name, yl AS last_name, yd AS birth_date FROM pairs) AS y ON x.i = y.i ORDER BY x.i")
    finally:
        engine.close()
    E, C, N, D = agreement.EXACT, agreement.CLOSE, agreement.NEAR, agreement.DIFFERENT
    assert [tuple(r.values()) for r in got] == [(E, E, E), (C, C, C), (C, C, C), (N, E, N), (D, D, D)]


def test_a_given_names_short_form_is_near_and_a_surnames_beginning_is_not(tmp_path):
    rows = [("kevin", "neal", "kev", "neal"), ("norman", "neal", "norm", "neal"), ("caroline", "neal", "carol", "neal"),
            ("jennifer", "anderson", "jenni", "and"), ("al", "neal", "albert", "neal"), ("kevin", "neal", "kelvin", "neal")]
    got = comparison_levels(DuckDBEngine(tmp_path / "short.duckdb"), ["first_name", "last_name"],
                            [(row[:2], row[2:]) for row in rows])
    E, C, N, D = agreement.EXACT, agreement.CLOSE, agreement.NEAR, agreement.DIFFERENT
    # kev/kevin, norm/norman, carol/caroline, jenni/jennifer: near; and/anderson is a
    # surname's beginning: different; al is too short to be read as albert's; kelvin: one edit
    assert got == [(N, E), (N, E), (N, E), (N, D), (D, E), (C, E)]


def test_a_nickname_from_the_maintained_list_is_near_and_an_unrelated_name_is_not(tmp_path):
    """Nicknames no short form covers (Nan for Anna, Teddy for Edward, Kathy and Kitty of one
    Katherine) come from the `nicknames` package and compare as near; names it does not
    relate stay different, and so does a surname."""
    rows = [("anna", "neal", "nan", "neal"), ("edward", "neal", "teddy", "neal"), ("kathy", "neal", "kitty", "neal"),
            ("anna", "neal", "maria", "neal"), ("ted", "edward", "ted", "teddy")]
    got = comparison_levels(DuckDBEngine(tmp_path / "nick.duckdb"), ["first_name", "last_name"],
                            [(row[:2], row[2:]) for row in rows])
    E, N, D = agreement.EXACT, agreement.NEAR, agreement.DIFFERENT
    assert got == [(N, E), (N, E), (N, E), (D, E), (E, D)]


def test_the_stored_model_scores_as_the_fitted_one_and_a_refit_estimates_again(resolved):
    """The first build fits the model and keeps it; a full build with the stored model gives
    the same links (weights, value frequencies, dictionary and the guard's judgement all read
    back as they were), and only a refit makes a new version."""
    from threadline_profiles.testing import snapshot

    store = resolved([maria(1), maria(2, last="Lopes", dob="1980-03-02"), maria(3, first="Lopez", last="Maria"),
                      maria(4, first="Jose", dob="1978-05-06")])
    fitted = snapshot(store, with_ids=True)
    head = store.engine.rows("SELECT version, records, pairs_used, guard FROM tl_model")
    assert len(head) == 1 and head[0]["records"] == 244 and head[0]["pairs_used"] > 0
    assert store.engine.scalar("SELECT COUNT(*) FROM tl_model_tf") > 0
    assert store.engine.scalar("SELECT COUNT(*) FROM tl_model_levels WHERE version = 1") > 0
    again = api.build(store, report=False, full=True)
    assert (again.model_version, again.refit) == (1, "")
    assert snapshot(store, with_ids=True) == fitted
    # what the stored model is read with decides: weights halved, the links change
    store.engine.execute("UPDATE tl_model_levels SET m = u WHERE level = 3")
    api.build(store, report=False, full=True)
    assert snapshot(store, with_ids=True)["tl_links"] != fitted["tl_links"]
    refit = api.build(store, report=False, refit=True)
    assert (refit.model_version, refit.refit) == (2, "the agreement model is fitted again: asked for")
    assert snapshot(store, with_ids=True)["tl_links"] == fitted["tl_links"]


def test_an_email_local_part_at_another_provider_is_close_with_or_without_separators(tmp_path):
    """william.hurley@outlook.com and williamhurley@gmail.com are one local part written two
    ways at two providers: close, as the same local part is; other digits stay different."""
    rows = [("william.hurley@outlook.com", "williamhurley@gmail.com"), ("kate_neal@aol.com", "kate.neal@gmail.com"),
            ("kate.neal@aol.com", "kate.neal@gmail.com"), ("kate.neal1@aol.com", "kateneal2@gmail.com"),
            ("kate.neal@aol.com", "karl.neal@gmail.com")]
    got = comparison_levels(DuckDBEngine(tmp_path / "mail.duckdb"), ["email"], [((x,), (y,)) for x, y in rows])
    C, D = agreement.CLOSE, agreement.DIFFERENT
    assert got == [(C,), (C,), (C,), (D,), (D,)]
