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
    row = prepared({"email": "  ", "phone": "n/a", "birth_date": "1850-01-01", "country": "USA", "first_name": "--"})[0]
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
