"""Profile ids that stay stable across builds.

A component is compared with the profiles its records belonged to after the last build:

- a previous profile is *whole* in a component when every one of its surviving records is
  there. A component keeps the oldest profile that is whole in it (a growing profile keeps
  its id; a merge keeps the older id and records the others as merged into it);
- a component with no whole previous profile gets a new id: for a split, derived from the
  profile it split from, and recorded in the history; otherwise derived from its first record.

New ids are derived from record keys (md5), so the same input gives the same ids, whether
or not an earlier build was interrupted.
"""

from __future__ import annotations

from threadline_profiles.engines.base import lit, work_table


def previous_sql() -> str:
    """tl_work_prev: (comp, profile_id) for each previous profile a component's records had."""
    return (
        work_table(
            "tl_work_prev",
            "AS SELECT DISTINCT c.comp, m.profile_id FROM tl_work_comp AS c "
            "JOIN tl_work_rec AS r ON r.rid = c.rid JOIN tl_members AS m ON m.record_key = r.record_key")
    )


def kept_sql() -> str:
    """tl_work_kept: (comp, profile_id) — the oldest previous profile whole in each component."""
    return (
        work_table(
            "tl_work_kept",
            "AS SELECT comp, profile_id FROM ("
            "SELECT p.comp, p.profile_id, ROW_NUMBER() OVER (PARTITION BY p.comp ORDER BY pr.created_at, p.profile_id) AS rn "
            "FROM tl_work_prev AS p JOIN (SELECT profile_id FROM tl_work_prev GROUP BY profile_id HAVING COUNT(*) = 1) AS w "
            "ON w.profile_id = p.profile_id LEFT JOIN tl_profiles AS pr ON pr.profile_id = p.profile_id"
            ") AS k WHERE rn = 1")
    )


def assign_sql() -> str:
    """tl_work_pid: (comp, profile_id, parent) for every component."""
    return (
        work_table(
            "tl_work_pid",
            "AS SELECT f.comp, COALESCE(k.profile_id, "
            "'p' || SUBSTR(MD5(COALESCE(s.parent, '') || '/' || f.first_key), 1, 15)) AS profile_id, "
            "CASE WHEN k.profile_id IS NULL THEN s.parent END AS parent FROM ("
            "SELECT c.comp, MIN(r.record_key) AS first_key FROM tl_work_comp AS c JOIN tl_work_rec AS r ON r.rid = c.rid "
            "GROUP BY c.comp) AS f LEFT JOIN tl_work_kept AS k ON k.comp = f.comp "
            "LEFT JOIN (SELECT comp, MIN(profile_id) AS parent FROM tl_work_prev GROUP BY comp) AS s ON s.comp = f.comp")
    )


def history_sql(build_id: str, at: str) -> str:
    """tl_work_history: what became of previous profiles that did not survive as themselves."""
    stamp = f"CAST({lit(at)} AS TIMESTAMP)"
    return (
        work_table(
            "tl_work_history",
            f"AS "
            f"SELECT {lit(build_id)} AS build_id, {stamp} AS changed_at, p.profile_id, "
            "CASE WHEN w.profile_id IS NULL THEN 'split_into' ELSE 'merged_into' END AS event, n.profile_id AS related_profile_id "
            "FROM tl_work_prev AS p JOIN tl_work_pid AS n ON n.comp = p.comp "
            "LEFT JOIN (SELECT profile_id FROM tl_work_prev GROUP BY profile_id HAVING COUNT(*) = 1) AS w ON w.profile_id = p.profile_id "
            "WHERE n.profile_id <> p.profile_id "
            f"UNION ALL SELECT {lit(build_id)} AS build_id, {stamp} AS changed_at, n.profile_id, 'created' AS event, "
            "n.parent AS related_profile_id FROM tl_work_pid AS n "
            "WHERE NOT EXISTS (SELECT 1 FROM tl_profiles AS o WHERE o.profile_id = n.profile_id)")
    )


def members_sql() -> str:
    """tl_work_members: every record with its profile."""
    return (
        work_table(
            "tl_work_members",
            "AS SELECT n.profile_id, r.record_key, r.source, r.stream, r.pk, r.seen_at, r.rid "
            "FROM tl_work_comp AS c JOIN tl_work_pid AS n ON n.comp = c.comp JOIN tl_work_rec AS r ON r.rid = c.rid")
    )


def profiles_sql(at: str) -> str:
    """tl_work_profiles: one row per profile; created_at survives from the previous build."""
    stamp = f"CAST({lit(at)} AS TIMESTAMP)"
    return (
        work_table(
            "tl_work_profiles",
            "AS SELECT m.profile_id, COALESCE(MIN(p.created_at), "
            f"{stamp}) AS created_at, {stamp} AS updated_at, COUNT(DISTINCT m.record_key) AS records, "
            "COUNT(DISTINCT m.source) AS sources FROM tl_work_members AS m "
            "LEFT JOIN tl_profiles AS p ON p.profile_id = m.profile_id GROUP BY m.profile_id")
    )
