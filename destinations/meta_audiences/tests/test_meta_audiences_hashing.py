"""prepare(): Meta's normalization and SHA-256, checked against the digests Meta publishes.

Meta's worked examples (input → normalized → expected SHA-256) are in the customer information
parameters of the Marketing API, the same match keys and rules as customer-file audiences:
https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
Where Meta shows a normalized form but no digest (DOB parts, ZIP, city, state), the expected
digest is computed here independently with hashlib from the documented normalized value.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pytest
from threadline.contracts import MEMBER_COLUMNS, MEMBER_SCHEMA
from threadline_meta_audiences import MetaAudiences, MetaAudiencesConfig

# Meta's published examples, quoted from the page above.
META_EMAIL = ("John_Smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f")
META_PHONE = ("+1 (650)555-1212", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176")
META_NAMES = [("Mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
              ("정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
              ("Valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c")]
META_COUNTRY = ("US", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prepared(*members: dict[str, Any], **config: Any) -> list[dict[str, Any]]:
    rows = [{c: None for c in MEMBER_COLUMNS} | {"member_id": f"p{i}"} | m for i, m in enumerate(members)]
    cfg = MetaAudiencesConfig(access_token="t", audience_id="1", **config)
    return MetaAudiences().prepare(cfg, pa.Table.from_pylist(rows, schema=MEMBER_SCHEMA)).to_pylist()


def test_email_phone_and_names_match_metas_published_hashes():
    email, phone = META_EMAIL, META_PHONE
    rows = prepared(*({"email": email[0], "phone": phone[0], "first_name": name, "last_name": name,
                       "country": META_COUNTRY[0]} for name, _ in META_NAMES))
    for row, (_, name_hash) in zip(rows, META_NAMES):
        assert row["EMAIL"] == email[1]
        assert row["PHONE"] == phone[1]
        assert row["FN"] == name_hash and row["LN"] == name_hash
        assert row["COUNTRY"] == META_COUNTRY[1]


def test_email_is_trimmed_and_lower_cased():
    assert prepared({"email": "  John_Smith@GMAIL.com "})[0]["EMAIL"] == META_EMAIL[1]


def test_phone_keeps_digits_with_country_code_and_no_leading_zeros():
    rows = prepared({"phone": "+16505551212"}, {"phone": "0044 20 7183 8750"}, {"phone": "(650) 555-1212"})
    assert rows[0]["PHONE"] == META_PHONE[1]
    assert rows[1]["PHONE"] == sha("442071838750")
    assert rows[2]["PHONE"] == sha("6505551212"), "no country code is invented for a number without one"


def test_names_drop_punctuation_and_spaces_keep_non_ascii_letters_and_compose_accents():
    rows = prepared({"first_name": "Anne-Marie", "last_name": "O'Neil Smith"},
                    {"first_name": "Vale\u0301ry", "last_name": "Müller."})  # é as e + combining accent
    assert (rows[0]["FN"], rows[0]["LN"]) == (sha("annemarie"), sha("oneilsmith"))
    assert rows[1]["FN"] == META_NAMES[2][1], "a decomposed é must hash like Meta's composed one"
    assert rows[1]["LN"] == sha("müller")


def test_first_initial_is_the_first_letter_of_the_first_name():
    assert prepared({"first_name": " 'Élodie"})[0]["FI"] == sha("é")


def test_city_state_zip_country_follow_metas_formats():
    rows = prepared(
        {"city": "New York", "region": "New York", "postal_code": "10001-1234", "country": "us"},
        {"city": "Menlo Park", "region": "CA", "postal_code": " 94035 ", "country": "US"},
        {"city": "London", "region": "Greater London", "postal_code": "M1 1AE", "country": "GB"},
    )
    assert [r["CT"] for r in rows] == [sha("newyork"), sha("menlopark"), sha("london")]
    assert [r["ST"] for r in rows] == [sha("ny"), sha("ca"), sha("greaterlondon")]
    assert [r["ZIP"] for r in rows] == [sha("10001"), sha("94035"), sha("m11ae")]
    assert [r["COUNTRY"] for r in rows] == [sha("us"), sha("us"), sha("gb")]


def test_birth_date_becomes_year_month_and_day_keys():
    row = prepared({"birth_date": "1997-02-16"})[0]  # Meta's example date, 2/16/1997
    assert (row["DOBY"], row["DOBM"], row["DOBD"]) == (sha("1997"), sha("02"), sha("16"))


def test_unusable_values_are_left_out_not_hashed():
    row = prepared({"email": " . ", "phone": "n/a", "birth_date": "1850-01-01", "country": "Atlantis", "first_name": "--"})[0]
    assert [row[k] for k in ("EMAIL", "PHONE", "DOBY", "DOBM", "DOBD", "COUNTRY", "FN", "FI")] == [None] * 8


def test_extern_id_is_the_profile_id_unhashed_and_only_when_asked():
    assert "EXTERN_ID" not in prepared({"email": "a@b.co"})[0]
    row = prepared({"email": "a@b.co"}, extern_id=True)[0]
    assert row["EXTERN_ID"] == "p0"


def test_only_the_configured_keys_are_prepared_in_their_order():
    row = prepared({"email": "a@b.co", "phone": "+15125550100"}, identifiers=["PHONE", "EMAIL"])[0]
    assert list(row) == ["member_id", "PHONE", "EMAIL"]


def test_every_member_keeps_a_row_even_with_no_identifier():
    assert [r["member_id"] for r in prepared({}, {"email": "a@b.co"})] == ["p0", "p1"]


# Issue 14: every script, Meta's rules (lower-case, letters only, UTF-8), not only Latin.
NON_LATIN_NAMES = [
    ("Korean", "김 민준", "김민준"),
    ("Cyrillic", "Пётр-Ильич", "пётрильич"),
    ("Chinese", "王 小明", "王小明"),
    ("Arabic", "مُحَمَّد", "مُحَمَّد"),  # harakat are combining marks of the name: kept
    ("Greek", "ΟΔΥΣΣΕΑΣ", "οδυσσεας"),  # the last sigma is final, as Unicode lower-cases it
    ("Devanagari", "प्रिया", "प्रिया"),  # vowel signs and virama are marks: without them it reads परय
]


@pytest.mark.parametrize(("script", "raw", "normalized"), NON_LATIN_NAMES, ids=[s for s, _, _ in NON_LATIN_NAMES])
def test_names_in_every_script_are_lower_cased_and_hashed_in_utf8(script, raw, normalized):
    row = prepared({"first_name": raw, "last_name": raw, "city": raw})[0]
    assert row["FN"] == row["LN"] == row["CT"] == sha(normalized)
    assert row["FI"] == sha(normalized[0])


def test_greek_names_hash_alike_in_capitals_and_in_their_written_form():
    rows = prepared({"first_name": "ΟΔΥΣΣΕΑΣ ΝΙΚΟΣ"}, {"first_name": "Οδυσσεας Νικος"})
    assert rows[0]["FN"] == rows[1]["FN"] == sha("οδυσσεαςνικος")


def test_country_names_and_codes_become_iso_alpha2_through_pycountry():
    given = ["UK", "South Korea", "GBR", "Deutschland", "대한민국", "Ελλάδα", " U.S.A. ", "Côte d'Ivoire"]
    rows = prepared(*({"country": c} for c in given))
    assert [r["COUNTRY"] for r in rows] == [sha(c) for c in ("gb", "kr", "gb", "de", "kr", "gr", "us", "ci")]


def test_us_state_names_apply_to_a_country_written_as_a_name():
    row = prepared({"country": "United States of America", "region": "New York", "postal_code": "10001-1234"})[0]
    assert (row["ST"], row["ZIP"]) == (sha("ny"), sha("10001"))


@pytest.mark.parametrize(("raw", "normalized"), [
    ("José.Núñez@Example.es", "josé.núñez@example.es"),  # a non-ASCII local part (RFC 6531)
    ("taro.@docomo.ne.jp", "taro.@docomo.ne.jp"),  # a dot ending the local part: a real Japanese carrier address
    ("Ann@Example.com.", "ann@example.com"),  # a trailing dot: trimmed, as facebook_business's format_params does
    ("用户@例子.广告", "用户@例子.广告"),
])
def test_valid_emails_are_hashed_not_dropped(raw, normalized):
    assert prepared({"email": raw})[0]["EMAIL"] == sha(normalized)


def test_email_normalization_matches_the_official_sdks_for_custom_audiences():
    format_params = pytest.importorskip("facebook_business.adobjects.customaudience").CustomAudience.format_params
    emails = ["John_Smith@gmail.com", " Ann@Example.com. ", "José.Núñez@Example.es", "taro.@docomo.ne.jp"]
    expected = format_params("EMAIL_SHA256", emails)["payload"]["data"]
    assert [r["EMAIL"] for r in prepared(*({"email": e} for e in emails))] == expected
