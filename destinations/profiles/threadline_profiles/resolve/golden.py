"""Stage 5, merge: the golden record, one value per profile and field, with lineage.

Survivorship rules order a field's candidate values (valid values of the profile's records):

    source_priority  the source mapped with the highest `cleaning.priority`, then most recent
    most_recent      the record seen last (its `updated_at` column, else when it landed, to the
                     microsecond: a later commit is more recent, on every engine)
    most_frequent    the value most records agree on, then most recent
    first_non_null   the record seen first

The winner keeps where it came from: source, stream, record key, and when it was seen.
"""

from __future__ import annotations

from threadline_profiles.engines.base import lit, work_view

# (value last: one record can offer a field two values, e.g. an email and a secondary email,
# and a tie left to the engine picked either, from one run to the next)
ORDER_BY = {
    "source_priority": "priority DESC, seen_at DESC, record_key, value",
    "most_recent": "seen_at DESC, priority DESC, record_key, value",
    "most_frequent": "freq DESC, seen_at DESC, record_key, value",
    "first_non_null": "seen_at ASC, record_key, value",
}


def candidates_sql(fields: list[str], with_frequency: bool) -> str:
    """Every valid value of the given golden fields, with its record's lineage and (for
    most_frequent) how many of the profile's records carry it: a subquery, not a table, so
    that millions of candidates are never written out."""
    names = ", ".join(lit(f) for f in fields)
    freq = "COUNT(*) OVER (PARTITION BY c.profile_id, c.field, c.match_key)" if with_frequency else "1"
    return (
        f"(SELECT c.*, {freq} AS freq "
        "FROM (SELECT m.profile_id, v.field, v.value, v.match_key, m.source, m.stream, m.record_key, r.priority, r.seen_at "
        "FROM tl_work_nv AS v JOIN tl_work_members AS m ON m.rid = v.rid JOIN tl_work_rec AS r ON r.rid = v.rid "
        f"WHERE v.status = 'ok' AND v.field IN ({names})) AS c)"
    )


def golden_sql(rules: dict[str, list[str]]) -> str:
    """tl_work_golden: the winning value per profile and field. `rules` maps a survivorship
    rule to the fields it decides; each rule is one ranked SELECT over its fields'
    candidates, UNION ALL-ed. A view: it is computed once, as it is published."""
    parts = []
    for rule, fields in rules.items():
        if not fields:
            continue
        parts.append(
            f"SELECT profile_id, field, value, source, stream, record_key, seen_at, {lit(rule)} AS rule FROM ("
            f"SELECT *, ROW_NUMBER() OVER (PARTITION BY profile_id, field ORDER BY {ORDER_BY[rule]}) AS rn "
            f"FROM {candidates_sql(fields, rule == 'most_frequent')} AS cand) AS ranked WHERE rn = 1"
        )
    if not parts:
        parts = ["SELECT CAST(NULL AS VARCHAR) AS profile_id, CAST(NULL AS VARCHAR) AS field, CAST(NULL AS VARCHAR) AS value, "
                 "CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS stream, CAST(NULL AS VARCHAR) AS record_key, "
                 "CAST(NULL AS VARCHAR) AS seen_at, CAST(NULL AS VARCHAR) AS rule WHERE 1 = 0"]
    return work_view("tl_work_golden", f"AS {' UNION ALL '.join(parts)}")
