"""Results back into profiles: what the campaigns did, per person, and the orders that followed.

Two tables, rebuilt at every build's decisions stage from the facts up to `as_of`:

`tl_campaign_results` — one row per person, channel and *platform* campaign (a Mailchimp
campaign id, a Klaviyo campaign name), from the streams mapped with a `results` block:
how many times it was `delivered`, `bounced`, `opened`, `clicked` and `unsubscribed`, when
the first and last of those happened, and `campaign`: the campaign of the decisions it is
credited to. A platform campaign is credited to the decisions' campaign that held the person
on that channel when its first result came (an open contact in `tl_contacts`: the platform
had accepted them and not let them go), on one of the activations the results mapping names
(default: any); the latest contact wins. NULL: nobody held them then (a newsletter to the whole
list reaches people outside every campaign too).

`tl_campaign_conversions` — one row per order a person of a campaign's arm placed within
`decisions.conversion_window` after joining the arm (treated or held out; see lift.py), up to
`as_of`. Lift counts conversions from here, and only for people whose window has ended; the
report counts the treated people with an order so far.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from threadline_profiles.config import RESULTS
from threadline_profiles.config.audiences import window_delta
from threadline_profiles.decisions import contacts
from threadline_profiles.engines.base import lit, quote, work_table
from threadline_profiles.land.landing import landed_streams
from threadline_profiles.resolve.values import mapped_streams
from threadline_profiles.traits import facts
from threadline_profiles.traits.facts import ts_literal

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

PERSISTENT = [
    "CREATE TABLE IF NOT EXISTS tl_campaign_results (profile_id VARCHAR, channel VARCHAR, platform_campaign VARCHAR, "
    "campaign VARCHAR, first_at TIMESTAMP, last_at TIMESTAMP, "
    + ", ".join(f"{r} BIGINT" for r in RESULTS) + ")",
    "CREATE TABLE IF NOT EXISTS tl_campaign_conversions (campaign VARCHAR, profile_id VARCHAR, arm VARCHAR, "
    "assigned_at TIMESTAMP, order_key VARCHAR, ordered_at TIMESTAMP, amount DOUBLE PRECISION)",
]
WORK_TABLES = ("tl_work_r_facts", "tl_work_r_credit")


def window_seconds(store: ProfileStore) -> int:
    return int(window_delta(store.config.decisions.conversion_window).total_seconds())


def publish(store: ProfileStore, as_of: datetime) -> None:
    """Rebuild `tl_campaign_results` and `tl_campaign_conversions` as of `as_of`."""
    engine, config = store.engine, store.config
    # only the two fact tables read here: an events stream (every email event) can be large
    streams = [(s, m) for s, m in mapped_streams(config, landed_streams(store)) if m.orders or m.results]
    engine.run([*PERSISTENT, contacts.CREATE, *drop_work()])
    engine.run(facts.facts_sql(engine, streams, as_of))
    try:
        engine.run(credit_sql(store))
        with engine.transaction():
            engine.run(["DELETE FROM tl_campaign_results", results_sql(),
                        "DELETE FROM tl_campaign_conversions", conversions_sql(window_seconds(store), as_of)])
    finally:
        engine.run(drop_work())


def drop_work() -> list[str]:
    return [f"DROP TABLE IF EXISTS {t}" for t in (*WORK_TABLES, *facts.WORK_TABLES)]


def credit_sql(store: ProfileStore) -> list[str]:
    """Each result with the decisions' campaign holding the person on its channel then."""
    ts = quote("timestamp")
    limited = {key: m.results.activations for key, m in store.config.mappings.items() if m.results and m.results.activations}
    allowed = " OR ".join(f"(f.source = {lit(key)} AND c.activation IN ({', '.join(lit(a) for a in names)}))"
                          for key, names in limited.items())
    if limited:
        allowed = f"AND ({allowed} OR f.source NOT IN ({', '.join(lit(k) for k in limited)}))"
    return [
        work_table("tl_work_r_facts", f"AS SELECT ROW_NUMBER() OVER (ORDER BY profile_id, {ts}, campaign, result, "
                                      "record_key) AS rid, profile_id, record_key, campaign, result, channel, source, "
                                      f"{ts} AS happened_at FROM tl_work_f_results"),
        work_table(
            "tl_work_r_credit",
            "AS SELECT rid, profile_id, channel, campaign AS platform_campaign, result, happened_at, "
            "credited FROM (SELECT f.*, c.campaign AS credited, ROW_NUMBER() OVER (PARTITION BY f.rid ORDER BY "
            "c.contacted_at DESC, c.campaign) AS rn FROM tl_work_r_facts AS f LEFT JOIN tl_contacts AS c "
            "ON c.profile_id = f.profile_id AND c.channel = f.channel AND c.campaign IS NOT NULL "
            f"AND c.contacted_at <= f.happened_at AND (c.left_at IS NULL OR c.left_at > f.happened_at) {allowed}) AS x WHERE rn = 1"),
    ]


def results_sql() -> str:
    """Per person, channel and platform campaign: the counts, credited by the first result."""
    counts = ", ".join(f"COUNT(CASE WHEN result = {lit(r)} THEN 1 END)" for r in RESULTS)
    return (
        "INSERT INTO tl_campaign_results SELECT profile_id, channel, platform_campaign, "
        f"MAX(CASE WHEN rn = 1 THEN credited END), MIN(happened_at), MAX(happened_at), {counts} FROM (SELECT *, ROW_NUMBER() OVER "
        "(PARTITION BY profile_id, channel, platform_campaign ORDER BY happened_at, rid) AS rn FROM tl_work_r_credit) AS x "
        "GROUP BY profile_id, channel, platform_campaign"
    )


def conversions_sql(seconds: int, as_of: datetime) -> str:
    """Every order within the window after a person joined a campaign's arm, up to `as_of`."""
    ts = quote("timestamp")
    return (
        "INSERT INTO tl_campaign_conversions SELECT a.campaign, a.profile_id, a.arm, a.assigned_at, o.order_key, "
        f"MIN(o.{ts}), SUM(o.amount) FROM tl_campaign_arms AS a JOIN tl_work_f_orders AS o ON o.profile_id = a.profile_id "
        f"AND o.{ts} > a.assigned_at AND o.{ts} <= a.assigned_at + INTERVAL '{seconds} seconds' "
        f"AND o.{ts} <= {ts_literal(as_of)} GROUP BY a.campaign, a.profile_id, a.arm, a.assigned_at, o.order_key"
    )


def per_person_sql(seconds: int, as_of: datetime) -> str:
    """SELECT campaign, arm, profile_id, converted, revenue: each arm member whose conversion
    window has ended by `as_of` (a later order could still count for the others)."""
    return (
        "SELECT a.campaign, a.arm, a.profile_id, COUNT(c.order_key) > 0 AS converted, COALESCE(SUM(c.amount), 0) AS revenue "
        "FROM tl_campaign_arms AS a LEFT JOIN tl_campaign_conversions AS c ON c.campaign = a.campaign "
        f"AND c.profile_id = a.profile_id WHERE a.assigned_at + INTERVAL '{seconds} seconds' <= {ts_literal(as_of)} "
        "GROUP BY a.campaign, a.arm, a.profile_id"
    )
