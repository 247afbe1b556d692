"""Consent per profile, channel and purpose, from what the sources say; the latest word wins.

A mapping's `consent` block turns each record of its stream into a consent statement:
(channel, purpose, granted or denied, when). A record whose value is in neither the granted
nor the denied list says nothing. Per (profile, channel, purpose) the latest statement wins;
at the same time a denial wins over a grant, so a tie never opts anyone in.
`tl_consent` holds the winners with their lineage (source, stream, record key). A profile
without a statement for a channel gets the channel's default (`consent.defaults`).

Consent is never cut at `traits.as_of`: an opt-out that arrives later always counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threadline_profiles.config import ConsentMapping, StreamMapping
from threadline_profiles.config.audiences import CHANNELS, ConsentSettings
from threadline_profiles.engines.base import Engine, lit, quote, work_table
from threadline_profiles.land.landing import LandedStream
from threadline_profiles.traits.facts import member_join, timestamp_expr, word_expr

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

WORK_TABLES = ("tl_work_consent_all", "tl_work_consent")
CREATE_PUBLISHED = ("CREATE TABLE IF NOT EXISTS tl_consent (profile_id VARCHAR, channel VARCHAR, purpose VARCHAR, "
                    "granted BOOLEAN, \"at\" TIMESTAMP, source VARCHAR, stream VARCHAR, record_key VARCHAR)")
PUBLISHED_SELECT = 'SELECT profile_id, channel, purpose, granted, "at", source, stream, record_key FROM tl_work_consent'

# The golden fields a channel needs before anyone can be reached on it: every listed group
# must have at least one field present.
CHANNEL_IDENTIFIERS: dict[str, list[list[str]]] = {
    "email": [["email"]],
    "sms": [["phone"]],
    "advertising": [["email", "phone"]],
    "direct_mail": [["address_line1"], ["postal_code", "city"]],
}


def _statement(stream: LandedStream, mapping: StreamMapping, block: ConsentMapping, types: dict[str, str]) -> str:
    if block.every_record is not None:
        granted, keep = ("TRUE" if block.every_record == "granted" else "FALSE"), "TRUE"
    else:
        word = word_expr(f"CAST(r.{quote(block.column or '')} AS VARCHAR)")
        granted = f"{word} IN ({', '.join(lit(v) for v in block.granted) or 'NULL'})"
        keep = f"{word} IN ({', '.join(lit(v) for v in [*block.granted, *block.denied]) or 'NULL'})"
    column = block.timestamp or mapping.updated_at
    at = timestamp_expr(f"r.{quote(column)}", types.get(column, "VARCHAR")) if column else "CAST(NULL AS TIMESTAMP)"
    return (
        f"SELECT m.profile_id, {lit(block.channel)} AS channel, {lit(block.purpose)} AS purpose, {granted} AS granted, "
        f"COALESCE({at}, CAST(r._tl_landed_at AS TIMESTAMP)) AS \"at\", {lit(stream.source)} AS source, "
        f"{lit(stream.stream)} AS stream, m.record_key {member_join(stream)} WHERE {keep}"
    )


def consent_sql(engine: Engine, streams: list[tuple[LandedStream, StreamMapping]]) -> list[str]:
    """tl_work_consent_all (every statement) and tl_work_consent (the latest per profile,
    channel and purpose)."""
    parts = [
        _statement(s, m, block, engine.column_types(s.table))
        for s, m in streams for block in m.consent
    ] or ["SELECT CAST(NULL AS VARCHAR) AS profile_id, CAST(NULL AS VARCHAR) AS channel, CAST(NULL AS VARCHAR) AS purpose, "
          "CAST(NULL AS BOOLEAN) AS granted, CAST(NULL AS TIMESTAMP) AS \"at\", CAST(NULL AS VARCHAR) AS source, "
          "CAST(NULL AS VARCHAR) AS stream, CAST(NULL AS VARCHAR) AS record_key WHERE 1 = 0"]
    return [
        work_table("tl_work_consent_all", f"AS {' UNION ALL '.join(parts)}"),
        work_table(
            "tl_work_consent",
            'AS SELECT profile_id, channel, purpose, granted, "at", source, stream, record_key '
            "FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY profile_id, channel, purpose "
            'ORDER BY "at" DESC, granted ASC, record_key DESC) AS rn FROM tl_work_consent_all) AS s WHERE rn = 1'),
    ]


def reachable_sql(channel: str, purpose: str, settings: ConsentSettings, consent_table: str = "tl_consent") -> str:
    """SELECT profile_id of every profile holding the channel's identifiers whose consent
    for (channel, purpose) is granted, by record or by default."""
    groups = CHANNEL_IDENTIFIERS[channel]
    fields = sorted({f for g in groups for f in g})
    having = " AND ".join(
        f"COUNT(CASE WHEN field IN ({', '.join(lit(f) for f in g)}) THEN 1 END) > 0" for g in groups)
    return (
        f"SELECT h.profile_id FROM (SELECT profile_id FROM tl_golden WHERE field IN ({', '.join(lit(f) for f in fields)}) "
        f"GROUP BY profile_id HAVING {having}) AS h "
        f"LEFT JOIN {consent_table} AS c ON c.profile_id = h.profile_id AND c.channel = {lit(channel)} "
        f"AND c.purpose = {lit(purpose)} WHERE COALESCE(c.granted, {lit(settings.granted_by_default(channel))})"
    )


def lacking_consent_sql(members: str, channel: str, purpose: str, settings: ConsentSettings) -> str:
    """SELECT profile_id of the rows of `members` (a table or subquery with profile_id)
    whose consent for (channel, purpose) is not granted, by record or by default."""
    return (
        f"SELECT x.profile_id FROM {members} AS x LEFT JOIN tl_consent AS c ON c.profile_id = x.profile_id "
        f"AND c.channel = {lit(channel)} AND c.purpose = {lit(purpose)} "
        f"WHERE NOT COALESCE(c.granted, {lit(settings.granted_by_default(channel))})"
    )


def summary(store: ProfileStore) -> list[dict[str, Any]]:
    """Per channel (marketing purpose): profiles granted and denied by a record, and left to
    the default; for the report."""
    engine, settings = store.engine, store.config.consent
    if not engine.table_exists("tl_consent"):
        return []
    profiles = engine.scalar("SELECT COUNT(*) FROM tl_profiles") or 0
    counts = {(r["channel"], r["granted"]): r["n"] for r in engine.rows(
        "SELECT channel, granted, COUNT(*) AS n FROM tl_consent WHERE purpose = 'marketing' GROUP BY channel, granted")}
    rows = []
    for channel in CHANNELS:
        granted, denied = counts.get((channel, True), 0), counts.get((channel, False), 0)
        rows.append({"channel": channel, "granted by a source": granted, "denied by a source": denied,
                     "no record": profiles - granted - denied,
                     "default": "granted" if settings.granted_by_default(channel) else "denied"})
    return rows
