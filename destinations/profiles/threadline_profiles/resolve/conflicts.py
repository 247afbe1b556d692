"""Conflicts: links between records that look like two people, and when to believe it.

Family members share an address, a last name, often an email or a home phone, sometimes a
birth date (twins, a form filled in for a child); a phone number passes to a stranger. What
tells them apart is the first name and the birth date. A pair is a conflict when

- class 1: the records disagree on first name and birth date, or on the one of them both
  records have, and agree on neither (class 5 when both records have both and both differ:
  an email or a phone such records share is a household's, and never links them);
- class 2: they have different first names at the same home (same last name and address
  line) although their birth dates agree.

One person's records conflict too, through typos and noise, at fixed, stated rates
(TYPO_DIFFERENT: how often one person's two records differ beyond two edits on a first name
or a birth date). They are never taken from the agreement model the guard checks: a model
whose match class collapsed onto households would report family members' differences as
typos and switch the guard off. Conflicts are only believed where they are more than twice
as common as those rates explain: among the pairs a rule links, a class is vetoed when its
count exceeds twice the count expected from one person's records. In a store of households it is (family inboxes, twins); in a person
registry without households it is not, and the rules keep their links.
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline_profiles.engines.base import lit, quote, work_table
from threadline_profiles.resolve.agreement import DIFFERENT, EXACT, NEAR, level_sql

FIRST, BIRTH, MIDDLE, NATIONAL_ID = "first_name", "birth_date", "middle_name", "national_id"
# A birth year is a partial birth date: where two records do not both have a full date, their
# years (a year alone, or a full date's year) are compared instead — a loyalty sign-up that
# asks only the year tells a parent from a child as well as a full date would.
YEAR = "birth_year"
HOME = ("last_name", "address_line1")
# How often one person's two records differ beyond two edits, set generously for noisy
# customer files (an unlisted nickname or a middle name used as the first name; a birth date
# with the year and the day both wrong, or a placeholder date): a class of conflicts is
# believed only where the data shows more than twice this, so a register of people with
# noisy records keeps its links.
TYPO_DIFFERENT = {"first_name": 0.20, "birth_date": 0.10}
# Class 1 where both records have a first name and a birth date and both differ: two people
# for certain. An email or a phone they share is a household's, not a key (SHARED_CONTACTS).
BOTH_DIFFER = 5
REASONS = {1: "first name and birth date disagree", 2: "different first names at one home",
           4: "nothing tells apart the people at one home", BOTH_DIFFER: "first name and birth date disagree"}
SHARED_CONTACTS = ("email", "email_canonical", "phone")
# Class 1 but for a middle name both records share: counted as class 1 when judging whether
# conflicts are believed, never dropped.
SAME_MIDDLE = 3
# Two records at one home with neither a first name nor a birth date to compare: which of the
# family is it? Dropped only where the data shows family members.
UNTOLD = 4


def applies(fields: list[str]) -> bool:
    return FIRST in fields or BIRTH in fields


def class_sql(x: str, y: str, fields: list[str]) -> str:
    """0 (none), 1 or 2: the conflict class of records x and y (aliases of tl_work_person)."""
    f = f"COALESCE({level_sql(FIRST, x, y)}, -1)" if FIRST in fields else "-1"
    d = birth_level_sql(x, y, fields)
    m = f"COALESCE({level_sql(MIDDLE, x, y)}, -1)" if MIDDLE in fields else "-1"
    n = f"COALESCE({level_sql(NATIONAL_ID, x, y)}, -1)" if NATIONAL_ID in fields else "-1"
    return conflict_case(f, d, home_sql(x, y, fields), m, n)


def birth_level_sql(x: str, y: str, fields: list[str]) -> str:
    """The birth-date level of records x and y: their full dates where both have one, else
    their years (YEAR), -1 where they cannot be compared."""
    parts = [level_sql(BIRTH, x, y)] if BIRTH in fields else []
    if YEAR in fields:
        parts.append(level_sql(YEAR, x, y, BIRTH if BIRTH in fields else None))
    return f"COALESCE({', '.join(parts + ['-1'])})"


def has_birth_sql(alias: str, fields: list[str]) -> str:
    """Whether a record has a birth date or year (the year column holds a full date's year)."""
    names = [f for f in (BIRTH, YEAR) if f in fields]
    return " OR ".join(f"{alias}.{quote(f)} IS NOT NULL" for f in names) or "FALSE"


def conflict_case(f: str, d: str, home: str, m: str = "-1", n: str = "-1") -> str:
    """The conflict class from the first-name, birth-date, middle-name and national-id levels
    (-1: missing) and whether the records share a home. Where no birth date can be compared,
    a first name that differs under the same national id and middle name is more likely a
    nickname or a name written on a form than another person."""
    return (f"CASE WHEN {f} = {DIFFERENT} AND {d} = -1 AND {m} = {EXACT} AND {n} = {EXACT} THEN {SAME_MIDDLE} "
            f"WHEN {f} = {DIFFERENT} AND {d} = {DIFFERENT} THEN {BOTH_DIFFER} "
            f"WHEN ({f} = {DIFFERENT} AND {d} <= {DIFFERENT}) OR ({f} = -1 AND {d} = {DIFFERENT}) THEN 1 "
            f"WHEN {f} = {DIFFERENT} AND {d} >= {NEAR} AND {home} THEN 2 "
            f"WHEN {f} = -1 AND {d} = -1 AND {n} <> {EXACT} AND {home} THEN {UNTOLD} ELSE 0 END")


def home_sql(x: str, y: str, fields: list[str]) -> str:
    if not all(h in fields for h in HOME):
        return "FALSE"
    return " AND ".join(f"{x}.{quote(h)} = {y}.{quote(h)}" for h in HOME)


def presence_sql(x: str, y: str, fields: list[str]) -> str:
    """`hf, hd, hh`: 1 when both records have a first name, a birth date, a shared home."""
    def both(name: str) -> str:
        return f"CASE WHEN {x}.{quote(name)} IS NOT NULL AND {y}.{quote(name)} IS NOT NULL THEN 1 ELSE 0 END" if name in fields else "0"
    birth = f"CASE WHEN ({has_birth_sql(x, fields)}) AND ({has_birth_sql(y, fields)}) THEN 1 ELSE 0 END"
    return f"{both(FIRST)} AS hf, {birth} AS hd, CASE WHEN {home_sql(x, y, fields)} THEN 1 ELSE 0 END AS hh"


@dataclass
class Evidence:
    """Pairs a rule links, by which person fields both records have, and its conflicts."""

    both: float = 0  # pairs with a first name and a birth date on both records
    first_only: float = 0
    birth_only: float = 0
    home_first: float = 0  # pairs at one home with first names on both records
    conflicts: dict[int, float] | None = None

    def vetoed(self, m_first: float, m_birth: float) -> list[int]:
        """The conflict classes to believe: those over twice what one person's noise gives."""
        expected = {1: m_first * m_birth * self.both + m_first * self.first_only + m_birth * self.birth_only,
                    2: m_first * self.home_first}
        return [c for c, n in sorted((self.conflicts or {}).items()) if n > 2 * expected[c]]


def evidence_sql(pairs: str, by: str) -> str:
    """Per `by` (a rule column): presence counts and conflicts over a table of pairs with
    columns hf, hd, hh, conflict and n (how many pairs the row stands for)."""
    return (
        f"SELECT {by} AS rule, SUM(n * hf * hd) AS both_, SUM(n * hf * (1 - hd)) AS first_only, "
        f"SUM(n * (1 - hf) * hd) AS birth_only, SUM(n * hh * hf) AS home_first, "
        f"SUM(CASE WHEN conflict IN (1, {SAME_MIDDLE}, {BOTH_DIFFER}) THEN n ELSE 0 END) AS c1, "
        "SUM(CASE WHEN conflict = 2 THEN n ELSE 0 END) AS c2 "
        f"FROM {pairs} AS e GROUP BY {by}"
    )


def read_evidence(rows: list[dict]) -> dict[str, Evidence]:
    return {r["rule"]: Evidence(float(r["both_"] or 0), float(r["first_only"] or 0), float(r["birth_only"] or 0),
                                float(r["home_first"] or 0), {1: float(r["c1"] or 0), 2: float(r["c2"] or 0)})
            for r in rows}


# --------------------------------------------------------------------------- rule groups


def rule_pairs_sql(rules: list[str], max_records: int, fields: list[str]) -> list[str]:
    """tl_work_gpairs: (rule, key, a, b, hf, hd, hh, conflict, n) for the groups of the given
    rules. Groups whose records do not all show the same first name and birth date are
    enumerated pair by pair; the others (no conflict possible) are one row per group, with n
    its number of pairs. tl_work_mixed lists the enumerated groups."""
    names = ", ".join(lit(r) for r in rules)
    who = " || '|' || ".join(f"COALESCE(p.{quote(f)}, '')" for f in (FIRST, BIRTH, YEAR) if f in fields)
    home = " || '|' || ".join(f"COALESCE(p.{quote(h)}, '')" for h in HOME) if all(h in fields for h in HOME) else "''"

    def has(name: str) -> str:
        if name == BIRTH:
            return f"MIN(CASE WHEN {has_birth_sql('p', fields)} THEN 1 ELSE 0 END)"
        return f"MIN(CASE WHEN p.{quote(name)} IS NOT NULL THEN 1 ELSE 0 END)" if name in fields else "0"

    home_known = " * ".join(has(h) for h in HOME) if all(h in fields for h in HOME) else "0"
    members = (
        "FROM tl_work_keys AS k JOIN tl_work_groups AS g ON g.rule = k.rule AND g.key = k.key "
        f"LEFT JOIN tl_work_person AS p ON p.rid = k.rid WHERE k.rule IN ({names}) AND g.records <= {max_records}"
    )
    pairs = (
        "SELECT m.rule, m.key, x.rid AS a, y.rid AS b FROM tl_work_mixed AS m "
        "JOIN tl_work_keys AS x ON x.rule = m.rule AND x.key = m.key "
        "JOIN tl_work_keys AS y ON y.rule = m.rule AND y.key = m.key AND x.rid < y.rid"
    )
    return [
        # MIN <> MAX: cheaper than counting distinct values, and all that is asked
        work_table(
            "tl_work_gstat",
            f"AS SELECT k.rule, k.key, COUNT(*) AS records, "
            f"CASE WHEN MIN({who}) <> MAX({who}) THEN 2 ELSE 1 END AS people, {has(FIRST)} AS hf, {has(BIRTH)} AS hd, "
            f"CASE WHEN MIN({home}) = MAX({home}) THEN {home_known} ELSE 0 END AS hh {members} GROUP BY k.rule, k.key"),
        work_table("tl_work_mixed", "AS SELECT rule, key FROM tl_work_gstat WHERE people > 1"),
        work_table(
            "tl_work_gpairs",
            f"AS SELECT p.rule, p.key, p.a, p.b, {presence_sql('px', 'py', fields)}, "
            f"{class_sql('px', 'py', fields)} AS conflict, 1 AS n FROM ({pairs}) AS p "
            "LEFT JOIN tl_work_person AS px ON px.rid = p.a LEFT JOIN tl_work_person AS py ON py.rid = p.b "
            "UNION ALL SELECT rule, key, NULL, NULL, hf, hd, hh, 0, records * (records - 1) / 2 FROM tl_work_gstat WHERE people = 1"),
    ]


def with_both_differ(classes: set[int]) -> set[int]:
    """Vetoing class 1 vetoes its certain part too."""
    return classes | {BOTH_DIFFER} if 1 in classes else classes


def relink_sql(vetoed: dict[str, list[int]]) -> list[str]:
    """Replace the star edges of the enumerated groups by their pairs, less the vetoed ones."""
    veto = " OR ".join(f"(rule = {lit(r)} AND conflict IN ({', '.join(str(c) for c in cs)}))" for r, cs in vetoed.items() if cs)
    keep = f"NOT ({veto})" if veto else "TRUE"
    return [
        "DELETE FROM tl_work_edges WHERE EXISTS (SELECT 1 FROM tl_work_mixed AS m "
        "WHERE m.rule = tl_work_edges.rule AND m.key = tl_work_edges.key)",
        f"INSERT INTO tl_work_edges SELECT b AS rid, a AS anchor, rule, key FROM tl_work_gpairs WHERE a IS NOT NULL AND {keep}",
    ]


def dropped_sql(vetoed: dict[str, list[int]]) -> str:
    """(a, b, rule, conflict): the pairs the veto dropped."""
    veto = " OR ".join(f"(rule = {lit(r)} AND conflict IN ({', '.join(str(c) for c in cs)}))" for r, cs in vetoed.items() if cs)
    return f"SELECT a, b, rule, conflict FROM tl_work_gpairs WHERE a IS NOT NULL AND ({veto or 'FALSE'})"


def from_levels_sql(names: list[str], s: str = "s") -> str:
    """`hf, hd, hh, conflict` from a scored pair's level columns (l0, l1, ... for `names`)."""
    def col(name: str) -> str:
        return f"{s}.l{names.index(name)}"
    f = f"COALESCE({col(FIRST)}, -1)" if FIRST in names else "-1"
    d = f"COALESCE({', '.join([col(f) for f in (BIRTH, YEAR) if f in names] + ['-1'])})"
    m = f"COALESCE({col(MIDDLE)}, -1)" if MIDDLE in names else "-1"
    n = f"COALESCE({col(NATIONAL_ID)}, -1)" if NATIONAL_ID in names else "-1"
    home = " AND ".join(f"{col(h)} = {EXACT}" for h in HOME) if all(h in names for h in HOME) else "FALSE"
    hf = f"CASE WHEN {col(FIRST)} IS NOT NULL THEN 1 ELSE 0 END" if FIRST in names else "0"
    birth = " OR ".join(f"{col(f)} IS NOT NULL" for f in (BIRTH, YEAR) if f in names)
    hd = f"CASE WHEN {birth} THEN 1 ELSE 0 END" if birth else "0"
    return f"{hf} AS hf, {hd} AS hd, CASE WHEN {home} THEN 1 ELSE 0 END AS hh, {conflict_case(f, d, home, m, n)} AS conflict"


WORK = ("tl_work_gstat", "tl_work_mixed", "tl_work_gpairs")
