"""Normalizing and hashing audience members the way ad platforms want them, in bulk.

Every platform asks for the same few steps (trim, lower-case, keep digits, SHA-256 as lower
hex) combined slightly differently, so an audience destination's `prepare` is one SQL SELECT
over the members table, run by DuckDB on the Arrow data without a Python loop::

    def prepare(self, config, members):
        return prepare_members(members, '''
            SELECT member_id,
                   hashed(email_norm(email))  AS email_sha256,
                   hashed(digits(phone))      AS phone_sha256,
                   upper(country)             AS country_code   -- not hashed
            FROM members''')

Macros available in that SELECT (NULL and empty strings give NULL, never the hash of ""):

    hashed(x)       SHA-256 of x as 64 lower-case hex characters
    email_norm(x)   trimmed, lower-case
    digits(x)       only the digits 0-9 (E.164 without '+', as Meta and TikTok want phones)
    e164(x)         '+' and the digits (as Google wants phones)
    name_norm(x)    trimmed, lower-case
    letters(x)      lower-case letters of every script only: punctuation, digits and spaces
                    removed; combining marks kept (Devanagari and Thai vowel signs, Arabic
                    harakat are part of the name); a word's last Greek sigma is final (ς), as
                    Unicode lower-cases it (Meta's FN, LN and CT)
    zip_norm(x)     lower-case without spaces or dashes
    country_code(x) ISO 3166-1 alpha-2, upper-case, from a code (alpha-2 or alpha-3) or a
                    name in English or any of pycountry's 160-odd translations (`UK`,
                    `South Korea`, `Deutschland`, `대한민국` …); NULL when it names no country

DuckDB hashes several million short strings a second on one core, so the hash is never what
bounds a push (B5 in BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import gettext
import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa

MACROS = (
    "CREATE MACRO blank_to_null(x) AS CASE WHEN trim(CAST(x AS VARCHAR)) = '' THEN NULL ELSE x END",
    "CREATE MACRO hashed(x) AS sha256(blank_to_null(x))",
    "CREATE MACRO email_norm(x) AS blank_to_null(lower(trim(x)))",
    "CREATE MACRO digits(x) AS blank_to_null(regexp_replace(x, '[^0-9]', '', 'g'))",
    "CREATE MACRO e164(x) AS CASE WHEN digits(x) IS NULL THEN NULL ELSE '+' || digits(x) END",
    "CREATE MACRO name_norm(x) AS blank_to_null(lower(trim(x)))",
    # Unicode's Final_Sigma rule, which DuckDB's lower() does not apply: 'ΟΔΥΣΣΕΑΣ' → 'οδυσσεας'.
    r"CREATE MACRO final_sigma(x) AS regexp_replace(x, '(\p{L}\p{M}*)σ(\P{L}|$)', '\1ς\2', 'g')",
    r"CREATE MACRO letters(x) AS blank_to_null(regexp_replace(final_sigma(lower(x)), '[^\p{L}\p{M}]', '', 'g'))",
    "CREATE MACRO zip_norm(x) AS blank_to_null(lower(regexp_replace(x, '[\\s-]', '', 'g')))",
)


# ISO 3166/MA's exceptionally reserved codes that stand for a current country: pycountry carries
# assigned codes only, and UK (for GB) is the one people write.
RESERVED_CODES = {"UK": "GB"}


@functools.cache
def country_names() -> pa.Table:
    """(name, alpha2, tier) for every way pycountry spells a country; a lower tier wins a tie:
    0 codes, 1 English names, 2 translations (kept only where they name one country)."""
    import pycountry  # only pushes that send a country load its databases

    names: list[tuple[str, str, int]] = [(code, alpha2, 0) for code, alpha2 in RESERVED_CODES.items()]
    english = []
    for country in pycountry.countries:
        names += [(country.alpha_2, country.alpha_2, 0), (country.alpha_3, country.alpha_2, 0)]
        for attribute in ("name", "official_name", "common_name"):
            if hasattr(country, attribute):
                english.append((getattr(country, attribute), country.alpha_2))
    names += [(name, alpha2, 1) for name, alpha2 in english]
    for language in sorted(Path(pycountry.LOCALES_DIR).iterdir()):
        try:
            catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language.name])
        except OSError:
            continue
        names += [(catalog.gettext(name), alpha2, 2) for name, alpha2 in english]
    name, alpha2, tier = zip(*names)
    return pa.table({"name": name, "alpha2": alpha2, "tier": pa.array(tier, pa.int8())})


# Each spelling's key is the same `letters()` the macro applies to a member's country.
COUNTRY_KEYS = """
SELECT key, any_value(alpha2) AS alpha2 FROM (
    SELECT key, alpha2, tier, min(tier) OVER (PARTITION BY key) AS best,
           count(DISTINCT alpha2) OVER (PARTITION BY key, tier) AS meanings
    FROM (SELECT letters(nfc_normalize(name)) AS key, alpha2, tier FROM country_names))
WHERE tier = best AND meanings = 1 AND key IS NOT NULL
GROUP BY key
"""
COUNTRY_MACRO = ("CREATE MACRO country_code(x) AS "
                 "(SELECT alpha2 FROM tl_country_keys WHERE key = letters(nfc_normalize(x)))")


@functools.cache
def country_keys() -> pa.Table:
    """(key, alpha2): each unambiguous spelling's key, computed once per process."""
    return _run(pa.table({"member_id": pa.array([], pa.string())}), COUNTRY_KEYS, country_names=country_names())


def prepare_members(members: pa.Table, select_sql: str) -> pa.Table:
    """Run `select_sql` (reading the table `members`) with the macros above; return Arrow."""
    tables = {"tl_country_keys": country_keys()} if "country_code(" in select_sql else {}
    return _run(members, select_sql, **tables)


def _run(members: pa.Table, select_sql: str, **tables: pa.Table) -> pa.Table:
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        for macro in MACROS:
            con.execute(macro)
        for name, table in tables.items():
            con.register(name, table)
        if "tl_country_keys" in tables:
            con.execute(COUNTRY_MACRO)
        con.register("members", members)
        return con.sql(select_sql).to_arrow_table()
    finally:
        con.close()


def sha256_hex(value: str) -> str:
    """One value's hash, for tests and documentation examples (bulk work uses `hashed`)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
