"""Names read from contact details (display names, email local parts, social handles) and
emails compared in the agreement rule: the comparisons customer data needs when a
newsletter sign-up or a social follower shares no email or phone with a CRM contact."""

from __future__ import annotations

import os

import pytest
from threadline_profiles.engines import DuckDBEngine
from threadline_profiles.engines.base import work_table
from threadline_profiles.resolve import agreement, hints
from threadline_profiles.testing import comparison_levels, together

PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

# (rid, field, value, match_key): the store's own names, then the records whose names are read.
KNOWN = [(1, "first_name", "Kelly", "kelly"), (1, "last_name", "Neal", "neal"),
         (2, "first_name", "Kate", "katherine"), (2, "last_name", "Okafor", "okafor")]
CASES = {  # rid: (own first name key, own last name key, [(field, value, match_key)]) -> filled (first, last)
    10: (None, None, [("email", "kelly.neal@mail.com", "kelly.neal@mail.com")], ("kelly", "neal")),
    11: ("kelly", None, [("email", "kneal1985@mail.com", "kneal1985@mail.com")], ("kelly", "neal")),
    12: (None, None, [("email", "okafor_kate@mail.com", "okafor_kate@mail.com")], ("katherine", "okafor")),
    13: (None, None, [("social_handle", "@the_kateokafor", "the_kateokafor")], ("katherine", "okafor")),
    14: (None, None, [("full_name", "Kate O.", "kateo")], ("katherine", "o")),
    15: (None, None, [("social_handle", "@sunny_tiger42", "sunny_tiger42")], (None, None)),
    16: ("maria", None, [("email", "kelly.neal@mail.com", "kelly.neal@mail.com")], ("maria", None)),  # someone else's
    18: (None, None, [("email", "kelly.xyzzy@mail.com", "kelly.xyzzy@mail.com")], ("kelly", None)),  # xyzzy: no one's name
    17: (None, None, [("full_name", "Kelly", "kelly"), ("social_handle", "@kneal85", "kneal85")], ("kelly", "neal")),
    # "Kelly N." has only an initial of a last name: the handle fills it where it begins so
    19: ("kelly", "n", [("social_handle", "@kellyneal", "kellyneal")], ("kelly", "neal")),
    20: ("kelly", "o", [("social_handle", "@kellyneal", "kellyneal")], ("kelly", "o")),  # another initial: not hers
    # the display name gives a last initial, the handle the full last name beginning with it
    21: (None, None, [("full_name", "Kelly N.", "kellyn"), ("social_handle", "@kneal85", "kneal85")], ("kelly", "neal")),
}


def _filled(engine) -> dict[int, tuple]:
    nv = [(rid, f, v, k) for rid, f, v, k in KNOWN]
    nv += [(rid, f, v, k) for rid, (_, _, values, _) in CASES.items() for f, v, k in values]
    person = [(1, "kelly", "neal"), (2, "katherine", "okafor")]
    person += [(rid, first, last) for rid, (first, last, _, _) in CASES.items() if first or last]

    def rows(values):
        return ", ".join("(" + ", ".join("NULL" if x is None else str(x) if isinstance(x, int) else f"'{x}'" for x in r) + ")"
                         for r in values)

    engine.run([
        work_table("tl_work_nv", f"AS SELECT rid, field, value, match_key, 'ok' AS status FROM (VALUES {rows(nv)}) "
                                 "AS t(rid, field, value, match_key)"),
        work_table("tl_work_person", "(rid BIGINT, first_name VARCHAR, last_name VARCHAR, birth_year VARCHAR)"),
        f"INSERT INTO tl_work_person (rid, first_name, last_name) VALUES {rows(person)}",
    ])
    hints.fill(engine, ["first_name", "last_name", "birth_year"])
    return {r["rid"]: (r["first_name"], r["last_name"], r["birth_year"]) for r in engine.rows("SELECT * FROM tl_work_person")}


def _assert_readings(got: dict[int, tuple]) -> None:
    for rid, (*_, want) in CASES.items():
        assert got.get(rid, (None, None, None))[:2] == want, rid
    # a birth year where an address spells out one (kneal1985), never from two digits (kneal85)
    assert {rid: year for rid, (_, _, year) in got.items() if year} == {11: "1985"}


def test_names_are_read_from_local_parts_handles_and_display_names_with_the_stores_own_names(tmp_path):
    engine = DuckDBEngine(tmp_path / "hints.duckdb")
    try:
        _assert_readings(_filled(engine))
    finally:
        engine.close()


def test_postgres_reads_the_same_names(pg_schema):
    from threadline_profiles.engines.postgres_engine import PostgresEngine

    engine = PostgresEngine(PG_DSN, pg_schema)
    try:
        _assert_readings(_filled(engine))
    finally:
        engine.close()


def test_emails_within_two_edits_or_at_another_provider_are_close_not_equal(tmp_path):
    pairs = [("kelly.neal@gmail.com", "kelly.neal@gmail.com"), ("kelly.neal@gmail.com", "kelly.neal@yahoo.com"),
             ("kelly.neal@gmail.com", "kelly.nea@gmail.com"), ("kelly.neal@gmail.com", "kelly.nael@gmail.com"),
             ("kelly.neal@gmail.com", "maria.lopez@gmail.com"),
             # numbers tell people apart: two customers of one name, two birth years
             ("sofia.jones102@example.com", "sofia.jones532@example.com"), ("kelly1985@mail.com", "kelly1986@mail.com"),
             ("kelly1985@gmail.com", "kelly1985@yahoo.com"), ("kelly1985@mail.com", "kely1985@mail.com")]
    got = comparison_levels(DuckDBEngine(tmp_path / "levels.duckdb"), ["email"], [((a,), (b,)) for a, b in pairs])
    E, C, N, D = agreement.EXACT, agreement.CLOSE, agreement.NEAR, agreement.DIFFERENT
    assert [level for (level,) in got] == [E, C, C, N, D, D, D, C, C]


FIRST = ["olivia", "liam", "emma", "noah", "ava", "elijah", "sophia", "lucas", "mia", "mason", "harper", "ethan"]
LAST = ["nguyen", "schmidt", "rossi", "kowalski", "tanaka", "haddad", "murphy", "silva", "jensen", "novak"]
MAPPINGS = {
    "crm.contacts": {"identifiers": {"email": "email"},
                     "traits": {"first_name": "first", "last_name": "last", "birth_date": "dob", "city": "city"}},
    "social.followers": {"identifiers": {"handle": "social_handle"}, "traits": {"full_name": "display", "city": "city"}},
}


def _crm(n: int = 200) -> list[dict]:
    return [{"id": f"c{i}", "first": FIRST[i % len(FIRST)].title(), "last": LAST[(i * 7) % len(LAST)].title(),
             "dob": f"{1950 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}", "city": ["Austin", "Dallas"][i % 2],
             "email": f"{FIRST[i % len(FIRST)]}{i}@mail.com"} for i in range(n)]


def _followers(n: int = 60) -> list[dict]:
    return [{"id": f"s{i}", "handle": f"@fan{i}", "display": f"{FIRST[(i * 5) % len(FIRST)].title()} {LAST[i % len(LAST)][0]}.",
             "city": "Dallas"} for i in range(n)]


@pytest.mark.parametrize("display", ["Katherine Okonkwo-Bell", "kokonkwobell"])
def test_a_follower_with_a_display_name_or_a_handle_joins_the_crm_contact_it_names(resolve_with, display):
    crm = _crm() + [{"id": "kb", "first": "Katherine", "last": "Okonkwo-Bell", "dob": "1985-04-09", "city": "Seattle",
                     "email": "kb@work.com"}]
    followers = _followers() + [{"id": "kb", "handle": "@kathy_okonkwobell" if display == "kokonkwobell" else "@k_ob",
                                 "display": display, "city": "Seattle"}]
    store = resolve_with({"crm.contacts": crm, "social.followers": followers}, MAPPINGS)
    assert together(store, "crm.contacts:kb", "social.followers:kb")


def test_without_name_hints_the_follower_stays_apart(resolve_with):
    crm = _crm() + [{"id": "kb", "first": "Katherine", "last": "Okonkwo-Bell", "dob": "1985-04-09", "city": "Seattle",
                     "email": "kb@work.com"}]
    followers = _followers() + [{"id": "kb", "handle": "@k_ob", "display": "Katherine Okonkwo-Bell", "city": "Seattle"}]
    store = resolve_with({"crm.contacts": crm, "social.followers": followers}, MAPPINGS, agreement={"name_hints": False})
    assert not together(store, "crm.contacts:kb", "social.followers:kb")


def _person_rows(engine, nv: list[tuple], fields: list[str]) -> dict[int, dict]:
    """tl_work_person (link.person_sql) of the normalized values `nv` (rid, field, value,
    match_key), by record; closes the engine."""
    from threadline_profiles.resolve import link

    try:
        values = ", ".join(f"({r}, '{f}', '{v}', '{k}')" for r, f, v, k in nv)
        engine.run([work_table(
            "tl_work_nv",
            f"AS SELECT rid, field, value, match_key, 'ok' AS status FROM (VALUES {values}) "
            "AS t(rid, field, value, match_key)"), link.person_sql(fields)])
        return {r["rid"]: r for r in engine.rows("SELECT * FROM tl_work_person")}
    finally:
        engine.close()


def test_a_username_is_a_handle_or_else_a_local_part_without_separators_or_filler(tmp_path):
    nv = [(1, "social_handle", "@the_kateneal", "the_kateneal"), (1, "email", "x@mail.com", "x@mail.com"),
          (2, "email", "Kate.Neal@mail.com", "kate.neal@mail.com"), (3, "email", "kneal_1985@mail.com", "kneal_1985@mail.com"),
          (4, "email", "al@mail.com", "al@mail.com"), (5, "first_name", "Kate", "katherine")]
    got = _person_rows(DuckDBEngine(tmp_path / "username.duckdb"), nv, ["first_name", "email", "username"])
    assert {rid: r["username"] for rid, r in got.items()} == {1: "kateneal", 2: "kateneal", 3: "kneal1985", 4: None, 5: None}


def test_usernames_compare_where_a_record_has_no_address_and_their_numbers_tell_people_apart(tmp_path):
    engine = DuckDBEngine(tmp_path / "levels.duckdb")
    pairs = [("kateneal", None, "kateneal", "kate.neal@mail.com"),  # a handle against an address
             ("kateneal", "k@mail.com", "kateneal", "kate.neal@mail.com"),  # both have addresses: the email field compares
             ("sunnytiger42", None, "sunnytiger43", "sunnytiger43@mail.com"),  # other numbers: another person
             ("kateneal", None, "katneal", "katneal@mail.com"),  # one edit
             ("kevm1", None, "kevm111", None)]  # two handles, other numbers: two people
    values = ", ".join(f"({i}, '{a}', {'NULL' if ea is None else repr(ea)}, '{b}', {'NULL' if eb is None else repr(eb)})"
                       for i, (a, ea, b, eb) in enumerate(pairs))
    try:
        engine.run(work_table("pairs", f"AS SELECT * FROM (VALUES {values}) AS t(i, a, ea, b, eb)"))
        got = engine.rows(f"SELECT {agreement.levels_select(['email', 'username'])} FROM "
                          "(SELECT i, a AS username, ea AS email FROM pairs) AS x "
                          "JOIN (SELECT i, b AS username, eb AS email FROM pairs) AS y ON x.i = y.i ORDER BY x.i")
    finally:
        engine.close()
    assert [r["l1"] for r in got] == [agreement.EXACT, None, agreement.DIFFERENT, agreement.CLOSE, agreement.DIFFERENT]


SUBSCRIBERS = {"esp.subscribers": {"identifiers": {"email": "email"}, "traits": {"first_name": "first", "last_name": "last"}}}
NO_USERNAME = {"fields": ["first_name", "last_name", "birth_date", "city", "email"]}


@pytest.mark.parametrize("handle, settings, joins", [("@sunnytiger42", {}, True), ("@sunnytiger43", {}, False),
                                                     ("@sunnytiger42", NO_USERNAME, False)],
                         ids=["same-username", "other-number", "usernames-not-compared"])
def test_a_follower_joins_the_subscriber_whose_address_is_its_handle(resolve_with, handle, settings, joins):
    subscribers = [{"id": f"e{i}", "email": f"{FIRST[i % len(FIRST)]}.{LAST[(i * 3) % len(LAST)]}{i}@mail.com",
                    "first": FIRST[i % len(FIRST)].title(), "last": None} for i in range(150)]
    subscribers.append({"id": "m", "email": "sunnytiger42@gmail.com", "first": "Maria", "last": "Gonzalez"})
    followers = _followers() + [{"id": "m", "handle": handle, "display": "Maria Gonzalez", "city": None}]
    store = resolve_with({"crm.contacts": _crm(), "esp.subscribers": subscribers, "social.followers": followers},
                         {**MAPPINGS, **SUBSCRIBERS}, agreement=settings)
    assert together(store, "esp.subscribers:m", "social.followers:m") is joins


HANDLE_YEARS = [(1, "social_handle", "@rburris59", "rburris59"), (1, "email", "rb1961@mail.com", "rb1961@mail.com"),
                (2, "email", "hkingsley1973@mail.com", "hkingsley1973@mail.com"),
                (3, "email", "sofia.jones102@mail.com", "sofia.jones102@mail.com"), (4, "social_handle", "@kate_neal", "kate_neal"),
                (5, "birth_date", "1984-02-03", "1984-02-03"), (6, "birth_year", "1990", "1990"),
                (6, "social_handle", "@kelly77", "kelly77")]
# (handle year, own birth year's last two digits) by record
HANDLE_YEARS_READ = {1: ("59", None), 2: ("73", None), 3: (None, None), 4: (None, None), 5: (None, "84"), 6: ("77", "90")}


def _handle_years(engine) -> dict[int, tuple]:
    got = _person_rows(engine, HANDLE_YEARS, ["birth_date", "birth_year", "handle_year"])
    return {rid: (r["handle_year"], r["birth_yy"]) for rid, r in got.items()}


def test_a_handle_year_is_the_last_two_digits_of_a_year_like_number_in_a_handle_or_else_an_address(tmp_path):
    assert _handle_years(DuckDBEngine(tmp_path / "handle_year.duckdb")) == HANDLE_YEARS_READ


def test_postgres_reads_the_same_handle_years(pg_schema):
    from threadline_profiles.engines.postgres_engine import PostgresEngine

    assert _handle_years(PostgresEngine(PG_DSN, pg_schema)) == HANDLE_YEARS_READ


def test_a_handle_year_compares_only_with_the_other_records_own_birth_year(tmp_path):
    # (birth_yy, birth_year, handle_year) of x and y
    pairs = [(("59", "1959", None), (None, None, "59")),  # a birth date against rburris59
             ((None, None, "59"), ("59", "1959", None)),  # either way round
             (("59", "1959", None), (None, None, "61")),  # another year in the handle
             ((None, None, "59"), (None, None, "59")),  # two handles: their digits are not compared
             (("59", "1959", "59"), ("61", "1961", "59")),  # both have their own: the birth fields compare them
             (("59", "1959", None), (None, "1959", "59"))]  # a year read from the handle (kneal1959): the birth year compares it
    got = comparison_levels(DuckDBEngine(tmp_path / "levels.duckdb"), ["birth_yy", "birth_year", "handle_year"], pairs)
    assert [levels[2] for levels in got] == [agreement.EXACT, agreement.EXACT, agreement.DIFFERENT, None, None, None]


def _handle_year_stores(year: str, display: str | None) -> tuple[dict, dict]:
    # CRM contacts born in many years, and followers whose handles carry years; the follower
    # "rb" shows the name of the contact "rb" (a rare one: alone it does not reach the
    # threshold in this store) and two digits.
    crm = _crm() + [{"id": "rb", "first": "Rebecca", "last": "Burris", "dob": "1959-06-14", "city": "Austin", "email": None}]
    followers = [{"id": f"s{i}", "handle": f"@{FIRST[i % len(FIRST)][0]}{LAST[(i * 3) % len(LAST)]}{50 + i % 40}",
                  "display": None, "city": None} for i in range(120)]
    followers.append({"id": "rb", "handle": f"@rburris{year}", "display": display, "city": None})
    return {"crm.contacts": crm, "social.followers": followers}, MAPPINGS


@pytest.mark.parametrize("year, settings, joins", [
    ("59", {}, True),  # her birth year in her handle
    ("59", {"fields": ["first_name", "middle_name", "last_name", "birth_date", "birth_year", "city", "email", "username"]}, False),
    ("83", {}, False),  # another year
], ids=["birth-year-in-handle", "handle-year-not-compared", "other-year"])
def test_a_follower_joins_the_contact_whose_birth_year_ends_in_the_digits_of_its_handle(resolve_with, year, settings, joins):
    streams, mappings = _handle_year_stores(year, "Rebecca Burris")
    store = resolve_with(streams, mappings, agreement=settings)
    assert together(store, "crm.contacts:rb", "social.followers:rb") is joins


def test_handle_digits_that_happen_to_be_a_contacts_birth_year_do_not_join_someone_of_another_name(resolve_with):
    streams, mappings = _handle_year_stores("59", "Kevin Burris")  # born in 1959 too: her brother
    store = resolve_with(streams, mappings)
    assert not together(store, "crm.contacts:rb", "social.followers:rb")
