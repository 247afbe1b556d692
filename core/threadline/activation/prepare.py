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
    letters(x)      lower-case letters only: punctuation, digits and spaces removed,
                    non-ASCII letters kept (Meta's FN, LN and CT)
    zip_norm(x)     lower-case without spaces or dashes

DuckDB hashes several million short strings a second on one core, so the hash is never what
bounds a push (B5 in BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa

MACROS = (
    "CREATE MACRO blank_to_null(x) AS CASE WHEN trim(CAST(x AS VARCHAR)) = '' THEN NULL ELSE x END",
    "CREATE MACRO hashed(x) AS sha256(blank_to_null(x))",
    "CREATE MACRO email_norm(x) AS blank_to_null(lower(trim(x)))",
    "CREATE MACRO digits(x) AS blank_to_null(regexp_replace(x, '[^0-9]', '', 'g'))",
    "CREATE MACRO e164(x) AS CASE WHEN digits(x) IS NULL THEN NULL ELSE '+' || digits(x) END",
    "CREATE MACRO name_norm(x) AS blank_to_null(lower(trim(x)))",
    r"CREATE MACRO letters(x) AS blank_to_null(lower(regexp_replace(x, '[^\p{L}]', '', 'g')))",
    "CREATE MACRO zip_norm(x) AS blank_to_null(lower(regexp_replace(x, '[\\s-]', '', 'g')))",
)


def prepare_members(members: pa.Table, select_sql: str) -> pa.Table:
    """Run `select_sql` (reading the table `members`) with the macros above; return Arrow."""
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        for macro in MACROS:
            con.execute(macro)
        con.register("members", members)
        return con.sql(select_sql).to_arrow_table()
    finally:
        con.close()


def sha256_hex(value: str) -> str:
    """One value's hash, for tests and documentation examples (bulk work uses `hashed`)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
