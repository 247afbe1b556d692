"""Stage 3, normalize: each kind of value, one behaviour per test."""

from __future__ import annotations

import pyarrow as pa
from threadline_profiles.resolve.normalize import (
    normalize_country,
    normalize_date,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_social_handle,
)
from threadline_profiles.resolve.normalize_bulk import normalize_distinct
from threadline_profiles.resolve.placeholders import Blocklist


def test_an_email_is_trimmed_and_lower_cased():
    assert normalize_email("  Ana.Lee@Mail.COM ").value == "ana.lee@mail.com"


def test_an_email_without_an_at_sign_is_invalid():
    assert (normalize_email("ana.mail.com").status, normalize_email("ana.mail.com").reason) == ("invalid", "no @")


def test_an_email_with_bad_syntax_is_invalid():
    assert normalize_email("ana@@mail..com").status == "invalid"


def test_gmail_canonical_key_drops_dots_and_plus_tags_and_the_alias_domain():
    assert normalize_email("A.n.a+news@googlemail.com").key == "ana@gmail.com"


def test_other_providers_keep_dots_in_the_canonical_key():
    assert normalize_email("a.na+x@outlook.com").key == "a.na@outlook.com"


def test_a_national_phone_uses_the_default_region():
    assert normalize_phone("(415) 555-2671", "US").value == "+14155552671"


def test_an_international_phone_ignores_the_default_region():
    assert normalize_phone("+44 20 7946 0958", "US").value == "+442079460958"


def test_a_national_phone_without_a_region_is_invalid_not_guessed():
    assert normalize_phone("4155552671", "").status == "invalid"


def test_an_unparseable_phone_is_invalid():
    assert normalize_phone("call me", "US").status == "invalid"


def test_a_phone_of_the_wrong_length_is_invalid():
    assert normalize_phone("12345", "US").reason in {"wrong length", "not a valid number"}


def test_a_name_drops_titles_and_suffixes_and_fixes_all_caps():
    result = normalize_name("DR. JOHN SMITH JR.")
    assert (result.value, result.key) == ("John Smith", "johnsmith")


def test_a_name_key_strips_accents():
    assert normalize_name("José").key == normalize_name("Jose").key


def test_a_given_names_key_maps_nicknames_to_the_formal_name():
    assert normalize_name("Bill", "given").key == "william"


def test_a_date_is_read_with_the_declared_format():
    assert normalize_date("03/04/2020", "%d/%m/%Y").value == "2020-04-03"


def test_a_date_readable_two_ways_is_flagged_ambiguous():
    result = normalize_date("03/04/2020", "%d/%m/%Y||%m/%d/%Y")
    assert (result.status, result.value) == ("ambiguous", None)


def test_a_date_that_fits_no_declared_format_is_invalid():
    assert normalize_date("2020.04.03", "%d/%m/%Y").reason == "unparseable date"


def test_a_year_alone_is_not_a_date_and_the_reason_names_birth_year():
    assert normalize_date("1974").reason == "a year alone is not a date (map the column as birth_year)"


def test_an_undeclared_slash_date_is_read_only_when_unambiguous():
    assert normalize_date("13/04/2020").value == "2020-04-13"
    assert normalize_date("03/04/2020").status == "ambiguous"


def test_a_country_name_becomes_its_iso_code():
    assert normalize_country("United Kingdom").value == "GB"


def test_a_social_handle_from_a_profile_url_is_the_handle():
    assert normalize_social_handle("https://instagram.com/Ana_Lee/").key == "ana_lee"


def test_placeholders_are_blocked_with_a_reason():
    values = pa.table({"kind": ["email", "phone", "email"], "hint": ["", "US", ""], "raw": ["test@test.com", "0000000000", "ana@mail.com"]})
    out = {r["raw"]: (r["status"], r["reason"]) for r in normalize_distinct(values, Blocklist()).to_pylist()}
    assert out["test@test.com"] == ("blocked", "placeholder email")
    assert out["0000000000"][0] == "invalid"
    assert out["ana@mail.com"] == ("ok", "")


def test_the_bulk_and_scalar_email_normalizers_agree():
    raws = ["  Ana.Lee+x@GMail.com", "mailto:a@b.com", "bad", "a@b.c", "x@outlook.com", "<z@mail.com>", "a..b@mail.com"]
    out = normalize_distinct(pa.table({"kind": ["email"] * len(raws), "hint": [""] * len(raws), "raw": raws}), Blocklist())
    for row in out.to_pylist():
        scalar = normalize_email(row["raw"])
        assert (row["value"], row["match_key"], row["status"]) == (scalar.value, scalar.key, scalar.status), row["raw"]


def test_the_bulk_and_scalar_phone_normalizers_agree():
    cases = [("(415) 555-2671", "US"), ("0044 20 7946 0958", "US"), ("020 7946 0958", "GB"), ("12", "US"), ("call me", "US"),
             ("+49 30 901820", "DE"), ("14155552671", "US"), ("+442079460958", ""), ("4155552671", ""), ("07700 900123", "GB")]
    table = pa.table({"kind": ["phone"] * len(cases), "hint": [h for _, h in cases], "raw": [r for r, _ in cases]})
    for row in normalize_distinct(table, Blocklist()).to_pylist():
        scalar = normalize_phone(row["raw"], row["hint"])
        assert (row["value"], row["status"]) == (scalar.value, scalar.status), row["raw"]


def test_configured_patterns_block_bulk_identifiers():
    table = pa.table({"kind": ["email", "email"], "hint": ["", ""], "raw": ["a@corp.internal.com", "b@mail.com"]})
    out = {r["raw"]: r["status"] for r in normalize_distinct(table, Blocklist.from_config([], [r"\.internal\."])).to_pylist()}
    assert out == {"a@corp.internal.com": "blocked", "b@mail.com": "ok"}


def test_names_in_every_script_keep_their_letters_and_latin_accents_fold():
    # a name written in Hangul, Cyrillic, Han, Arabic, Greek or Devanagari is a name, not "no letters"
    keys = {raw: normalize_name(raw).key for raw in ["김민준", "Пётр Иванов", "王小明", "محمد", "Οδυσσέας", "प्रिया"]}
    assert keys == {"김민준": "김민준", "Пётр Иванов": "пётриванов", "王小明": "王小明", "محمد": "محمد",
                    "Οδυσσέας": "οδυσσέασ", "प्रिया": "प्रिया"}
    assert normalize_name("José Núñez").key == normalize_name("jose nunez").key == "josenunez"
    assert normalize_name("12345").reason == "no letters"


def test_addresses_mail_systems_deliver_are_valid_in_any_script():
    for raw, key in [("José.Núñez@Example.es", "josé.núñez@example.es"), ("taro.@docomo.ne.jp", "taro.@docomo.ne.jp"),
                     ("ann@example.com.", "ann@example.com"), ("用户@例子.广告", "用户@例子.广告")]:
        assert (normalize_email(raw).status, normalize_email(raw).key) == ("ok", key), raw
    for raw in ["a b@mail.com", ".a@mail.com", "a..b@mail.com", "ana@mail", "ana@mail..com"]:
        assert normalize_email(raw).status == "invalid", raw


def test_the_bulk_and_scalar_email_normalizers_agree_beyond_ascii():
    raws = ["José.Núñez@Example.es", "taro.@docomo.ne.jp", "ann@example.com.", "用户@例子.广告", "a b@mail.com"]
    out = normalize_distinct(pa.table({"kind": ["email"] * len(raws), "hint": [""] * len(raws), "raw": raws}), Blocklist())
    for row in out.to_pylist():
        scalar = normalize_email(row["raw"])
        assert (row["value"], row["match_key"], row["status"]) == (scalar.value, scalar.key, scalar.status), row["raw"]


def test_a_well_formed_phone_in_an_unassigned_range_still_identifies_a_person():
    # 247 and 999 are no US area code today; a customer file's numbers are kept all the same.
    cases = [("(247) 555-2671", "US"), ("+1 999 555 2671", ""), ("(123) 555-2671", "US"), ("(415) 555-267", "US")]
    scalar = [normalize_phone(raw, region) for raw, region in cases]
    assert [(n.value, n.status, n.reason) for n in scalar] == [
        ("+12475552671", "ok", ""), ("+19995552671", "ok", ""),
        (None, "invalid", "not a well-formed number"),  # no US area code begins with 1
        (None, "invalid", "wrong length")]
    table = pa.table({"kind": ["phone"] * len(cases), "hint": [h for _, h in cases], "raw": [r for r, _ in cases]})
    bulk = {r["raw"]: (r["value"], r["status"]) for r in normalize_distinct(table, Blocklist()).to_pylist()}
    assert [bulk[raw] for raw, _ in cases] == [(n.value, n.status) for n in scalar]


def test_a_birth_year_is_read_from_a_year_a_spreadsheet_number_or_a_date():
    from threadline_profiles.resolve.normalize import normalize_year

    assert [normalize_year(v).value for v in ["1980", " 1980.0 ", "1980-02-03"]] == ["1980", "1980", "1980"]
    assert [normalize_year(v).reason for v in ["80", "1850", ""]] == ["not a year", "implausible year", "empty"]
