"""Name hints: the first and last name a record shows only in its contact details.

A newsletter sign-up has an address (kelly.neal@…, kneal1985@…) and often no last name; a
social follower has a handle (kneal85) and a display name ("Kelly N.", or the handle again).
These carry a person's name, and customer data has no other way to join such records to a
CRM contact when they share no email or phone. Where a record lacks a first or a last name,
or has only its initial ("Kate N." with the handle kateneal), a hint fills it in tl_work_person — the matching table only: the profile's values are
never touched — so the existing comparisons and blocking keys use it.

Readings, in bulk SQL (DuckDB and, transpiled, Postgres), from a display name (a full
name), an email's local part or a social handle, lower-cased with every run of non-letters
made one separator (digits go: kneal1985 -> kneal), a leading filler word dropped (the_,
its_, real_):

- two words or more: the first and the last word, read as first and last name (the other
  way round when only that order fits the store's names: neal_kate);
- one word: split where a first name the store knows is followed by a last name it knows
  (kateneal, or nealkate), else an initial and a known last name (kneal), else a known
  first name and an initial (katen), else a known first or last name alone.

"Known" means seen as a first or a last name on some record of the store: the store's own
names are the dictionary, so nothing here is tuned to one population, and a word no
record uses as a name (sunnytiger) gives no hint. A first name found this way takes the
matching key other records give it (Kate -> katherine, the nickname hint). A reading is
used only where it agrees with the record's own name on the initial it shares (a
subscription to someone else's address gives no hint).
"""

from __future__ import annotations

import datetime

import pyarrow as pa

from threadline_profiles.engines.base import Engine, lit, work_table
from threadline_profiles.resolve.normalize import NICKNAMES

# Where a record's hint comes from, in order of preference.
SOURCES = (("full_name", "value"), ("email", "local"), ("social_handle", "match_key"))
FILLER_WORDS = ("the", "its", "im", "iam", "real", "official", "mr", "mrs", "ms", "dr")
_MAX_WORD = 40  # longest single word split into two names
MIN_AGE = 10  # a four-digit number in an address is read as a birth year up to this many years ago
WORK = ("tl_work_hint_nick", "tl_work_hint_txt", "tl_work_hint_first", "tl_work_hint_last", "tl_work_hint_read", "tl_work_hint")


def applies(person_fields: list[str], mapped: set[str]) -> bool:
    """Hints fill first and last names, so both must be compared, and something must carry them."""
    return {"first_name", "last_name"} <= set(person_fields) and bool(mapped & {s for s, _ in SOURCES})


def _letters(sql: str) -> str:
    """Lower-case words of `sql`: every run of non-letters one space, no space at either end."""
    return f"TRIM(REGEXP_REPLACE(LOWER({sql}), '[^a-z]+', ' ', 'g'))"


def _wanting(p: str) -> str:
    """A record of `p` whose first or last name is missing or only an initial ("Kate N.")."""
    return " OR ".join(f"{p}.{n} IS NULL OR LENGTH({p}.{n}) = 1" for n in ("first_name", "last_name"))


def _filled(name: str) -> str:
    """The record's own `name` (first or last) where it has more than an initial, else the
    hint's (best_sql keeps only readings that begin with the initial the record has)."""
    own, hint = f"tl_work_person.{name}_name", f"h.{name}"
    return f"CASE WHEN {own} IS NULL OR (LENGTH({own}) = 1 AND LENGTH({hint}) > 1) THEN COALESCE({hint}, {own}) ELSE {own} END"


def texts_sql() -> str:
    """tl_work_hint_txt: (rid, src, t) — the words of each hint source of each record lacking a
    first or a last name, a leading filler word dropped."""
    parts = []
    for src, (field, column) in enumerate(SOURCES):
        text = "SPLIT_PART(v.value, '@', 1)" if column == "local" else f"v.{column}"
        parts.append(f"SELECT v.rid, {src} AS src, {_letters(text)} AS t FROM tl_work_nv AS v LEFT JOIN tl_work_person AS p "
                     f"ON p.rid = v.rid WHERE v.field = {lit(field)} AND v.status = 'ok' "
                     f"AND ({_wanting('p')})")
    filler = "|".join(FILLER_WORDS)
    return (work_table("tl_work_hint_txt", f"AS SELECT rid, src, REGEXP_REPLACE(t, '^({filler}) ', '') AS t "
                                           f"FROM ({' UNION ALL '.join(parts)}) AS s WHERE t <> ''"))


def dictionaries_sql() -> list[str]:
    """The store's own names: first names as written (their first word, letters only) with
    the matching key records give them, and the nicknames the normalizer knows (Kathy ->
    katherine, as a first name column would key it); last names' matching keys."""
    word = _letters("SPLIT_PART(value, ' ', 1)")
    return [
        work_table(
            "tl_work_hint_first",
            "AS SELECT word, MIN(key) AS key FROM ("
            f"SELECT {word} AS word, match_key AS key FROM tl_work_nv WHERE field = 'first_name' AND status = 'ok' "
            "UNION ALL SELECT match_key AS word, match_key AS key FROM tl_work_nv WHERE field = 'first_name' AND status = 'ok' "
            "UNION ALL SELECT word, key FROM tl_work_hint_nick UNION ALL SELECT key AS word, key FROM tl_work_hint_nick"
            ") AS f WHERE LENGTH(word) >= 2 GROUP BY word"),
        work_table("tl_work_hint_last", "AS SELECT DISTINCT match_key AS word FROM tl_work_nv "
                                        "WHERE field = 'last_name' AND status = 'ok' AND LENGTH(match_key) >= 2"),
    ]


def readings_sql() -> str:
    """tl_work_hint_read: (rid, src, rank, first, last) — every reading of every hint; a lower
    rank is a reading with more of the store's names in it."""
    positions = ", ".join(f"({i})" for i in range(1, _MAX_WORD))
    # The words after the first, together where the store knows them as one last name
    # (Okonkwo-Bell, van der Berg), else the last word.
    rest = "REPLACE(SUBSTR(h.t, STRPOS(h.t, ' ') + 1), ' ', '')"
    several = (f"SELECT h.rid, h.src, SPLIT_PART(h.t, ' ', 1) AS w1, COALESCE(r.word, REGEXP_REPLACE(h.t, '^.* ', '')) AS w2 "
               f"FROM tl_work_hint_txt AS h LEFT JOIN tl_work_hint_last AS r ON r.word = {rest} WHERE STRPOS(h.t, ' ') > 0")
    one = ("SELECT h.rid, h.src, h.t AS w, pos.i, SUBSTR(h.t, 1, pos.i) AS pre, SUBSTR(h.t, pos.i + 1) AS suf "
           f"FROM tl_work_hint_txt AS h JOIN (VALUES {positions}) AS pos(i) ON pos.i < LENGTH(h.t) "
           "WHERE STRPOS(h.t, ' ') = 0")
    swapped = "(f1.word IS NULL AND l1.word IS NOT NULL AND f2.word IS NOT NULL)"  # neal_kate
    return (
        work_table(
            "tl_work_hint_read",
            "AS "
            # Two words or more: a display name is a name as it stands; of an address or a handle
            # only the words the store knows as names (kelly.xyz: kelly, no last name).
            "SELECT s.rid, s.src, CASE WHEN f1.word IS NOT NULL AND l2.word IS NOT NULL THEN 1 ELSE 2 END AS rank, "
            f"CASE WHEN {swapped} THEN s.w2 WHEN s.src = 0 OR f1.word IS NOT NULL THEN s.w1 END AS first, "
            f"CASE WHEN {swapped} THEN s.w1 WHEN s.src = 0 OR l2.word IS NOT NULL OR LENGTH(s.w2) = 1 THEN s.w2 END AS last "
            f"FROM ({several}) AS s LEFT JOIN tl_work_hint_first AS f1 ON f1.word = s.w1 "
            "LEFT JOIN tl_work_hint_last AS l2 ON l2.word = s.w2 LEFT JOIN tl_work_hint_last AS l1 ON l1.word = s.w1 "
            "LEFT JOIN tl_work_hint_first AS f2 ON f2.word = s.w2 "
            "WHERE s.src = 0 OR f1.word IS NOT NULL OR l2.word IS NOT NULL OR f2.word IS NOT NULL "
            # One word, split in two: known first + known last (either order), an initial + a
            # known last name, a known first name + an initial, a known last name + an initial.
            "UNION ALL SELECT o.rid, o.src, CASE WHEN f.word IS NOT NULL AND l.word IS NOT NULL THEN 1 "
            "WHEN o.i = 1 AND l.word IS NOT NULL THEN 3 ELSE 4 END AS rank, o.pre AS first, o.suf AS last "
            f"FROM ({one}) AS o LEFT JOIN tl_work_hint_first AS f ON f.word = o.pre LEFT JOIN tl_work_hint_last AS l ON l.word = o.suf "
            "WHERE (f.word IS NOT NULL AND l.word IS NOT NULL) OR (o.i = 1 AND LENGTH(o.suf) >= 3 AND l.word IS NOT NULL) "
            "OR (f.word IS NOT NULL AND LENGTH(o.suf) = 1) "
            "UNION ALL SELECT o.rid, o.src, CASE WHEN f.word IS NOT NULL THEN 1 ELSE 4 END AS rank, o.suf AS first, o.pre AS last "
            f"FROM ({one}) AS o JOIN tl_work_hint_last AS l ON l.word = o.pre LEFT JOIN tl_work_hint_first AS f ON f.word = o.suf "
            "WHERE f.word IS NOT NULL OR (LENGTH(o.suf) = 1 AND LENGTH(o.pre) >= 3) "
            # One word, whole: a known first name, else a known last name.
            "UNION ALL SELECT h.rid, h.src, 5 AS rank, h.t AS first, NULL AS last FROM tl_work_hint_txt AS h "
            "JOIN tl_work_hint_first AS f ON f.word = h.t WHERE STRPOS(h.t, ' ') = 0 "
            "UNION ALL SELECT h.rid, h.src, 6 AS rank, NULL AS first, h.t AS last FROM tl_work_hint_txt AS h "
            "JOIN tl_work_hint_last AS l ON l.word = h.t WHERE STRPOS(h.t, ' ') = 0")
    )


def best_sql() -> str:
    """tl_work_hint: (rid, first, last) — each record's best reading that agrees with the
    name it has (same initial), the first name as the store keys it. Where the best reading
    has only an initial or no first name (a handle kneal85 beside a display name "Kelly"),
    the best full first name of another reading fills it, when it begins with that initial;
    and a last name it has only the initial of, the best full last name beginning so."""
    fits = ("(p.first_name IS NULL OR r.first IS NULL OR SUBSTR(p.first_name, 1, 1) = SUBSTR(r.first, 1, 1)) "
            "AND (p.last_name IS NULL OR r.last IS NULL OR SUBSTR(p.last_name, 1, 1) = SUBSTR(r.last, 1, 1))")

    def ranked(where: str) -> str:
        return ("SELECT r.rid, r.first, r.last, ROW_NUMBER() OVER (PARTITION BY r.rid ORDER BY r.rank, r.src, "
                "COALESCE(LENGTH(r.first), 0) DESC, COALESCE(r.first, ''), COALESCE(r.last, '')) AS n FROM tl_work_hint_read AS r LEFT JOIN tl_work_person AS p "
                f"ON p.rid = r.rid WHERE {fits}{where}")

    first = ("CASE WHEN b.first IS NULL OR (LENGTH(b.first) = 1 AND SUBSTR(g.first, 1, 1) = b.first) "
             "THEN g.first ELSE b.first END")
    # The same for a last name the best reading has only the initial of: a display name
    # "Eloisa D." beside the handle edaniels38 is Eloisa Daniels.
    last = "CASE WHEN LENGTH(b.last) = 1 AND SUBSTR(gl.last, 1, 1) = b.last THEN gl.last ELSE b.last END"
    return (work_table(
        "tl_work_hint",
        f"AS SELECT c.rid, COALESCE(f.key, c.first) AS first, c.last FROM "
        f"(SELECT b.rid, {first} AS first, {last} AS last FROM ({ranked('')}) AS b "
        f"LEFT JOIN ({ranked(' AND LENGTH(r.first) >= 2')}) AS g ON g.rid = b.rid AND g.n = 1 "
        f"LEFT JOIN ({ranked(' AND LENGTH(r.last) >= 2')}) AS gl ON gl.rid = b.rid AND gl.n = 1 WHERE b.n = 1) AS c "
        "LEFT JOIN tl_work_hint_first AS f ON f.word = c.first"))


def fill_sql() -> list[str]:
    """Missing names filled; a record with nothing else compared (a follower with a handle
    alone) gets a row of its own."""
    return [f"UPDATE tl_work_person SET first_name = {_filled('first')}, "
            f"last_name = {_filled('last')} FROM tl_work_hint AS h WHERE h.rid = tl_work_person.rid",
            "INSERT INTO tl_work_person (rid, first_name, last_name) SELECT h.rid, h.first, h.last FROM tl_work_hint AS h "
            "WHERE NOT EXISTS (SELECT 1 FROM tl_work_person AS p WHERE p.rid = h.rid)"]


USERNAME = "username"  # a compared field of tl_work_person (agreement.py), made here
USERNAME_FROM = ("social_handle", "email")


def username_sql() -> str:
    """A record's username, for tl_work_person: its social handle, else its email's local part,
    lower case, without separators or a leading filler word (the_kateneal, kate.neal and
    kate_neal are all kateneal); digits are kept, as they tell two people of one name apart
    (sofia.jones102, sofiajones532). Under four characters it says nothing (NULL). People
    reuse one username as a handle and an address, so a follower's handle meets a
    subscriber's address here, where no identifier is shared."""
    filler = "|".join(FILLER_WORDS)

    def clean(text: str) -> str:
        words = f"TRIM(REGEXP_REPLACE(LOWER({text}), '[^a-z0-9]+', ' ', 'g'))"
        return f"REPLACE(REGEXP_REPLACE({words}, '^({filler}) ', ''), ' ', '')"

    handle = f"MAX(CASE WHEN field = 'social_handle' THEN {clean('match_key')} END)"
    local_part = "SPLIT_PART(value, '@', 1)"
    local = f"MAX(CASE WHEN field = 'email' THEN {clean(local_part)} END)"
    name = f"COALESCE({handle}, {local})"
    return f"CASE WHEN LENGTH({name}) >= 4 THEN {name} END"


def handle_year_sql() -> str:
    """A record's handle year, for tl_work_person (agreement.HANDLE_YEAR): the last run of
    digits of its social handle, else of its email's local part, when it reads as a year —
    two digits (rburris59: 59), or four from 1900 to MIN_AGE years ago (kneal1985: 85) —
    as its last two digits; NULL otherwise (sofia.jones102)."""
    latest = datetime.date.today().year - MIN_AGE

    def year(text: str) -> str:
        run = f"REGEXP_REPLACE(TRIM(REGEXP_REPLACE({text}, '[^0-9]+', ' ', 'g')), '^.* ', '')"
        return (f"CASE WHEN LENGTH({run}) = 2 THEN {run} WHEN LENGTH({run}) = 4 AND {run} BETWEEN '1900' AND '{latest}' "
                f"THEN SUBSTR({run}, 3, 2) END")

    handle = f"MAX(CASE WHEN field = 'social_handle' THEN {year('match_key')} END)"
    local_part = "SPLIT_PART(value, '@', 1)"
    local = f"MAX(CASE WHEN field = 'email' THEN {year(local_part)} END)"
    return f"COALESCE({handle}, {local})"


def birth_year_sql(dated: bool) -> str:
    """A record without a birth year (nor a birth date, when `dated`) takes the one its address
    or handle spells out in four digits (kneal1985), when they spell out only one: people put
    their birth year in an address far more often than any other year of a lifetime."""
    latest = datetime.date.today().year - MIN_AGE
    runs = []
    for field, text in (("email", "SPLIT_PART(value, '@', 1)"), ("social_handle", "match_key")):
        digits = f"TRIM(REGEXP_REPLACE({text}, '[^0-9]+', ' ', 'g'))"
        for run in (f"SPLIT_PART({digits}, ' ', 1)", f"REGEXP_REPLACE({digits}, '^.* ', '')"):
            runs.append(f"SELECT rid, {run} AS year FROM tl_work_nv WHERE field = {lit(field)} AND status = 'ok'")
    years = (f"SELECT rid, MIN(year) AS year FROM ({' UNION ALL '.join(runs)}) AS r WHERE LENGTH(year) = 4 "
             f"AND year BETWEEN '1900' AND '{latest}' GROUP BY rid HAVING COUNT(DISTINCT year) = 1")
    undated = " AND tl_work_person.birth_date IS NULL" if dated else ""
    return (f"UPDATE tl_work_person SET birth_year = y.year FROM ({years}) AS y WHERE y.rid = tl_work_person.rid "
            f"AND tl_work_person.birth_year IS NULL{undated}")


def stored_dictionaries_sql() -> list[str]:
    """The dictionaries a stored agreement model keeps (tl_model_names, model.py): a build that
    resolves part of the store reads the names of all of it, as the fitting build did."""
    return [work_table("tl_work_hint_first", "AS SELECT word, key FROM tl_model_names WHERE kind = 'first'"),
            work_table("tl_work_hint_last", "AS SELECT word FROM tl_model_names WHERE kind = 'last'")]


def kept_dictionaries_sql(table: str) -> list[str]:
    """`table` (kind, word, key): this build's dictionaries, for the model to keep."""
    return [f"DROP TABLE IF EXISTS {table}",
            work_table(
                table,
                f"AS SELECT 'first' AS kind, word, key FROM tl_work_hint_first "
                "UNION ALL SELECT 'last' AS kind, word, CAST(NULL AS VARCHAR) AS key FROM tl_work_hint_last")]


def fill(engine: Engine, person_fields: list[str], stored: bool = False, keep: str | None = None) -> None:
    """Fill missing first and last names (and birth years, where the store compares them) of
    tl_work_person from the records' hints. The dictionaries of names are the stored model's
    when `stored`, else read from the records and (`keep`) left in that table."""
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in WORK])
    engine.load_table("tl_work_hint_nick", pa.table({"word": list(NICKNAMES), "key": list(NICKNAMES.values())}), temp=True)
    years = [birth_year_sql("birth_date" in person_fields)] if "birth_year" in person_fields else []
    names = stored_dictionaries_sql() if stored else dictionaries_sql() + (kept_dictionaries_sql(keep) if keep else [])
    engine.run([texts_sql(), *names, readings_sql(), best_sql(), *fill_sql(), *years]
               + [f"DROP TABLE IF EXISTS {t}" for t in WORK])
