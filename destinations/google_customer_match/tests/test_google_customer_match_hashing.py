"""Normalized, hashed identifiers match Google's published examples.

Sources of the expected digests:
- Data Manager API guide "Send audience members", section "Hash and encode the data":
  https://developers.google.com/data-manager/api/devguides/audiences/send-audience-members
  (dana@example.com, DanaM@example.com, cloudySanFrancisco@GMAIL.com, +1-800-555-0100).
- Google's Data Manager client library tests, googleads/data-manager-python tests/formatter_test.py
  (https://github.com/googleads/data-manager-python): "  GivenName  " → hash of "givenname",
  "  FamilyName " → hash of "familyname", "  ALEXZ@example.com   " → 509e9330…, and the
  gmail.com / googlemail.com rules of
  https://developers.google.com/data-manager/api/devguides/concepts/formatting.
Where Google publishes the normalized text but no digest (the googlemail.com and non-Google
+tag examples, the Ads API's trim-and-lower-case rule for a dotted gmail address) the
expected digest is computed here with hashlib from that text, and says so.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pytest
from threadline.contracts import MEMBER_COLUMNS, MEMBER_SCHEMA
from threadline_google_customer_match import GoogleCustomerMatch, GoogleDataManager
from threadline_google_customer_match.identifiers import ads_operations, data_manager_members

# Data Manager guide, "Hash and encode the data" (hex encoding)
DANA = "07e2f1394b0ea80e2adca010ea8318df697001a005ba7452720edda4b0ce57b3"  # dana@example.com
DANAM = "1df6b43bc68dd38eca94e6a65b4f466ae537b796c81a526918b40ac4a7b906c7"  # DanaM@example.com
CLOUDY = "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4"  # cloudySanFrancisco@GMAIL.com
PHONE_0100 = "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"  # +1-800-555-0100
# googleads/data-manager-python tests/formatter_test.py
ALEXZ = "509e933019bb285a134a9334b8bb679dff79d0ce023d529af4bd744d47b4fd8a"  # "  ALEXZ@example.com   "
GIVENNAME = "128a07bfe2df877c52076e60d7774cf5baaa046c5a6c48daf30ff43ecca2f814"  # "  GivenName  "
FAMILYNAME = "77762c287e61ce065bee5c15464012c6fbe088398b8057627d5577249430d574"  # "  FamilyName "

BOTH = [GoogleDataManager, GoogleCustomerMatch]


def member(**values: Any) -> dict[str, Any]:
    return {name: values.get(name) for name in MEMBER_COLUMNS} | {"member_id": values.get("member_id", "p1")}


def prepared(destination: type, *members: dict[str, Any]) -> list[dict[str, Any]]:
    table = pa.Table.from_pylist(list(members), schema=MEMBER_SCHEMA)
    return destination().prepare(None, table).to_pylist()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("destination", BOTH, ids=lambda d: d.name)
@pytest.mark.parametrize(("email", "digest"), [
    ("dana@example.com", DANA), ("DanaM@example.com", DANAM), ("cloudySanFrancisco@GMAIL.com", CLOUDY),
    ("  ALEXZ@example.com   ", ALEXZ), ("  alexz@EXAMPLE.com   ", ALEXZ),
])
def test_email_hash_matches_googles_published_example(destination, email, digest):
    assert prepared(destination, member(email=email))[0]["email_sha256"] == digest


@pytest.mark.parametrize("destination", BOTH, ids=lambda d: d.name)
@pytest.mark.parametrize("phone", ["+18005550100", "+1-800-555-0100", " +1 800 555 0100 "])
def test_phone_hash_is_e164_with_plus_as_in_googles_example(destination, phone):
    assert prepared(destination, member(phone=phone))[0]["phone_sha256"] == PHONE_0100


@pytest.mark.parametrize("destination", BOTH, ids=lambda d: d.name)
def test_names_hash_as_in_googles_formatter_tests_and_country_postal_stay_plain(destination):
    row = prepared(destination, member(first_name="  GivenName  ", last_name="  FamilyName ", country=" us", postal_code=" 1229-076  "))[0]
    assert (row["first_name_sha256"], row["last_name_sha256"]) == (GIVENNAME, FAMILYNAME)
    assert (row["country_code"], row["postal_code"]) == ("US", "1229-076"), "country and postal code are not hashed"


def test_data_manager_canonicalizes_google_account_emails_as_its_formatting_guide_says():
    rows = prepared(
        GoogleDataManager,
        member(member_id="a", email="Cloudy.SanFrancisco+shopping@gmail.com"),  # the guide's example → cloudysanfrancisco@gmail.com
        member(member_id="b", email="Jefferson.LOVES.Hiking@googlemail.com"),
        member(member_id="c", email="user.name+NYC@Example.com"),
        member(member_id="d", email=" dana @example.com"),  # intermediate whitespace goes too
    )
    assert rows[0]["email_sha256"] == CLOUDY
    # Google publishes the normalized text of these, not their digests: hashed here with hashlib
    assert rows[1]["email_sha256"] == sha("jeffersonloveshiking@googlemail.com")
    assert rows[2]["email_sha256"] == sha("user.name+nyc@example.com"), "dots and +tags stay outside gmail.com / googlemail.com"
    assert rows[3]["email_sha256"] == DANA


def test_google_ads_api_email_is_trimmed_and_lower_cased_only():
    # contract §5 and Google's Customer Match samples: trim, lower-case; no gmail rules (hashlib from the rule)
    row = prepared(GoogleCustomerMatch, member(email="  Cloudy.SanFrancisco+shopping@gmail.com "))[0]
    assert row["email_sha256"] == sha("cloudy.sanfrancisco+shopping@gmail.com")


@pytest.mark.parametrize("destination", BOTH, ids=lambda d: d.name)
def test_an_address_is_sent_only_whole(destination):
    rows = prepared(destination, member(member_id="a", email="a@example.com", first_name="Ann", last_name="Lee", country="US"),
                    member(member_id="b", first_name="Ann", last_name="Lee", country="US", postal_code="78701"))
    assert [rows[0][c] for c in ("first_name_sha256", "last_name_sha256", "country_code", "postal_code")] == [None] * 4
    assert rows[1]["first_name_sha256"] == sha("ann") and rows[1]["postal_code"] == "78701"


@pytest.mark.parametrize("destination", BOTH, ids=lambda d: d.name)
def test_blank_identifiers_are_missing_not_the_hash_of_nothing(destination):
    row = prepared(destination, member(email="   ", phone="", first_name=" "))[0]
    assert row["email_sha256"] is None and row["phone_sha256"] is None and row["first_name_sha256"] is None


def test_request_bodies_carry_the_hashes_under_each_apis_field_names():
    table = pa.Table.from_pylist([member(email="dana@example.com", phone="+18005550100", first_name="GivenName",
                                         last_name="FamilyName", country="US", postal_code="94043")], schema=MEMBER_SCHEMA)
    rows = GoogleDataManager().prepare(None, table)
    assert data_manager_members(rows) == [
        '{"userData":{"userIdentifiers":[{"emailAddress":"%s"},{"phoneNumber":"%s"},{"address":{"givenName":"%s",'
        '"familyName":"%s","regionCode":"US","postalCode":"94043"}}]}}' % (DANA, PHONE_0100, GIVENNAME, FAMILYNAME)]
    assert ads_operations(rows, "remove") == [
        '{"remove":{"userIdentifiers":[{"hashedEmail":"%s"},{"hashedPhoneNumber":"%s"},{"addressInfo":{"hashedFirstName":"%s",'
        '"hashedLastName":"%s","countryCode":"US","postalCode":"94043"}}]}}' % (DANA, PHONE_0100, GIVENNAME, FAMILYNAME)]
