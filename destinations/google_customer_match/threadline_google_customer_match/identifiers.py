"""What leaves the machine for Google: members normalized and hashed, then turned into request
bodies, all in DuckDB SQL over Arrow (no Python loop per member).

Prepared rows (both APIs; what the push ledger keeps):

    member_id           the profile id (never sent)
    email_sha256        SHA-256 hex of the normalized email
    phone_sha256        SHA-256 hex of the E.164 phone, '+' included
    first_name_sha256   SHA-256 hex of the trimmed, lower-case first name  } only when first name, last
    last_name_sha256    SHA-256 hex of the trimmed, lower-case last name   } name, country and postal
    country_code        ISO 3166 alpha-2, upper-case, NOT hashed           } code are all known: Google
                        (from a code or a name: `UK` → GB, threadline.activation's country_code)
    postal_code         trimmed, NOT hashed                                } matches an address only whole

Email normalization differs by API, each as Google documents it:
- Google Ads API (Customer Match): trim and lower-case
  (https://developers.google.com/google-ads/api/docs/remarketing/audience-segments/customer-match).
- Data Manager API: lower-case, all whitespace removed, and for gmail.com / googlemail.com
  addresses the dots and any '+suffix' of the local part removed
  (https://developers.google.com/data-manager/api/devguides/concepts/formatting).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from threadline.activation import prepare_members

PREPARED_COLUMNS = (
    "member_id", "email_sha256", "phone_sha256", "first_name_sha256", "last_name_sha256", "country_code", "postal_code",
)
PLAIN_COLUMNS = ("country_code", "postal_code")  # Google takes these unhashed

EMAIL_TRIMMED_LOWER = "email_norm(email)"
# Google-account addresses: one mailbox has many spellings (dots, +tags); Google matches the canonical one.
EMAIL_GOOGLE_CANONICAL = """CASE
        WHEN split_part(e, '@', 2) IN ('gmail.com', 'googlemail.com')
        THEN replace(split_part(split_part(e, '@', 1), '+', 1), '.', '') || '@' || split_part(e, '@', 2)
        ELSE e END"""

_PREPARE = """
WITH m AS (
    SELECT *,
           lower(regexp_replace(email, '\\s', '', 'g')) AS e,
           country_code(country) AS cc,
           nullif(trim(postal_code), '') AS pc,
           name_norm(first_name) IS NOT NULL AND name_norm(last_name) IS NOT NULL
               AND country_code(country) IS NOT NULL AND nullif(trim(postal_code), '') IS NOT NULL AS whole_address
    FROM members
)
SELECT member_id,
       hashed({email}) AS email_sha256,
       hashed(e164(phone)) AS phone_sha256,
       CASE WHEN whole_address THEN hashed(name_norm(first_name)) END AS first_name_sha256,
       CASE WHEN whole_address THEN hashed(name_norm(last_name)) END AS last_name_sha256,
       CASE WHEN whole_address THEN cc END AS country_code,
       CASE WHEN whole_address THEN pc END AS postal_code
FROM m
"""


def prepare(members: pa.Table, email: str = EMAIL_TRIMMED_LOWER) -> pa.Table:
    """Members (MEMBER_SCHEMA) → prepared rows; `email` is the SQL normalizing the email."""
    return prepare_members(members, _PREPARE.format(email=email))


def identifier_counts(rows: pa.Table) -> pa.Array:
    """How many UserIdentifiers each prepared row becomes (email, phone, address: 0 to 3)."""
    present = [pc.cast(pc.is_valid(rows.column(c)), pa.int8()) for c in ("email_sha256", "phone_sha256", "first_name_sha256")]
    return pc.add(pc.add(present[0], present[1]), present[2])


# --------------------------------------------------------------------------- request bodies
# One JSON text per row, in row order: the caller joins them into the request's list, so the
# index Google reports for a failing operation or member is the row's index in the batch.

_USER_DATA = """
SELECT json_object('{outer}', json_object('userIdentifiers', list_filter([
    CASE WHEN email_sha256 IS NOT NULL THEN json_object('{email}', email_sha256) END,
    CASE WHEN phone_sha256 IS NOT NULL THEN json_object('{phone}', phone_sha256) END,
    CASE WHEN first_name_sha256 IS NOT NULL THEN json_object('{address}', json_object(
        '{first}', first_name_sha256, '{last}', last_name_sha256, '{country}', country_code, 'postalCode', postal_code)) END
], lambda x: x IS NOT NULL)))::VARCHAR AS body
FROM members
"""
# The same UserData under each API's field names.
_ADS_NAMES = dict(email="hashedEmail", phone="hashedPhoneNumber", address="addressInfo", first="hashedFirstName",
                  last="hashedLastName", country="countryCode")
_DATA_MANAGER_NAMES = dict(outer="userData", email="emailAddress", phone="phoneNumber", address="address",
                           first="givenName", last="familyName", country="regionCode")


def ads_operations(rows: pa.Table, verb: str) -> list[str]:
    """Google Ads API OfflineUserDataJobOperations (`create` or `remove`), one per row."""
    if verb not in ("create", "remove"):
        raise ValueError(f"an OfflineUserDataJobOperation is create or remove, not {verb!r}")
    return prepare_members(rows, _USER_DATA.format(outer=verb, **_ADS_NAMES)).column("body").to_pylist()


def data_manager_members(rows: pa.Table) -> list[str]:
    """Data Manager API AudienceMembers, one per row."""
    return prepare_members(rows, _USER_DATA.format(**_DATA_MANAGER_NAMES)).column("body").to_pylist()


def json_list(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"
