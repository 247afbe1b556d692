"""Members → Meta's match keys, normalized as Meta documents them and SHA-256 hashed, in one
DuckDB SELECT (no Python per member).

Meta's rules (Customer File Custom Audiences, and the same keys in the Conversions API's
customer information parameters):

    EMAIL    trimmed of spaces and dots at either end (as facebook_business's format_params),
             lower-case, Unicode NFC; any local part and any script is kept (no syntax check:
             `josé@…`, `taro.@docomo.ne.jp` and `name@example.com.` are mail addresses)
    PHONE    digits only, with the country code, no leading zeros (the store's E.164 minus '+')
    FN, LN   lower-case, punctuation and spaces removed, letters and combining marks of every
             script kept (UTF-8, NFC): Korean, Cyrillic, Chinese, Arabic, Greek, Devanagari …
    FI       the first letter of FN
    CT       lower-case letters only
    ST       US: the 2-letter ANSI code in lower case (full names are mapped); elsewhere
             lower-case letters only
    ZIP      lower-case without spaces or dashes; US: the first 5 digits
    COUNTRY  ISO 3166-1 alpha-2, lower-case, from a code or a name in any language pycountry
             knows (`threadline.activation`'s country_code: `UK` → gb, `South Korea` → kr)
    DOBY, DOBM, DOBD   YYYY (1900 to this year), MM, DD
    EXTERN_ID          the profile id, not hashed

An unknown or unusable value is NULL here and "" in the request (Meta's "no value").
"""

from __future__ import annotations

import pyarrow as pa
from threadline.activation import prepare_members

from threadline_meta_audiences.config import MetaAudiencesConfig

US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca", "colorado": "co",
    "connecticut": "ct", "delaware": "de", "districtofcolumbia": "dc", "florida": "fl", "georgia": "ga",
    "hawaii": "hi", "idaho": "id", "illinois": "il", "indiana": "in", "iowa": "ia", "kansas": "ks",
    "kentucky": "ky", "louisiana": "la", "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi",
    "minnesota": "mn", "mississippi": "ms", "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv",
    "newhampshire": "nh", "newjersey": "nj", "newmexico": "nm", "newyork": "ny", "northcarolina": "nc",
    "northdakota": "nd", "ohio": "oh", "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa",
    "rhodeisland": "ri", "southcarolina": "sc", "southdakota": "sd", "tennessee": "tn", "texas": "tx",
    "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa", "westvirginia": "wv",
    "wisconsin": "wi", "wyoming": "wy", "puertorico": "pr", "guam": "gu", "virginislands": "vi",
    "americansamoa": "as", "northernmarianaislands": "mp",
}
_STATE_MAP = "MAP {" + ", ".join(f"'{name}': '{code}'" for name, code in US_STATES.items()) + "}"

# Each key's expression over the members table, with `_cc` (the ISO country), `_us` and `_dob` computed.
KEY_SQL = {
    "EMAIL": r"hashed(lower(nfc_normalize(regexp_replace(email, '^[\s.]+|[\s.]+$', '', 'g'))))",
    "PHONE": "hashed(ltrim(digits(phone), '0'))",
    "FN": "hashed(letters(nfc_normalize(first_name)))",
    "LN": "hashed(letters(nfc_normalize(last_name)))",
    "FI": "hashed(left(letters(nfc_normalize(first_name)), 1))",
    "CT": "hashed(letters(nfc_normalize(city)))",
    "ST": f"hashed(CASE WHEN _us AND length(letters(region)) > 2 THEN {_STATE_MAP}[letters(region)] "
          "ELSE letters(nfc_normalize(region)) END)",
    "ZIP": "hashed(CASE WHEN _us THEN left(digits(postal_code), 5) ELSE zip_norm(postal_code) END)",
    "COUNTRY": "hashed(lower(_cc))",
    "DOBY": "hashed(CASE WHEN year(_dob) BETWEEN 1900 AND year(current_date) THEN strftime(_dob, '%Y') END)",
    "DOBM": "hashed(CASE WHEN year(_dob) BETWEEN 1900 AND year(current_date) THEN strftime(_dob, '%m') END)",
    "DOBD": "hashed(CASE WHEN year(_dob) BETWEEN 1900 AND year(current_date) THEN strftime(_dob, '%d') END)",
}


def schema_keys(config: MetaAudiencesConfig) -> list[str]:
    """The payload's `schema`: the configured keys, then EXTERN_ID when it is sent."""
    return [*config.identifiers, *(["EXTERN_ID"] if config.extern_id else [])]


def prepare_sql(config: MetaAudiencesConfig) -> str:
    columns = [f'{KEY_SQL[key]} AS "{key}"' for key in config.identifiers]
    if config.extern_id:
        columns.append('member_id AS "EXTERN_ID"')
    return (
        "SELECT member_id, " + ", ".join(columns) + " FROM (SELECT *, _cc = 'US' AS _us FROM (SELECT *, "
        "country_code(country) AS _cc, try_cast(birth_date AS DATE) AS _dob FROM members))"
    )


def prepare(config: MetaAudiencesConfig, members: pa.Table) -> pa.Table:
    """Members (MEMBER_SCHEMA) → member_id and one column per schema key, in the members' order."""
    return prepare_members(members, prepare_sql(config))
