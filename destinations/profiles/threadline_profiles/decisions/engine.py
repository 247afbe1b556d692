"""Who gets which campaign, and why the others were left out.

A campaign's candidates are its audience's members. Each candidate ends with one reason:

- `no_consent`: no consent for the campaign's channel (for the audience's purpose);
- `cooling_down`: contacted by this campaign within its `cooldown`, and not held since;
- `lower_priority`: their group's slot went to a campaign of higher priority (`detail` names it);
- `capped`: a new contact would pass a frequency cap of the channel;
- `held_out`: in the campaign's holdout (kept out to measure it; the group's slot is used up,
  so the holdout is exactly who would have got this campaign, caps included: see lift.py);
- `chosen`.

Campaigns are taken one at a time, highest priority first (ties across groups by name), each
in one set-based statement over all its candidates, so within a group a person gets the
highest-priority campaign they qualify for: a capped or cooling campaign passes the slot down.
A person the platforms already hold for a campaign (an open contact) is *continuing*: staying
is no new contact, so caps and cooldowns do not remove them; a higher priority still does.

Caps count contacts from `tl_contacts` (what the platforms accepted, see contacts.py) in the
window before `as_of`, plus the new contacts chosen earlier in this decision run.

Holdouts are stable: a person is held out of a campaign when the first 8 hex digits of
md5(profile id, "/", campaign) fall below the share — the same on every run and engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from threadline_profiles.config.audiences import window_delta
from threadline_profiles.decisions import contacts, lift, results
from threadline_profiles.engines.base import lit, work_table
from threadline_profiles.traits import compute, consent
from threadline_profiles.traits.facts import ts_literal

if TYPE_CHECKING:
    from threadline_profiles.config.decisions import Decisions
    from threadline_profiles.store import ProfileStore

REASONS = ("chosen", "lower_priority", "capped", "cooling_down", "held_out", "no_consent")

PERSISTENT = [
    # the decisions of the latest build: one row per campaign and candidate
    "CREATE TABLE IF NOT EXISTS tl_decisions (build_id VARCHAR, campaign VARCHAR, profile_id VARCHAR, chosen BOOLEAN, "
    "reason VARCHAR, detail VARCHAR, continuing BOOLEAN, campaign_group VARCHAR)",
    # every build's figures per campaign
    "CREATE TABLE IF NOT EXISTS tl_decision_sizes (seq BIGINT, build_id VARCHAR, as_of TIMESTAMP, campaign VARCHAR, "
    "candidates BIGINT, chosen BIGINT, continuing BIGINT, lower_priority BIGINT, capped BIGINT, cooling_down BIGINT, "
    "held_out BIGINT, no_consent BIGINT, definition VARCHAR)",
]
WORK_TABLES = ("tl_work_d_cand", "tl_work_d_out", "tl_work_d_hist")


@dataclass
class CampaignFigures:
    """One campaign's decisions at one build."""

    campaign: str
    candidates: int = 0
    chosen: int = 0
    continuing: int = 0  # of the chosen: already held by the platforms
    lower_priority: int = 0
    capped: int = 0
    cooling_down: int = 0
    held_out: int = 0
    no_consent: int = 0


def holdout_threshold(share: float) -> str:
    """The 8-hex-digit bound under which md5(profile/campaign) is held out."""
    return f"{min(int(share * 16**8), 16**8 - 1):08x}" if share > 0 else "00000000"


def held_out_sql(profile: str, campaign: str, share: float) -> str:
    """A boolean SQL expression: is `profile` (a column) in `campaign`'s holdout?"""
    if share <= 0:
        return "FALSE"
    return f"SUBSTR(MD5({profile} || '/' || {lit(campaign)}), 1, 8) < {lit(holdout_threshold(share))}"


def _members_of(audience: str) -> str:
    return f"SELECT profile_id FROM tl_audience_members WHERE audience = {lit(audience)} AND to_seq IS NULL"


def decide(store: ProfileStore, as_of: datetime | None = None,
           members_of: Callable[[str], str] = _members_of) -> dict[str, CampaignFigures]:
    """Decide every campaign into `tl_work_d_out (campaign, profile_id, reason, detail,
    continuing)` from the audiences' current members (`members_of(audience)` gives a SELECT of
    profile_id; preview passes its own evaluation). Nothing is published: see `publish`."""
    engine, config = store.engine, store.config
    decisions = config.decisions
    as_of = as_of or compute.latest_as_of(store) or datetime.now(timezone.utc).replace(tzinfo=None)
    engine.run([contacts.CREATE, *[f"DROP TABLE IF EXISTS {t}" for t in WORK_TABLES]])
    order = decisions.in_order()
    if not order:  # every campaign was removed: nothing is decided, and the published decisions empty
        engine.run([work_table("tl_work_d_cand", "(campaign VARCHAR, grp VARCHAR, channel VARCHAR, profile_id VARCHAR, "
                                                 "continuing BOOLEAN, fixed VARCHAR, held_out BOOLEAN)"),
                    work_table("tl_work_d_out", "(campaign VARCHAR, profile_id VARCHAR, reason VARCHAR, "
                                                "detail VARCHAR, continuing BOOLEAN)")])
        return {}
    engine.run([_candidates_sql(store, decisions, as_of, members_of), _history_sql(decisions, as_of),
                work_table("tl_work_d_out", "(campaign VARCHAR, profile_id VARCHAR, reason VARCHAR, detail VARCHAR, "
                                            "continuing BOOLEAN)")])
    for name in order:
        engine.execute(_decide_campaign_sql(decisions, name))
    return figures(store, order)


def _candidates_sql(store: ProfileStore, decisions: Decisions, as_of: datetime, members_of: Callable[[str], str]) -> str:
    """tl_work_d_cand: every campaign's candidates with what decides them that depends on no
    other campaign: consent, cooldown, whether the platforms hold them, the holdout draw."""
    config = store.config
    parts = []
    for name in decisions.in_order():
        c = decisions.campaigns[name]
        purpose = config.audiences[c.audience].purpose
        group = c.group if c.group is not None else f"~{name}"  # an ungrouped campaign is a group of its own
        lacking = consent.lacking_consent_sql(f"({members_of(c.audience)})", c.channel, purpose, config.consent)
        cooling = "FALSE"
        if c.cooldown:
            since = as_of - window_delta(c.cooldown)
            cooling = (f"EXISTS (SELECT 1 FROM tl_contacts AS h WHERE h.campaign = {lit(name)} AND h.profile_id = m.profile_id "
                       f"AND h.contacted_at > {ts_literal(since)} AND h.contacted_at <= {ts_literal(as_of)})")
        parts.append(
            f"SELECT {lit(name)} AS campaign, {lit(group)} AS grp, {lit(c.channel)} AS channel, m.profile_id, "
            f"EXISTS (SELECT 1 FROM tl_contacts AS o WHERE o.campaign = {lit(name)} AND o.profile_id = m.profile_id "
            f"AND o.left_at IS NULL) AS continuing, "
            f"CASE WHEN nc.profile_id IS NOT NULL THEN 'no_consent' WHEN {cooling} THEN 'cooling_down' END AS fixed, "
            f"{held_out_sql('m.profile_id', name, decisions.holdout_of(name))} AS held_out "
            f"FROM (SELECT DISTINCT profile_id FROM ({members_of(c.audience)}) AS a) AS m "
            f"LEFT JOIN ({lacking}) AS nc ON nc.profile_id = m.profile_id")
    # a continuing person is not cooling down: staying is no new contact
    return work_table(
        "tl_work_d_cand",
        "AS SELECT campaign, grp, channel, profile_id, continuing, "
        "CASE WHEN fixed = 'cooling_down' AND continuing THEN NULL ELSE fixed END AS fixed, held_out FROM ("
        + " UNION ALL ".join(parts) + ") AS x")


def _history_sql(decisions: Decisions, as_of: datetime) -> str:
    """tl_work_d_hist (cap, profile_id, n): each cap's contacts per person in its window."""
    parts = [f"SELECT {i} AS cap, profile_id, n FROM ({contacts.contacts_in_window_sql(cap.channel, as_of - window_delta(cap.window), as_of)}) AS h{i}"
             for i, cap in enumerate(decisions.caps)]
    body = " UNION ALL ".join(parts) if parts else "SELECT 0 AS cap, CAST(NULL AS VARCHAR) AS profile_id, 0 AS n WHERE FALSE"
    return work_table("tl_work_d_hist", f"AS {body}")


def _decide_campaign_sql(decisions: Decisions, name: str) -> str:
    """One campaign's candidates, decided in one INSERT against the decisions made so far."""
    campaign = decisions.campaigns[name]
    caps = [(i, cap) for i, cap in enumerate(decisions.caps) if cap.channel == campaign.channel]
    # new contacts already chosen in this run on the channel, per person
    fresh = (f"SELECT o.profile_id, COUNT(*) AS n FROM tl_work_d_out AS o JOIN tl_work_d_cand AS k "
             f"ON k.campaign = o.campaign AND k.profile_id = o.profile_id WHERE o.reason = 'chosen' AND NOT o.continuing "
             f"AND k.channel = {lit(campaign.channel)} GROUP BY o.profile_id")
    joins = [f"LEFT JOIN ({fresh}) AS f ON f.profile_id = c.profile_id"] if caps else []
    over = []
    for i, cap in caps:
        joins.append(f"LEFT JOIN tl_work_d_hist AS h{i} ON h{i}.cap = {i} AND h{i}.profile_id = c.profile_id")
        over.append(f"COALESCE(h{i}.n, 0) + COALESCE(f.n, 0) + 1 > {cap.max}")
    capped = " OR ".join(over) or "FALSE"
    # the group's slot, taken by a campaign decided before (higher priority)
    taken = ("SELECT o.profile_id, MIN(o.campaign) AS campaign FROM tl_work_d_out AS o JOIN tl_work_d_cand AS k "
             "ON k.campaign = o.campaign AND k.profile_id = o.profile_id WHERE o.reason IN ('chosen', 'held_out') "
             f"AND k.grp = {lit(campaign.group if campaign.group is not None else f'~{name}')} GROUP BY o.profile_id")
    return (
        "INSERT INTO tl_work_d_out SELECT c.campaign, c.profile_id, "
        "CASE WHEN c.fixed IS NOT NULL THEN c.fixed WHEN t.campaign IS NOT NULL THEN 'lower_priority' "
        f"WHEN NOT c.continuing AND ({capped}) THEN 'capped' WHEN c.held_out THEN 'held_out' ELSE 'chosen' END, "
        "CASE WHEN c.fixed IS NULL THEN t.campaign END, c.continuing "
        f"FROM tl_work_d_cand AS c LEFT JOIN ({taken}) AS t ON t.profile_id = c.profile_id {' '.join(joins)} "
        f"WHERE c.campaign = {lit(name)}"
    )


def figures(store: ProfileStore, order: list[str]) -> dict[str, CampaignFigures]:
    counts = store.engine.rows(
        "SELECT campaign, reason, COUNT(*) AS n, COUNT(CASE WHEN continuing THEN 1 END) AS kept "
        "FROM tl_work_d_out GROUP BY campaign, reason")
    out = {name: CampaignFigures(name) for name in order}
    for row in counts:
        f = out[row["campaign"]]
        f.candidates += int(row["n"])
        setattr(f, row["reason"], int(row["n"]))
        if row["reason"] == "chosen":
            f.continuing = int(row["kept"])
    return out


def decide_build(store: ProfileStore, build_id: str) -> dict[str, CampaignFigures]:
    """The build's decisions stage: decide every campaign, then replace `tl_decisions`, add
    this build's figures to `tl_decision_sizes` and the people new to a campaign's arms to
    `tl_campaign_arms`, in one transaction; then rebuild the campaigns' results and
    conversions (results.py) and measure each campaign's lift (lift.py)."""
    engine, decisions = store.engine, store.config.decisions
    engine.run(PERSISTENT + lift.PERSISTENT + results.PERSISTENT)
    as_of = compute.latest_as_of(store) or datetime.now(timezone.utc).replace(tzinfo=None)
    if not decisions.campaigns and not engine.scalar("SELECT COUNT(*) FROM tl_decisions"):
        if any(m.results for m in store.config.mappings.values()):
            results.publish(store, as_of)  # delivery and engagement, without campaigns to credit
        return {}
    found = decide(store, as_of)
    seq = (engine.scalar("SELECT MAX(seq) FROM tl_decision_sizes") or 0) + 1
    with engine.transaction():
        engine.run([
            "DELETE FROM tl_decisions",
            f"INSERT INTO tl_decisions SELECT {lit(build_id)}, o.campaign, o.profile_id, o.reason = 'chosen', o.reason, "
            "o.detail, o.continuing, CASE WHEN k.grp NOT LIKE '~%' THEN k.grp END FROM tl_work_d_out AS o "
            "JOIN tl_work_d_cand AS k ON k.campaign = o.campaign AND k.profile_id = o.profile_id",
            *[f"INSERT INTO tl_decision_sizes VALUES ({seq}, {lit(build_id)}, {ts_literal(as_of)}, {lit(f.campaign)}, "
              f"{f.candidates}, {f.chosen}, {f.continuing}, {f.lower_priority}, {f.capped}, {f.cooling_down}, "
              f"{f.held_out}, {f.no_consent}, "
              f"{lit(json.dumps(decisions.campaigns[f.campaign].model_dump(), sort_keys=True))})"
              for f in found.values()],
            lift.assign_arms_sql(as_of),
        ])
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in WORK_TABLES])
    results.publish(store, as_of)
    lift.record(store, build_id, as_of, lift.measure(store, as_of))
    return found


def chosen_sql(campaign: str) -> str:
    """SELECT profile_id of the people the latest decisions chose for `campaign`."""
    return f"SELECT profile_id FROM tl_decisions WHERE campaign = {lit(campaign)} AND chosen"


def decided(store: ProfileStore, campaign: str) -> bool:
    """Whether the latest decisions took `campaign` (it may be declared since)."""
    if not store.engine.table_exists("tl_decision_sizes"):
        return False
    return bool(store.engine.scalar(f"SELECT COUNT(*) FROM tl_decision_sizes WHERE campaign = {lit(campaign)} "
                                    "AND seq = (SELECT MAX(seq) FROM tl_decision_sizes)"))
