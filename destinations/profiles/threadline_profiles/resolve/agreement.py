"""The agreement rule: fuzzy, weighted matching for records that share no identifier.

A Fellegi–Sunter model, estimated from the data itself (never from labels):

1. blocks     — candidate pairs are records sharing every field of one blocking key (an
                equi-join per key, UNION-ed); blocks of more than `max_block` records are
                skipped and counted, and those of more than `refine_over` pair only the
                records that also share the key's refined form (`refined`: birth date and
                first name where the key has birth date and first initial), counted too.
                A fixed key space (dates × initials) makes blocks grow with the store, so
                without that bound a record's pairs grew with it: 10x the records made
                about 100x the pairs.
2. levels     — each compared field of each pair gets a level: 3 exact, 2 close (one edit,
                day and month swapped, first and last name swapped, an email's local part
                at another provider), 1 near (two edits),
                0 different, NULL when either record lacks it.
3. u          — how often two different people's records reach each level: exact from the
                value frequencies, the others from a fixed sample of record pairs.
4. m          — how often one person's two records do: EM over the candidate pairs, once per
                blocking key on a person's own fields (names, birth date, national id; never
                on where they live, which households share), each field learnt only from the
                keys that leave it out (they agree by construction). A field seen in fewer
                than MIN_MATCHING_PAIRS matching pairs keeps the stated priors (_M_PRIOR), and
                the build report says so.
5. score      — the log2 Bayes factor of the levels (exact agreement on a rare value weighs
                more than on a common one; where the data shows households, the place
                fields count once, by the strongest of them, for pairs whose first names
                and birth dates do not say one person: a family shares them whole), plus the prior odds from the estimated number of
                matching pairs; pairs whose match probability reaches the threshold are linked
                unless they are conflicts the data makes believable (`conflicts.py`).

The estimates of steps 3 and 4 (and the value frequencies of step 5) are fitted by a full
build and stored with the store (model.py); the builds after it pass the stored model to
`fit`, which then only pairs and scores.

Levenshtein distance is DuckDB's own and, on Postgres, the fuzzystrmatch extension's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from threadline_profiles.config import (
    CUSTOMER_ID,
    IDENTIFIER_TYPES,
    TRAIT_KINDS,
    AgreementRule,
)
from threadline_profiles.engines.base import Engine, lit, quote, work_table
from threadline_profiles.resolve import nicknames

RULE = "agreement"
EXACT, CLOSE, NEAR, DIFFERENT = 3, 2, 1, 0
_EXACT_ONLY = {"country"}
_REGION_FIELDS = {"region", "country"}
# Fields that describe where a person lives: two people sharing one of them (neighbours,
# households) often share the others too, so a blocking key on one says nothing about
# how the others behave for different people, and EM leaves them out of that session.
PLACE_FIELDS = {"postal_code", "city", "region", "country", "address_line1", "address_line2"}
# Blocking keys on these (and on no place field) are the pairs m is learnt from.
PERSON_BLOCK_FIELDS = {"first_name", "last_name", "birth_date", "national_id"}
# A field a key on another field already decides in part: pairs sharing a birth year agree on
# the date far more often than two people's records do (u), so a session keyed on the year
# does not learn the date's m (nor a key on the date the year's, which it never compares).
SAME_AS = {"birth_date": {"birth_year"}}
# Fewer matching pairs than this (estimated, over the blocks m of a field is learnt from)
# and the field keeps the stated priors: EM on a handful of pairs says nothing.
MIN_MATCHING_PAIRS = 30
# A birth year in a social handle or an address (rburris59, hkingsley73, kneal1985): compared
# only against the OTHER record's own birth date or year (its last two digits, column
# REAL_YEAR), never against another handle's digits (two usernames' numbers tell little).
HANDLE_YEAR = "handle_year"
REAL_YEAR = "birth_yy"  # a record's own birth year (from its birth date or year, not its handle): last two digits
PERSON_TELLING = ("first_name", "birth_date")  # what tells family members apart (see conflicts.py)
GIVEN_NAMES = ("first_name", "middle_name")  # compared with their short forms (level_sql)
SAMPLE_RECORDS = 500  # u of the fuzzy levels: from the pairs among this many records
_LEV_CHARS = 64  # Postgres' levenshtein takes at most 255 characters; names and streets fit in 64

# What a level means where no data says otherwise (small stores, the first EM step).
_M_PRIOR = {EXACT: 0.88, CLOSE: 0.05, NEAR: 0.02, DIFFERENT: 0.05}
_U_PRIOR_EXACT = {"name": 0.005, "date": 0.0002, "year": 0.02, "postal_code": 0.002, "address_line": 0.0002, "place": 0.01,
                  "country": 0.3, "text": 0.01, "code": 0.00001}
_PRIOR_PAIRS = 20.0  # weight of the priors, in pairs


def kind_of(name: str) -> str:
    if name in _REGION_FIELDS:
        return "country"
    if name in IDENTIFIER_TYPES or CUSTOMER_ID.match(name):
        return "code"
    return TRAIT_KINDS.get(name, "text")


def levels_of(name: str) -> tuple[int, ...]:
    if name == HANDLE_YEAR:  # the year in one record's handle is the other's birth year, or not
        return (EXACT, DIFFERENT)
    if kind_of(name) == "year":  # the same year, one year apart, different
        return (EXACT, CLOSE, DIFFERENT)
    return (EXACT, DIFFERENT) if kind_of(name) in _EXACT_ONLY or name in _REGION_FIELDS else (EXACT, CLOSE, NEAR, DIFFERENT)


# --------------------------------------------------------------------------- SQL


def level_sql(name: str, x: str = "x", y: str = "y", partner: str | None = None) -> str:
    """The comparison level of field `name` between records `x` and `y` (NULL: one lacks it).
    `partner` is the other name field, for first and last names written the other way round
    (for a birth year: the birth date, which is compared instead where both records have it)."""
    if name == HANDLE_YEAR:
        return handle_year_level_sql(x, y, partner)
    a, b = f"{x}.{quote(name)}", f"{y}.{quote(name)}"
    head = f"CASE WHEN {a} IS NULL OR {b} IS NULL THEN NULL WHEN {a} = {b} THEN {EXACT}"
    if levels_of(name) == (EXACT, DIFFERENT):
        return f"{head} ELSE {DIFFERENT} END"
    if name == "username" and partner:  # where both records have an address, the email field compares them
        head = (f"CASE WHEN {a} IS NULL OR {b} IS NULL OR ({x}.{quote(partner)} IS NOT NULL AND {y}.{quote(partner)} IS NOT NULL) "
                f"THEN NULL WHEN {a} = {b} THEN {EXACT}")
    if kind_of(name) == "year":
        # Where both records have a full birth date, that date is compared instead: the
        # year alone would count the same evidence twice.
        dated = f"{x}.{quote(partner)} IS NOT NULL AND {y}.{quote(partner)} IS NOT NULL" if partner else "FALSE"
        return (f"CASE WHEN {a} IS NULL OR {b} IS NULL OR ({dated}) THEN NULL WHEN {a} = {b} THEN {EXACT} "
                f"WHEN ABS(CAST({a} AS INTEGER) - CAST({b} AS INTEGER)) = 1 THEN {CLOSE} ELSE {DIFFERENT} END")
    swapped = "FALSE"
    if kind_of(name) == "name":  # an initial against a name it begins
        head += (f" WHEN LEAST(LENGTH({a}), LENGTH({b})) = 1 AND SUBSTR({a}, 1, 1) = SUBSTR({b}, 1, 1) "
                 f"THEN {NEAR}")
    if name == "email":
        # The same local part at another provider (gmail.com for hotmail.com), its dots,
        # underscores and hyphens aside: people write one name-made local part with and
        # without them (william.hurley@outlook.com, williamhurley@gmail.com), and some
        # providers deliver it either way.
        local = lambda v: f"REGEXP_REPLACE(SPLIT_PART({v}, '@', 1), '[._-]+', '', 'g')"  # noqa: E731
        swapped = f"{local(a)} = {local(b)}"
    elif kind_of(name) == "date":  # ISO dates: day and month swapped
        swapped = (f"(SUBSTR({a}, 1, 4) = SUBSTR({b}, 1, 4) AND SUBSTR({a}, 6, 2) = SUBSTR({b}, 9, 2) "
                   f"AND SUBSTR({a}, 9, 2) = SUBSTR({b}, 6, 2))")
    elif partner and kind_of(name) == "name":  # each name within one edit of the other record's other name (checked last: costly)
        other_a, other_b = f"{y}.{quote(partner)}", f"{x}.{quote(partner)}"
        swapped = (f"(SUBSTR({a}, 1, 1) = SUBSTR({other_a}, 1, 1) AND SUBSTR({b}, 1, 1) = SUBSTR({other_b}, 1, 1) "
                   f"AND {_lev(a, other_a)} <= 1 AND {_lev(b, other_b)} <= 1)")
    # LEAST(...) is a simple CASE's operand: the distance is computed once. One edit in a
    # value of fewer than 3 characters (an initial), or two in fewer than 4 (5 in a name), is a difference.
    shortest = f"LEAST(LENGTH({a}), LENGTH({b}))"
    # Two edits in a name of four letters change half of it: Nora and Noah are two people.
    near_from = 5 if kind_of(name) == "name" else 4
    if name in ("email", "username"):
        # Numbers in addresses tell people apart (sofia.jones102 and sofia.jones532 are two
        # customers of one name, kelly1985 and kelly1990 two birth years): an edit counts as
        # a typo only where both addresses carry the same digits.
        digits = lambda v: f"REGEXP_REPLACE({v}, '[^0-9]+', '', 'g')"  # noqa: E731
        head += f" WHEN {digits(a)} <> {digits(b)} AND NOT ({swapped}) THEN {DIFFERENT}"
    # A given name and its short form (Kev, Kevin; Norm, Norman; Carol, Caroline; Jenni,
    # Jennifer): one the other's beginning, of three letters or more, is near — a nickname
    # no dictionary lists reads like this, and a surname's beginning is not a short form.
    # A nickname of the other name, or both nicknames of one formal name (Ted and Edward,
    # Peggy and Margaret, Kate and Kathy: nicknames.py's maintained list), is near as well.
    prefix = (f"({shortest} >= 3 AND (SUBSTR({a}, 1, LENGTH({b})) = {b} OR SUBSTR({b}, 1, LENGTH({a})) = {a}) "
              f"OR EXISTS (SELECT 1 FROM {nicknames.TABLE} AS nk WHERE nk.a = {a} AND nk.b = {b}))"
              if name in GIVEN_NAMES else "FALSE")
    return (f"{head} WHEN {swapped} THEN {CLOSE} ELSE CASE LEAST({_lev(a, b)}, 3) "
            f"WHEN 1 THEN CASE WHEN {shortest} >= 3 THEN {CLOSE} ELSE {DIFFERENT} END "
            f"WHEN 2 THEN CASE WHEN {shortest} >= {near_from} OR {prefix} THEN {NEAR} ELSE {DIFFERENT} END "
            f"ELSE CASE WHEN {prefix} THEN {NEAR} ELSE {DIFFERENT} END END END")


def handle_year_level_sql(x: str, y: str, year: str | None) -> str:
    """The year in a handle against a birth year: exact where one record's own birth year
    (REAL_YEAR) ends in the two digits the other's handle or address shows, different where
    it does not; NULL unless exactly one side has a year of its own (where both have, the
    birth date and year fields compare them, and a year read from a handle — hints.py's
    four-digit birth year — counts as the record's own here: it is already compared there).
    `year` is the birth year column where the store compares one."""
    def yearless(p: str) -> str:
        return f"{p}.{REAL_YEAR} IS NULL" + (f" AND {p}.{quote(year)} IS NULL" if year else "")

    h = quote(HANDLE_YEAR)
    return (f"CASE WHEN {x}.{REAL_YEAR} IS NOT NULL AND {y}.{h} IS NOT NULL AND {yearless(y)} "
            f"THEN CASE WHEN {x}.{REAL_YEAR} = {y}.{h} THEN {EXACT} ELSE {DIFFERENT} END "
            f"WHEN {y}.{REAL_YEAR} IS NOT NULL AND {x}.{h} IS NOT NULL AND {yearless(x)} "
            f"THEN CASE WHEN {y}.{REAL_YEAR} = {x}.{h} THEN {EXACT} ELSE {DIFFERENT} END END")


def require_comparisons(engine: Engine) -> None:
    """What level_sql needs on this connection: LEVENSHTEIN and the nickname pairs."""
    engine.require_levenshtein()
    nicknames.load(engine)


def _lev(a: str, b: str) -> str:
    return f"LEVENSHTEIN(SUBSTR({a}, 1, {_LEV_CHARS}), SUBSTR({b}, 1, {_LEV_CHARS}))"


def _partner(name: str, fields: list[str]) -> str | None:
    other = {"first_name": "last_name", "last_name": "first_name", "birth_year": "birth_date", "username": "email",
             HANDLE_YEAR: "birth_year"}.get(name)
    return other if other in fields else None


def levels_select(fields: list[str], x: str = "x", y: str = "y") -> str:
    """`l0, l1, ...`: the level of each field, in the order of `fields`."""
    return ", ".join(f"{level_sql(f, x, y, _partner(f, fields))} AS l{i}" for i, f in enumerate(fields))


def block_part(part: str) -> tuple[str, int | None]:
    """A blocking key part: a field, or `field:n` for its first n characters."""
    name, _, chars = part.partition(":")
    return name, int(chars) if chars else None


# Blocking-only columns of tl_work_person, and the compared field each is made from.
BLOCK_ONLY = {"email_local": "email"}  # an address's local part: kelly.neal at another provider
# Other columns of tl_work_person that are not compared themselves, and the field each serves.
SERVING = {**BLOCK_ONLY, REAL_YEAR: HANDLE_YEAR}


def usable_blocks(rule: AgreementRule, fields: list[str]) -> list[list[str]]:
    have = set(fields) | {b for b, f in BLOCK_ONLY.items() if f in fields}
    return [b for b in rule.block_on if b and {block_part(p)[0] for p in b} <= have]


def _part_sql(part: str) -> str:
    name, chars = block_part(part)
    return quote(name) if chars is None else f"SUBSTR({quote(name)}, 1, {chars})"


# What refines a block key that has no `field:n` part to write in full: the first of these
# the key lacks and the rule compares.
REFINE_BY = ("birth_date", "last_name", "first_name", "postal_code")


def refined(block: list[str], fields: list[str]) -> list[str]:
    """The key a block of more than `refine_over` records is paired by: its `field:n` parts in
    full (birth date and first initial -> birth date and first name) or, where it has none,
    the key and one more field (first and last name -> and birth date). Records agreeing on
    it agree on the block's key too, so it splits the block, never joins two."""
    parts = [block_part(p)[0] for p in block]
    if any(block_part(p)[1] is not None for p in block):
        return list(dict.fromkeys(parts))
    extra = next((f for f in REFINE_BY if f in fields and f not in parts), None)
    return parts + ([extra] if extra else [])


def block_keys_sql(blocks: list[list[str]], fields: list[str], person: str = "tl_work_person", rid: str = "rid",
                   table: str = "tl_work_bk") -> str:
    """tl_work_bk: (blk, k, r, rid) — each record's key in each block it can be in (of `person`,
    whose records are named by column `rid`: an incremental build names them by record key),
    and its refined key there (`refined`; NULL where the record lacks a field of it)."""
    return work_table(table, f"AS {block_keys_select(blocks, fields, person, rid)}")


def block_keys_select(blocks: list[list[str]], fields: list[str], person: str, rid: str) -> str:
    """The SELECT of block_keys_sql."""
    parts = []
    for i, block in enumerate(blocks):
        key = " || '|' || ".join(_part_sql(p) for p in block)
        fine = " || '|' || ".join(quote(f) for f in refined(block, fields))
        present = " AND ".join(f"{quote(block_part(p)[0])} IS NOT NULL" for p in block)
        parts.append(f"SELECT {i} AS blk, {key} AS k, {fine} AS r, {rid} FROM {person} WHERE {present}")
    return " UNION ALL ".join(parts)


def block_sizes_sql() -> str:
    return work_table(
        "tl_work_bs",
        "AS SELECT blk, k, COUNT(*) AS n FROM tl_work_bk GROUP BY blk, k HAVING COUNT(*) > 1")


def skipped_blocks_sql(max_block: int, sizes: str = "tl_work_bs") -> str:
    """Per blocking key: the blocks too large to pair up, and the pairs that cost."""
    return (f"SELECT blk, COUNT(*) AS blocks, SUM(n * (n - 1) / 2) AS pairs FROM {sizes} "
            f"WHERE n > {max_block} GROUP BY blk ORDER BY blk")


def refined_blocks_sql(refine_over: int, max_block: int, sizes: str = "tl_work_bs", fine: str | None = None) -> str:
    """Per blocking key: the blocks paired by their refined key only, and the pairs of their
    records that do not share it (never compared). `fine` holds the refined keys' sizes
    (blk, k, r, n); None: counted from tl_work_bk (a full build's, every record's keys)."""
    band = f"s.n > {refine_over} AND s.n <= {max_block}"
    fine = fine or "(SELECT blk, k, r, COUNT(*) AS n FROM tl_work_bk WHERE r IS NOT NULL GROUP BY blk, k, r)"
    within = f"SELECT f.blk, f.n FROM {fine} AS f JOIN {sizes} AS s ON s.blk = f.blk AND s.k = f.k WHERE {band}"
    return (f"SELECT t.blk, t.blocks, t.pairs - COALESCE(w.pairs, 0) AS pairs FROM ("
            f"SELECT s.blk, COUNT(*) AS blocks, SUM(s.n * (s.n - 1) / 2) AS pairs FROM {sizes} AS s WHERE {band} "
            f"GROUP BY s.blk) AS t LEFT JOIN (SELECT blk, SUM(n * (n - 1) / 2) AS pairs FROM ({within}) AS r "
            "GROUP BY blk) AS w ON w.blk = t.blk ORDER BY t.blk")


def candidates_sql(blocks: int, max_block: int, refine_over: int, sizes: str = "tl_work_bs", keys: str = "tl_work_bk",
                   table: str = "tl_work_cand") -> str:
    """`table`: (a, b, in0, in1, ...) — every pair (a < b) of `keys`' records sharing a small
    block, with the blocks it shares. In a block of more than `refine_over` records (and at
    most `max_block`) only the records that also share its refined key are paired: the
    pairs a record makes stay about as many however large the store grows. `sizes` holds
    each block's size (in an incremental build: over the whole store, so a block too large
    there is skipped, or refined, in the scope too)."""
    flags = ", ".join(f"MAX(CASE WHEN blk = {i} THEN 1 ELSE 0 END) AS in{i}" for i in range(blocks))
    # Two equi-joins, not one with an OR: joined on the coarse key alone, a block of 100
    # records would make 4,950 rows to filter down to its refined pairs.
    small = (f"SELECT x.blk, x.rid AS a, y.rid AS b FROM {keys} AS x JOIN {sizes} AS s ON s.blk = x.blk AND s.k = x.k "
             f"JOIN {keys} AS y ON y.blk = x.blk AND y.k = x.k AND x.rid < y.rid WHERE s.n <= {min(refine_over, max_block)}")
    fine = (f" UNION ALL SELECT x.blk, x.rid AS a, y.rid AS b FROM {keys} AS x JOIN {sizes} AS s ON s.blk = x.blk AND s.k = x.k "
            f"JOIN {keys} AS y ON y.blk = x.blk AND y.k = x.k AND y.r = x.r AND x.rid < y.rid "
            f"WHERE s.n > {refine_over} AND s.n <= {max_block}") if refine_over < max_block else ""
    return work_table(table, f"AS SELECT a, b, {flags} FROM ({small}{fine}) AS p GROUP BY a, b")


# Records whose matching fields are all equal (a person's campaign sends and events carry the
# same address, name and nothing else, dozens of times) compare the same with every record.
# The rule compares one record of each such group (its `rep`, the smallest) and weighs each
# pair as the pairs of records it stands for; scored pairs are then spread back to the records
# (spread_sql). The demo's store: 56k records, 16.5k distinct, 1.7M candidate pairs.
GROUPS, REP_KEYS, REP_PAIRS, REP_SCORES = "tl_work_pgrp", "tl_work_rbk", "tl_work_rcand", "tl_work_rscore"


def matched_columns(fields: list[str]) -> list[str]:
    """The columns of tl_work_person the rule reads: the compared fields and those serving them."""
    return [*fields, *(c for c, f in SERVING.items() if f in fields)]


def groups_sql(columns: list[str]) -> list[str]:
    """GROUPS: (rid, rep, n) for every record of tl_work_person, grouped by `columns` (NULLs
    equal, as in a window's partition); REP_KEYS: tl_work_bk's keys of the reps alone."""
    by = ", ".join(quote(c) for c in columns)
    return [work_table(GROUPS, f"AS SELECT rid, MIN(rid) OVER (PARTITION BY {by}) AS rep, "
                               f"COUNT(*) OVER (PARTITION BY {by}) AS n FROM tl_work_person"),
            # the reps first, then one key to join on: Spark ran the two-key form (g.rid = k.rid
            # AND g.rep = k.rid) as a broadcast hash join that did not finish at 1M records in
            # 24 min; this form took 5.5 s in a probe of the same shape (README, Spark stores)
            work_table(REP_KEYS, f"AS SELECT k.blk, k.k, k.r, k.rid FROM tl_work_bk AS k "
                                 f"JOIN (SELECT rid FROM {GROUPS} WHERE rep = rid) AS g ON g.rid = k.rid")]


def weighted_candidates_sql(blocks: int, max_block: int, refine_over: int, sizes: str) -> list[str]:
    """tl_work_cand: the reps' pairs (REP_PAIRS), each weighing n × n' record pairs (column w),
    and one row (a = b = rep) per group of two or more sharing a small block, weighing the
    n(n-1)/2 pairs among its records: the records' candidate pairs, counted as they were.
    (A group's records share every matched field, so its refined key too.)"""
    flags = ", ".join(f"c.in{i}" for i in range(blocks))
    own = ", ".join(f"MAX(CASE WHEN k.blk = {i} THEN 1 ELSE 0 END) AS in{i}" for i in range(blocks))
    return [
        candidates_sql(blocks, max_block, refine_over, sizes, REP_KEYS, REP_PAIRS),
        work_table(
            "tl_work_cand",
            f"AS SELECT c.a, c.b, {flags}, CAST(ga.n * gb.n AS DOUBLE) AS w "
            f"FROM {REP_PAIRS} AS c JOIN {GROUPS} AS ga ON ga.rid = c.a JOIN {GROUPS} AS gb ON gb.rid = c.b "
            f"UNION ALL SELECT k.rid AS a, k.rid AS b, {own}, CAST(MAX(g.n) * (MAX(g.n) - 1) / 2 AS DOUBLE) AS w "
            f"FROM {REP_KEYS} AS k JOIN {GROUPS} AS g ON g.rid = k.rid JOIN {sizes} AS s ON s.blk = k.blk AND s.k = k.k "
            f"WHERE g.n > 1 AND s.n <= {max_block} GROUP BY k.rid"),
        f"DROP TABLE {REP_PAIRS}",
    ]


def compare_sql(fields: list[str], blocks: int) -> str:
    """tl_work_cmp: each candidate pair with its blocks, its weight in record pairs and the
    level of every field."""
    flags = ", ".join(f"c.in{i}" for i in range(blocks))
    return (
        work_table("tl_work_cmp", f"AS SELECT c.a, c.b, {flags}, c.w, {levels_select(fields)} FROM tl_work_cand AS c "
                                  "JOIN tl_work_person AS x ON x.rid = c.a JOIN tl_work_person AS y ON y.rid = c.b")
    )


def spread_sql(model: AgreementModel) -> list[str]:
    """tl_work_score from the reps' scores (REP_SCORES): each scored pair of reps for every
    pair of the records they stand for (a < b), each group's own row for every pair within it.
    Only pairs the rule can use are spread: those reaching the threshold on their odds, or on
    their odds without first names and birth dates (the conflict guard's evidence,
    link.guard_and_agree); the others link nothing and are never read."""
    cols = ", ".join([f"s.l{i}, s.w{i}" for i in range(len(model.fields))] + ["s.odds", "s.person_odds", "s.place_extra"])
    return [
        work_table(
            "tl_work_score",
            f"AS SELECT LEAST(x.rid, y.rid) AS a, GREATEST(x.rid, y.rid) AS b, {cols} "
            f"FROM {REP_SCORES} AS s JOIN {GROUPS} AS x ON x.rep = s.a JOIN {GROUPS} AS y ON y.rep = s.b "
            f"WHERE (s.a <> s.b OR x.rid < y.rid) AND (s.odds >= {_num(model.threshold)} "
            f"OR s.odds - s.person_odds >= {_num(model.threshold)})"),
        f"DROP TABLE {REP_SCORES}",
    ]


def sample_levels_sql(fields: list[str], records: int = SAMPLE_RECORDS) -> str:
    """tl_work_ucmp: the levels of every pair among a fixed sample of records (the same
    records on every engine: the first by the md5 of their number)."""
    sample = f"(SELECT * FROM tl_work_person ORDER BY MD5(CAST(rid AS VARCHAR)), rid LIMIT {records})"
    return (work_table("tl_work_ucmp", f"AS SELECT {levels_select(fields)} FROM {sample} AS x "
                                       f"JOIN {sample} AS y ON x.rid < y.rid"))


def level_counts_sql(fields: list[str], table: str) -> str:
    """(i, level, n) over `table`'s level columns, one row per field and level present."""
    return " UNION ALL ".join(
        f"SELECT {i} AS i, l{i} AS level, COUNT(*) AS n FROM {table} WHERE l{i} IS NOT NULL GROUP BY l{i}"
        for i in range(len(fields)))


def exact_pairs_sql(fields: list[str]) -> str:
    """(i, agree, pairs): among all pairs of records having field i, how many agree exactly
    (for HANDLE_YEAR: among all pairs of a record with a birth year of its own and one with
    only a year in its handle, how many show the same year)."""
    return " UNION ALL ".join(
        _handle_year_pairs_sql(i, _partner(f, fields)) if f == HANDLE_YEAR else
        f"SELECT {i} AS i, SUM(n * (n - 1) / 2) AS agree, SUM(n) * (SUM(n) - 1) / 2 AS pairs FROM "
        f"(SELECT COUNT(*) AS n FROM tl_work_person WHERE {quote(f)} IS NOT NULL GROUP BY {quote(f)}) AS v"
        for i, f in enumerate(fields))


def _handle_year_pairs_sql(i: int, year: str | None) -> str:
    handles = (f"SELECT {quote(HANDLE_YEAR)} AS v FROM tl_work_person WHERE {quote(HANDLE_YEAR)} IS NOT NULL "
               f"AND {REAL_YEAR} IS NULL" + (f" AND {quote(year)} IS NULL" if year else ""))
    own = f"SELECT {REAL_YEAR} AS v FROM tl_work_person WHERE {REAL_YEAR} IS NOT NULL"
    agree = (f"SELECT SUM(r.n * h.n) FROM (SELECT v, COUNT(*) AS n FROM ({own}) AS o GROUP BY v) AS r "
             f"JOIN (SELECT v, COUNT(*) AS n FROM ({handles}) AS k GROUP BY v) AS h ON h.v = r.v")
    return (f"SELECT {i} AS i, CAST(COALESCE(({agree}), 0) AS DOUBLE) AS agree, "
            f"CAST((SELECT COUNT(*) FROM ({own}) AS o) AS DOUBLE) * (SELECT COUNT(*) FROM ({handles}) AS k) AS pairs")


def frequencies_sql(fields: list[str], own: list[float | None] | None = None) -> str:
    """tl_work_tf: (i, key, lu) — log2 of how often a field's value occurs among the records
    having the field (pulled towards the prior when they are few): the u of exact agreement
    on that very value (n: how many records have it).

    u is how often ANOTHER person's record has the value, so the records counted are the
    value's other records less `own[i]`, the number of them expected to be the same person's
    (each person's other records that have the field and agree on it exactly: from the
    estimated matching pairs). Counting a person's own duplicates as other people makes a
    rare surname held by one customer's four records look four times as common as it is;
    at least one other record is always counted, so a value is never rarer than one seen
    once. Where `own[i]` is None (no estimate of it) every record holding the value is
    counted, the record itself too."""
    own = own or [0.0] * len(fields)

    def held(i: int) -> str:
        return "COUNT(*)" if own[i] is None else f"GREATEST(COUNT(*) - 1 - {_num(own[i])}, 1)"

    parts = [
        f"SELECT {i} AS i, {quote(f)} AS key, LN(({held(i)} + "
        f"{_num(_PRIOR_PAIRS * _U_PRIOR_EXACT[kind_of(f)])}) / "
        f"(t.n + {_num(_PRIOR_PAIRS)})) / LN(2) AS lu, COUNT(*) AS n FROM tl_work_person, "
        f"(SELECT COUNT({quote(f)}) AS n FROM tl_work_person) AS t WHERE {quote(f)} IS NOT NULL GROUP BY {quote(f)}, t.n"
        for i, f in enumerate(fields) if f not in NO_FREQUENCIES
    ]
    return work_table("tl_work_tf", f"AS {' UNION ALL '.join(parts)}")


# Compared fields whose exact agreement weighs the same whatever the value: a handle's year
# against a birth year agrees on two digits, equally likely by chance for any year.
NO_FREQUENCIES = {HANDLE_YEAR}


def own_records(model: AgreementModel) -> list[float | None]:
    """Per field: how many of a record's other records are expected to be the same person's
    and agree on the field exactly — records per person less one (from the estimated matching
    pairs: N people-records with E matching pairs hold 2E/N others each), times the share of
    records having the field, times m of exact agreement; None (count every record) for a
    field whose m is the stated prior."""
    records = max(model.records, 1)
    per_record = 2 * model.expected_pairs / records
    # A field whose m is the stated prior was seen in too few matching pairs to say how many
    # of a value's records are one person's: its records are counted as they are (None).
    return [None if f.from_prior else per_record * min(max(f.having, 0) / records, 1.0) * f.m[EXACT] for f in model.fields]


def once_lu(kind: str, having: int) -> float:
    """The lu of a value seen once among `having` records (frequencies_sql's formula): what a
    stored model gives a value it never saw twice."""
    return math.log2((1 + _PRIOR_PAIRS * _U_PRIOR_EXACT[kind]) / (having + _PRIOR_PAIRS))


def having_sql(fields: list[str], blocks: list[list[str]]) -> str:
    """How many records there are (n), have each field (c0, c1, ...) and every field of each
    block (s0, s1, ...: the records it can pair), in one scan."""
    counts = ["COUNT(*) AS n", *(f"COUNT({quote(f)}) AS c{i}" for i, f in enumerate(fields))]
    for i, block in enumerate(blocks):
        present = " AND ".join(f"{quote(block_part(p)[0])} IS NOT NULL" for p in block)
        counts.append(f"SUM(CASE WHEN {present} THEN 1 ELSE 0 END) AS s{i}")
    return f"SELECT {', '.join(counts)} FROM tl_work_person"


def patterns_sql(fields: list[str], blk: int) -> str:
    """How many candidate pairs of one block show each combination of levels."""
    cols = ", ".join(f"l{i}" for i in range(len(fields)))
    return f"SELECT {cols}, SUM(w) AS n FROM tl_work_cmp WHERE in{blk} = 1 GROUP BY {cols}"


def _num(value: float) -> str:
    return repr(round(float(value), 6))


def score_sql(model: AgreementModel, cmp: str = "tl_work_cmp", records: str = "tl_work_person", rid: str = "rid",
              table: str = "tl_work_score") -> str:
    """tl_work_score: every candidate pair with each field's match weight (w0, w1, ...: log2
    of m/u at the level reached, 0 when either record lacks the field), its log2 odds of
    being one person, the part of them that comes from first names and birth dates
    (`person_odds`), and what the place fields add beyond the strongest of them
    (`place_extra`)."""
    terms, joins = [], []
    for i, f in enumerate(model.fields):
        w = f.weights()
        cases = " ".join(f"WHEN {lvl} THEN {_num(w[lvl])}" for lvl in f.levels if lvl != EXACT)
        # Exact agreement is weighed by the frequency of the value agreed on (never below
        # the weight of a close value, nor below zero).
        # A value missing from tl_work_tf (a stored model's, which keeps only values seen twice
        # or more) is a value seen once.
        unseen = f.lu_once if f.lu_once is not None else math.log2(f.u[EXACT])
        exact = (f"GREATEST({_num(math.log2(f.m[EXACT]))} - COALESCE(t{i}.lu, {_num(unseen)}), "
                 f"{_num(max(w.get(CLOSE, 0.0), 0.0))})")
        terms.append(f"CASE c.l{i} WHEN {EXACT} THEN {exact} {cases} ELSE 0 END AS w{i}")
        # The level test sits inside the key, not beside it: `c.l = 3 AND t.key = x.f` in a LEFT
        # JOIN's condition made DuckDB 1.5 join by nested loops (every pair against every
        # frequent value: 63 of an 86 s build at 200k records); as one equality it hashes.
        joins.append(f"LEFT JOIN tl_work_tf AS t{i} ON t{i}.i = {i} "
                     f"AND t{i}.key = CASE WHEN c.l{i} = {EXACT} THEN x.{quote(f.name)} END")
    names = [f.name for f in model.fields]
    weights = [f"w{i}" for i in range(len(names))]
    person = [f"w{i}" for i, n in enumerate(names) if n in PERSON_TELLING]
    place = [f"w{i}" for i, n in enumerate(names) if n in PLACE_FIELDS]
    cols = ", ".join(f"c.l{i}" for i in range(len(model.fields)))
    # What the place fields add beyond the strongest of them: where households live in the
    # store, a street, its postal code and its city are one fact a family shares whole, and
    # summed they would outweigh a first name and a birth date that disagree (see link.py).
    extra = f"{' + '.join(place)} - GREATEST({', '.join(place)})" if len(place) > 1 else "0"
    return (
        work_table(table, f"AS SELECT p.*, {_num(model.prior)} + {' + '.join(weights)} AS odds, "
                          f"{' + '.join(person) or '0'} AS person_odds, {extra} AS place_extra FROM ("
                          f"SELECT c.a, c.b, {cols}, {', '.join(terms)} "
                          f"FROM {cmp} AS c JOIN {records} AS x ON x.{rid} = c.a {' '.join(joins)}) AS p")
    )


def edges_sql(model: AgreementModel, scored: str, keep: str = "TRUE") -> str:
    """Add the pairs of `scored` (tl_work_score's columns) whose match probability reaches
    the threshold, and that satisfy `keep`, to tl_work_edges; the key says how each field
    compared and what it weighed (log2 of m/u: `last_name~+4.8`), and the probability — no
    values."""
    marks = {EXACT: "=", CLOSE: "~", NEAR: "≈", DIFFERENT: "≠"}
    parts = []
    for i, f in enumerate(model.fields):
        cases = " ".join(f"WHEN {lvl} THEN {lit(f.name + marks[lvl])}" for lvl in marks)
        weight = (f"CASE WHEN s.w{i} >= 0 THEN '+' ELSE '' END || "
                  f"CAST(CAST(s.w{i} AS DECIMAL(10, 1)) AS VARCHAR)")
        parts.append(f"COALESCE((CASE s.l{i} {cases} END) || {weight}, {lit(f.name + '?')})")
    described = " || ' ' || ".join(parts)
    probability = "CAST(CAST(FLOOR(1000 * (1 - 1 / (1 + POWER(2, s.odds)))) AS INTEGER) AS VARCHAR)"
    return (
        f"INSERT INTO tl_work_edges SELECT s.b AS rid, s.a AS anchor, {lit(RULE)} AS rule, "
        f"'p=0.' || LPAD({probability}, 3, '0') || ' ' || {described} AS key FROM {scored} AS s "
        f"WHERE s.odds >= {_num(model.threshold)} AND ({keep})"
    )


# --------------------------------------------------------------------------- the model


@dataclass
class FieldModel:
    """One compared field: the chance of each level for one person (m) and for two (u)."""

    name: str
    levels: tuple[int, ...]
    m: dict[int, float]
    u: dict[int, float]
    lu_once: float | None = None  # log2 u of exact agreement on a value seen once (model.py keeps no rarer value)
    from_prior: bool = False  # m is the stated prior: too few matching pairs to learn it
    having: int = 0  # records having the field when the model was fitted

    def weights(self) -> dict[int, float]:
        """log2(m/u) per level, kept in order: disagreeing never counts for a match, and a
        closer level never weighs less than a farther one (a field that nearly every record
        shares, like a placeholder postal code, would otherwise make disagreement a match)."""
        raw = {lvl: math.log2(self.m[lvl] / self.u[lvl]) for lvl in self.levels}
        out, floor = {}, min(raw[DIFFERENT], 0.0)
        for lvl in sorted(self.levels):
            out[lvl] = floor = max(raw[lvl], floor) if lvl != DIFFERENT else floor
        out[EXACT] = max(out[EXACT], 0.0)
        return out


@dataclass
class AgreementModel:
    fields: list[FieldModel]
    prior: float  # log2 prior odds that two records are one person
    threshold: float  # log2 odds a pair needs
    expected_pairs: float = 0.0
    candidates: int = 0
    skipped: dict[str, tuple[int, int]] = field(default_factory=dict)  # block -> (blocks, pairs)
    refined: dict[str, tuple[int, int]] = field(default_factory=dict)  # block -> (blocks, pairs not compared)
    # fields whose m is the stated prior (too few matching pairs seen), with the pairs seen
    from_priors: dict[str, float] = field(default_factory=dict)
    # The guard's judgement of the store (link.guard_and_agree): whether it holds households,
    # and the conflict classes each guarded rule drops. Read from all records when the model
    # is fitted and kept with it, so a build that reuses the model judges as the fit did.
    judged: bool = False
    households: bool | None = None
    vetoed: dict[str, list[int]] = field(default_factory=dict)
    version: int = 0  # in tl_model (model.py); 0: not stored yet
    records: int = 0  # records it was fitted on

    def describe(self) -> dict:
        """The estimated weights, for the report and for reading."""
        return {f.name: {lvl: round(w, 2) for lvl, w in f.weights().items()} for f in self.fields}


def _normalized(values: dict[int, float], floor: float = 1e-4) -> dict[int, float]:
    clipped = {k: max(v, floor) for k, v in values.items()}
    total = sum(clipped.values())
    return {k: v / total for k, v in clipped.items()}


def estimate_u(names: list[str], exact: dict[int, tuple[int, int]], sampled: dict[int, dict[int, int]]) -> list[dict[int, float]]:
    """u per field and level: exact agreement from the value frequencies (every pair counted),
    the fuzzy levels from the sample, each pulled towards a prior when there is little data."""
    out = []
    for i, name in enumerate(names):
        levels = levels_of(name)
        agree, pairs = exact.get(i, (0, 0))
        u_exact = (agree + _PRIOR_PAIRS * _U_PRIOR_EXACT[kind_of(name)]) / (pairs + _PRIOR_PAIRS)
        counts = sampled.get(i, {})
        total = sum(counts.values())
        u = {EXACT: u_exact}
        for lvl in levels:
            if lvl in (CLOSE, NEAR):
                u[lvl] = (counts.get(lvl, 0) + _PRIOR_PAIRS * 2 * u_exact) / (total + _PRIOR_PAIRS)
        for lvl in (CLOSE, NEAR):  # the sample cannot see below about 1/pairs: no rarer than half an exact match
            if lvl in u:
                u[lvl] = max(u[lvl], u_exact / 2)
        u[DIFFERENT] = 1.0 - sum(u.values())
        out.append(_normalized(u, floor=1e-6))
    return out


def em(patterns: np.ndarray, counts: np.ndarray, estimated: list[int], levels: list[tuple[int, ...]],
       m: list[dict[int, float]], u: list[dict[int, float]], iterations: int = 60) -> tuple[list[dict[int, float]], float]:
    """Expectation–maximisation of m (for the `estimated` field positions) and of the share of
    matches among the pairs, with u held fixed. `patterns` holds one row of levels per
    combination (-1: missing) and `counts` how many pairs show it."""
    m = [dict(x) for x in m]
    share = 0.1
    total = counts.sum()
    if total == 0 or not estimated:
        return m, 0.0
    for _ in range(iterations):
        log_m = np.full(len(counts), math.log(share))
        log_u = np.full(len(counts), math.log(1 - share))
        for j in estimated:
            col = patterns[:, j]
            for lvl in levels[j]:
                hit = col == lvl
                log_m[hit] += math.log(m[j][lvl])
                log_u[hit] += math.log(u[j][lvl])
        p = 1.0 / (1.0 + np.exp(np.clip(log_u - log_m, -50, 50)))
        weight = counts * p
        new_share = float(weight.sum() / total)
        for j in estimated:
            col = patterns[:, j]
            seen = weight[col >= 0].sum()
            m[j] = _normalized({lvl: (weight[col == lvl].sum() + _PRIOR_PAIRS * _M_PRIOR[lvl]) / (seen + _PRIOR_PAIRS)
                                for lvl in levels[j]})
        done = abs(new_share - share) < 1e-7
        share = min(max(new_share, 1e-9), 1 - 1e-9)
        if done:
            break
    return m, share


def _m_prior(levels: tuple[int, ...]) -> dict[int, float]:
    if levels == (EXACT, DIFFERENT):
        return {EXACT: _M_PRIOR[EXACT], DIFFERENT: 1 - _M_PRIOR[EXACT]}
    return _normalized({lvl: _M_PRIOR[lvl] for lvl in levels})


def _share_seen(m: dict[int, float], chars: int | None) -> float:
    """The share of one person's record pairs a blocking key part lets through: those agreeing
    exactly, or (for a prefix) roughly all but those that differ."""
    return m[EXACT] if chars is None else 1 - m.get(DIFFERENT, 0.0)


def estimate(engine: Engine, rule: AgreementRule, fields: list[str], blocks: list[list[str]]) -> AgreementModel:
    """Fit the model on the candidate pairs in tl_work_cmp (u from all records)."""
    levels = [levels_of(f) for f in fields]
    exact = {r["i"]: (int(r["agree"] or 0), int(r["pairs"] or 0)) for r in engine.rows(exact_pairs_sql(fields))}
    engine.run(["DROP TABLE IF EXISTS tl_work_ucmp", sample_levels_sql(fields)])
    sampled: dict[int, dict[int, int]] = {}
    for r in engine.rows(level_counts_sql(fields, "tl_work_ucmp")):
        sampled.setdefault(r["i"], {})[int(r["level"])] = int(r["n"])
    engine.run("DROP TABLE IF EXISTS tl_work_ucmp")
    u = estimate_u(fields, exact, sampled)
    m_sum = [{lvl: 0.0 for lvl in lv} for lv in levels]
    m_weight = [0.0] * len(fields)
    sessions = []
    # m of a field is learnt only from pairs found WITHOUT it and without where people live
    # (as Splink trains each comparison with blocking rules that leave it out). Pairs that
    # share a postal code or a street hold households as much as duplicates: EM over them
    # converges on "same surname at one address", a match class in which first names and
    # birth dates disagree. Pairs sharing a person's own fields (a name, a birth date, a
    # national id) hold few families, so EM's match class there is one person.
    for blk, block in enumerate(blocks):
        names = {block_part(p)[0] for p in block}
        if names & PLACE_FIELDS or not names & PERSON_BLOCK_FIELDS:
            continue
        rows = engine.rows(patterns_sql(fields, blk))
        if not rows:
            continue
        patterns = np.array([[-1 if r[f"l{i}"] is None else int(r[f"l{i}"]) for i in range(len(fields))] for r in rows])
        counts = np.array([int(r["n"]) for r in rows], dtype=float)
        estimated = [i for i, f in enumerate(fields) if f not in names and not names & SAME_AS.get(f, set())]
        m, share = em(patterns, counts, estimated, levels, [_m_prior(lv) for lv in levels], u)
        matches = share * counts.sum()
        for i in estimated:
            for lvl in levels[i]:
                m_sum[i][lvl] += matches * m[i][lvl]
            m_weight[i] += matches
        sessions.append((block, matches))
    # A field seen in too few matching pairs keeps the stated priors, and the report says so.
    from_priors = [f for i, f in enumerate(fields) if m_weight[i] < MIN_MATCHING_PAIRS]
    m_final = [
        _m_prior(levels[i]) if fields[i] in from_priors else
        _normalized({lvl: (m_sum[i][lvl] + _PRIOR_PAIRS * _m_prior(levels[i])[lvl]) / (m_weight[i] + _PRIOR_PAIRS)
                     for lvl in levels[i]})
        for i in range(len(fields))
    ]
    having = engine.rows(having_sql(fields, [block for block, _ in sessions]))[0]
    records = int(having["n"] or 0)
    all_pairs = max(records * (records - 1) / 2, 1.0)
    # Matching pairs in all the data: each block's matches over the share of matches the
    # block can see (those agreeing exactly on its fields); the median over blocks.
    # A block holds only the pairs whose two records both have its fields, so its matches over
    # the share it can see estimate the matching pairs AMONG those pairs; scaled to all pairs
    # by the share of pairs having the fields (missing values say nothing of a match, as in
    # scoring, where a field one record lacks weighs 0). Unscaled, a key on names read a store
    # where a third of the records have no last name as if it held a third fewer duplicates.
    estimates = []
    for s, (block, matches) in enumerate(sessions):
        seen = math.prod(_share_seen(m_final[fields.index(block_part(p)[0])], block_part(p)[1]) for p in block)
        have = int(having[f"s{s}"] or 0)
        estimates.append(matches / max(seen, 1e-6) * all_pairs / max(have * (have - 1) / 2, 1.0))
    expected = float(np.median(estimates)) if estimates else float(records)
    expected = min(max(expected, 0.05 * records, 1e-3), all_pairs / 2)  # (an empty store has none)
    prior = math.log2(expected / (all_pairs - expected)) if all_pairs > expected else 0.0
    p = rule.match_probability
    models = [FieldModel(f, levels[i], m_final[i], u[i],
                         None if f in NO_FREQUENCIES else once_lu(kind_of(f), int(having[f"c{i}"] or 0)), f in from_priors,
                         int(having[f"c{i}"] or 0))
              for i, f in enumerate(fields)]
    return AgreementModel(models, prior, math.log2(p / (1 - p)), expected,
                          from_priors={f: m_weight[fields.index(f)] for f in from_priors}, records=records)


WORK = ("tl_work_bk", "tl_work_bs", "tl_work_cand", "tl_work_cmp", "tl_work_tf", "tl_work_score",
        GROUPS, REP_KEYS, REP_PAIRS, REP_SCORES)
# Kept after the rule ran, for the build to publish: the pairs it would link (PAIRS, for the
# next incremental build's scope) and a fitted model's value frequencies (FITTED_TF).
PAIRS, FITTED_TF = "tl_work_apairs", "tl_work_mtf"


def fit(engine: Engine, rule: AgreementRule, fields: list[str], stored: AgreementModel | None = None,
        sizes: str | None = None) -> AgreementModel | None:
    """Build the candidate pairs and their levels (tl_work_cmp), fit the model (or take the
    `stored` one, model.py) and score every pair (tl_work_score). Needs tl_work_person with
    every field in `fields`; `sizes` is a table of store-wide block sizes (blk, k, n) for a
    build that resolves part of the store, and `sizes`_r one of its refined keys' (blk, k, r, n)."""
    blocks = usable_blocks(rule, fields)
    if not blocks:
        return None
    require_comparisons(engine)
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in (*WORK, PAIRS, FITTED_TF)])
    engine.run([block_keys_sql(blocks, fields), *([] if sizes else [block_sizes_sql()]),
                *groups_sql(matched_columns(fields)),
                *weighted_candidates_sql(len(blocks), rule.max_block, rule.refine_over, sizes or "tl_work_bs"),
                compare_sql(fields, len(blocks))])
    skipped = {"+".join(blocks[r["blk"]]): (int(r["blocks"]), int(r["pairs"]))
               for r in engine.rows(skipped_blocks_sql(rule.max_block, sizes or "tl_work_bs"))}
    narrowed = {}
    if rule.refine_over < rule.max_block:
        narrowed = {"+".join(blocks[r["blk"]]): (int(r["blocks"]), int(r["pairs"] or 0))
                    for r in engine.rows(refined_blocks_sql(rule.refine_over, rule.max_block, sizes or "tl_work_bs",
                                                            f"{sizes}_r" if sizes else None))}
    if stored is None:
        model = estimate(engine, rule, fields, blocks)
        names = " ".join(f"WHEN {i} THEN {lit(f)}" for i, f in enumerate(fields))
        # Values seen once are left out of what is kept (their lu is lu_once) and, so that this
        # build scores exactly as the stored model will, out of this build's frequencies too.
        engine.run([frequencies_sql(fields, own_records(model)),
                    work_table(FITTED_TF, f"AS SELECT CASE i {names} END AS comparison, key AS value, lu "
                                          "FROM tl_work_tf WHERE n > 1"), "DELETE FROM tl_work_tf WHERE n < 2"])
    else:
        model = stored
        engine.run(stored_frequencies_sql(fields))
    model.skipped, model.refined = skipped, narrowed
    model.candidates = int(engine.scalar("SELECT SUM(w) FROM tl_work_cmp") or 0)
    engine.run([score_sql(model, table=REP_SCORES), *spread_sql(model), pairs_sql(model)])
    return model


def stored_frequencies_sql(fields: list[str], table: str = "tl_work_tf") -> str:
    """tl_work_tf from a stored model's value frequencies (tl_model_tf, model.py)."""
    names = " ".join(f"WHEN {lit(f)} THEN {i}" for i, f in enumerate(fields))
    return (work_table(table, f"AS SELECT CASE comparison {names} END AS i, value AS key, lu "
                              f"FROM tl_model_tf WHERE comparison IN ({', '.join(lit(f) for f in fields)})"))


def pairs_sql(model: AgreementModel, scored: str = "tl_work_score") -> str:
    """PAIRS: the scored pairs whose odds reach the threshold before any guard (a household's
    place fields counted once can only lower them): every pair the rule could link."""
    return work_table(PAIRS, f"AS SELECT a, b FROM {scored} WHERE odds >= {_num(model.threshold)}")


def drop_work(engine: Engine) -> None:
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in WORK])
