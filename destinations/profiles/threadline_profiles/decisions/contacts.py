"""The contact history: who each platform accepted, and when, as the pushes left the ledgers.

`tl_contacts` holds one row per time a platform took a person into an activation's audience
(`contacted_at`: the `as_of` of the audience evaluation pushed, so a replay with a fixed
`as_of` gives the same history) and when it let them go (`left_at`, NULL while it holds them).
It is read from the ledger after each push (`tl_ledger_<activation>` holds exactly the rows
the platform confirmed), never from what was sent: a rejected or failed row is no contact.

A contact is an *entry*: a person the platform keeps holding is one contact, not one per push.
When a build merges two profiles, their contacts move to the surviving profile id in the same
transaction that publishes the merge (`follow_merges_sql`), so caps and cooldowns count both.
Frequency caps count the entries of a channel in their window; one campaign carried by
several activations counts once per build (`contact_key`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from threadline_profiles.engines.base import Statement, lit
from threadline_profiles.traits.facts import ts_literal

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

# who joined which arm of a campaign (lift.py), here because merges move its rows (follow_merges_sql)
ARMS_CREATE = "CREATE TABLE IF NOT EXISTS tl_campaign_arms (campaign VARCHAR, profile_id VARCHAR, arm VARCHAR, assigned_at TIMESTAMP)"
CREATE = ("CREATE TABLE IF NOT EXISTS tl_contacts (activation VARCHAR, campaign VARCHAR, channel VARCHAR, "
          "profile_id VARCHAR, contacted_at TIMESTAMP, left_at TIMESTAMP, build_id VARCHAR, push_id VARCHAR)")

# One contact of a campaign (or of an activation no campaign carries) per build, however many
# platforms carried it.
CONTACT_KEY = "COALESCE(campaign, activation) || '/' || build_id"


def record_contacts(store: ProfileStore, activation: str, campaign: str | None, channel: str, push_id: str) -> None:
    """After a push of `activation`: open a contact for every member its ledger holds that had
    none open, and close the open contacts of members it no longer holds."""
    engine = store.engine
    ledger = f"tl_ledger_{activation}"
    if not engine.table_exists(ledger):
        return
    latest = engine.rows("SELECT build_id, as_of FROM tl_audience_evaluations ORDER BY seq DESC LIMIT 1") \
        if engine.table_exists("tl_audience_evaluations") else []
    if not latest:
        return
    at: datetime = latest[0]["as_of"] or datetime.now(timezone.utc).replace(tzinfo=None)
    build_id = latest[0]["build_id"]
    open_rows = f"c.activation = {lit(activation)} AND c.left_at IS NULL"
    # a ledger row whose profile is gone (forgotten, merged away) is a removal still to make, no contact
    alive = "AND l.member_id IN (SELECT profile_id FROM tl_profiles)" if engine.table_exists("tl_profiles") else ""
    with store.lock:
        engine.run(CREATE)
        with engine.transaction():
            engine.run([
                f"UPDATE tl_contacts SET left_at = {ts_literal(at)} WHERE activation = {lit(activation)} AND left_at IS NULL "
                f"AND profile_id NOT IN (SELECT member_id FROM {ledger})",
                f"INSERT INTO tl_contacts SELECT {lit(activation)}, {lit(campaign)}, {lit(channel)}, l.member_id, "
                f"{ts_literal(at)}, NULL, {lit(build_id)}, {lit(push_id)} FROM (SELECT DISTINCT member_id FROM {ledger}) AS l "
                f"WHERE NOT EXISTS (SELECT 1 FROM tl_contacts AS c WHERE {open_rows} AND c.profile_id = l.member_id) {alive}",
            ])


def follow_merges_sql() -> list[str]:
    """Move the contacts of the profiles this build merged into another (`tl_work_history`) to
    the profile that survived: the platforms took that same person, so its caps and cooldowns
    go on counting them. (A split keeps the history on the profile keeping the id.)"""
    merged = "SELECT profile_id, related_profile_id FROM tl_work_history WHERE event = 'merged_into'"
    return [CREATE,
            _to_survivor("tl_contacts", merged),
            *arms_follow_merges_sql(merged)]


def arms_follow_merges_sql(merged: str) -> list[str]:
    """The campaign arms (lift.py) of merged profiles move to the survivor too, or lift would
    count a person who no longer exists. A person joins an arm once: where the survivor (or
    another profile merged into it) already holds an arm of that campaign, that one stands."""
    arms = "tl_campaign_arms"
    return [
        ARMS_CREATE,
        Statement(
            f"DELETE FROM {arms} WHERE profile_id IN (SELECT profile_id FROM ({merged}) AS m) AND EXISTS ("
            f"SELECT 1 FROM ({merged}) AS h JOIN {arms} AS b ON b.campaign = {arms}.campaign "
            f"AND (b.profile_id = h.related_profile_id OR (b.profile_id IN (SELECT o.profile_id FROM ({merged}) AS o "
            f"WHERE o.related_profile_id = h.related_profile_id) AND b.profile_id < {arms}.profile_id)) "
            f"WHERE h.profile_id = {arms}.profile_id)",
            # Spark: no subquery in a join condition; the other merged profile `o` joined instead
            # (a profile merges into one survivor, so `o` is one row or none)
            spark=f"DELETE FROM {arms} WHERE profile_id IN (SELECT profile_id FROM ({merged}) AS m) AND EXISTS ("
            f"SELECT 1 FROM ({merged}) AS h JOIN {arms} AS b ON b.profile_id <> h.profile_id "
            f"LEFT JOIN ({merged}) AS o ON o.profile_id = b.profile_id "
            f"WHERE h.profile_id = {arms}.profile_id AND b.campaign = {arms}.campaign "
            f"AND (b.profile_id = h.related_profile_id OR (o.related_profile_id = h.related_profile_id "
            f"AND b.profile_id < {arms}.profile_id)))",
        ),
        _to_survivor(arms, merged),
    ]


def _to_survivor(table: str, merged: str) -> Statement:
    """The rows of merged-away profiles move to the profile each merged into."""
    return Statement(
        f"UPDATE {table} SET profile_id = (SELECT h.related_profile_id FROM ({merged}) AS h "
        f"WHERE h.profile_id = {table}.profile_id) WHERE profile_id IN (SELECT profile_id FROM ({merged}) AS m)",
        # Spark: a correlated scalar subquery must be an aggregate; a join does the same here
        spark=f"UPDATE {table} SET profile_id = h.related_profile_id FROM ({merged}) AS h "
        f"WHERE h.profile_id = {table}.profile_id",
    )


def contacts_in_window_sql(channel: str, since: datetime, until: datetime) -> str:
    """SELECT profile_id, n: each person's contacts on `channel` after `since`, up to `until`."""
    return (f"SELECT profile_id, COUNT(DISTINCT {CONTACT_KEY}) AS n FROM tl_contacts WHERE channel = {lit(channel)} "
            f"AND contacted_at > {ts_literal(since)} AND contacted_at <= {ts_literal(until)} GROUP BY profile_id")
