"""The build report's campaign sections: what the decisions stage chose and why it left people
out, per campaign, how many people the priority groups kept from getting two campaigns, what
the platforms report back (deliveries, opens, ...) and the conversions that followed.

Figures only, never a person.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from threadline_profiles.decisions import lift as lift_module
from threadline_profiles.engines.base import lit

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

REASON_COLUMNS = {"chosen": "reach", "lower_priority": "lower priority", "capped": "capped",
                  "cooling_down": "cooling down", "held_out": "held out", "no_consent": "no consent"}


def gather(store: ProfileStore) -> dict[str, Any]:
    """Each campaign's figures at this build and across builds, the people the platforms hold
    for it, and each priority group's collisions (people in two or more of its audiences)."""
    engine = store.engine
    if not engine.table_exists("tl_decision_sizes"):
        return {"latest": [], "history": [], "groups": []}
    latest_seq = engine.scalar("SELECT MAX(seq) FROM tl_decision_sizes")
    latest = engine.rows(f"SELECT * FROM tl_decision_sizes WHERE seq = {latest_seq or 0} ORDER BY campaign")
    held = {}
    if engine.table_exists("tl_contacts"):
        held = {r["campaign"]: int(r["n"]) for r in engine.rows(
            "SELECT campaign, COUNT(DISTINCT profile_id) AS n FROM tl_contacts WHERE left_at IS NULL "
            "AND campaign IS NOT NULL GROUP BY campaign")}
    for row in latest:
        row["held by platforms"] = held.get(row["campaign"], 0)
    history = engine.rows("SELECT seq, build_id, as_of, campaign, candidates, chosen, capped, held_out "
                          "FROM tl_decision_sizes ORDER BY seq, campaign")
    groups = engine.rows(
        "SELECT campaign_group, COUNT(*) AS people, COUNT(CASE WHEN chosen_for > 1 THEN 1 END) AS given_several "
        "FROM (SELECT campaign_group, profile_id, COUNT(CASE WHEN chosen THEN 1 END) AS chosen_for, COUNT(*) AS candidate_for "
        "FROM tl_decisions WHERE campaign_group IS NOT NULL GROUP BY campaign_group, profile_id) AS x "
        "WHERE candidate_for > 1 GROUP BY campaign_group ORDER BY campaign_group") \
        if engine.table_exists("tl_decisions") else []
    lift = []
    if engine.table_exists("tl_campaign_lift") and latest:
        lift = engine.rows(f"SELECT * FROM tl_campaign_lift WHERE build_id = {lit(latest[0]['build_id'])} "
                           "ORDER BY campaign, metric")
    statistics = lift_module.statistics_available()
    return {"latest": latest, "history": history, "groups": groups, "lift": lift, "statistics": statistics,
            "outcomes": outcomes(store)}


def outcomes(store: ProfileStore) -> dict[str, dict[str, Any]]:
    """Per campaign: what its platform campaigns did for the people credited to it
    (results.py), and the orders its arms placed within the conversion window."""
    engine = store.engine
    out: dict[str, dict[str, Any]] = {}
    if engine.table_exists("tl_campaign_results"):
        for r in engine.rows(
                "SELECT campaign, SUM(delivered) AS deliveries, COUNT(DISTINCT CASE WHEN delivered > 0 THEN profile_id END) "
                "AS reached, SUM(bounced) AS bounces, COUNT(DISTINCT CASE WHEN opened > 0 THEN profile_id END) AS openers, "
                "COUNT(DISTINCT CASE WHEN clicked > 0 THEN profile_id END) AS clickers, "
                "COUNT(DISTINCT CASE WHEN unsubscribed > 0 THEN profile_id END) AS unsubscribed "
                "FROM tl_campaign_results WHERE campaign IS NOT NULL GROUP BY campaign"):
            out.setdefault(r["campaign"], {}).update({k: int(v or 0) for k, v in r.items() if k != "campaign"})
    if engine.table_exists("tl_campaign_conversions"):
        for r in engine.rows(
                "SELECT campaign, COUNT(DISTINCT CASE WHEN arm = 'treated' THEN profile_id END) AS converted, "
                "COUNT(DISTINCT CASE WHEN arm = 'held_out' THEN profile_id END) AS held_out_converted, "
                "COUNT(CASE WHEN arm = 'treated' THEN 1 END) AS orders, "
                "SUM(CASE WHEN arm = 'treated' THEN amount END) AS revenue FROM tl_campaign_conversions GROUP BY campaign"):
            out.setdefault(r["campaign"], {}).update(
                converted=int(r["converted"] or 0), held_out_converted=int(r["held_out_converted"] or 0),
                orders=int(r["orders"] or 0), revenue=float(r["revenue"] or 0.0))
    return out


OUTCOME_COLUMNS = {"deliveries": "deliveries", "reached": "people reached", "bounces": "bounces", "openers": "opened",
                   "clickers": "clicked", "unsubscribed": "unsubscribed", "converted": "conversions",
                   "orders": "orders", "revenue": "revenue", "held_out_converted": "held-out conversions"}


def collisions(store: ProfileStore, group: str) -> tuple[int, int]:
    """(people who qualify for two or more campaigns of `group`, people chosen for two or
    more) at the latest build: the second is 0 whenever decisions ran."""
    rows = store.engine.rows(
        "SELECT COUNT(CASE WHEN candidate_for > 1 THEN 1 END) AS several, COUNT(CASE WHEN chosen_for > 1 THEN 1 END) AS chosen "
        "FROM (SELECT profile_id, COUNT(*) AS candidate_for, COUNT(CASE WHEN chosen THEN 1 END) AS chosen_for FROM tl_decisions "
        f"WHERE campaign_group = {lit(group)} GROUP BY profile_id) AS x")
    return int(rows[0]["several"] or 0), int(rows[0]["chosen"] or 0)


def render(data: dict[str, Any], table: Any) -> str:
    """The sections, using the report's own table renderer `table(rows, columns, empty)`."""
    if not data["latest"]:
        return ""
    import json

    out = ["<h2>Campaigns</h2><p class=muted>who each campaign chose at this build (reach) and why its other "
           "candidates were left out: a campaign of higher priority in the same group, a frequency cap of the channel, "
           "its cooldown, its holdout (kept out to measure it) or no consent for its channel. A person the platforms "
           "already hold stays without a new contact, so caps and cooldowns do not remove them.</p>"]
    rows = []
    for r in data["latest"]:
        spec = json.loads(r["definition"] or "{}")
        rows.append({**r, **{label: r[reason] for reason, label in REASON_COLUMNS.items()},
                     "audience": spec.get("audience", ""), "channel": spec.get("channel", ""),
                     "group": spec.get("group") or "", "priority": spec.get("priority", "")})
    out.append(table(rows, ["campaign", "audience", "channel", "group", "priority", "candidates", *REASON_COLUMNS.values(),
                            "held by platforms"], "no campaigns"))
    if data["groups"]:
        out.append("<h3>Priority groups</h3><p class=muted>people who qualify for two or more campaigns of a group, "
                   "and how many of them were given more than one (always none: the group gives each person its "
                   "highest-priority campaign)</p>")
        out.append(table([{"group": g["campaign_group"], "qualify for several": g["people"],
                           "given several": g["given_several"]} for g in data["groups"]],
                         ["group", "qualify for several", "given several"], "no group"))
    out.append(render_outcomes(data, rows, table))
    out.append(render_lift(data, table))
    for r in rows:
        name = r["campaign"]
        past = [h for h in data["history"] if h["campaign"] == name]
        o = data.get("outcomes", {}).get(name, {})
        out.append(f"<h3>Campaign {html.escape(name)}</h3><p class=muted>{html.escape(r['audience'])} by "
                   f"{html.escape(r['channel'])}: reach {r['chosen']:,} of {r['candidates']:,} candidates "
                   f"({r['continuing']:,} already held by the platforms), {r['capped']:,} capped, "
                   f"{r['held_out']:,} held out, {r['cooling_down']:,} cooling down; "
                   f"{o.get('deliveries', 0):,} deliveries to {o.get('reached', 0):,} people, "
                   f"{o.get('openers', 0):,} opened, {o.get('bounces', 0):,} bounced; "
                   f"{o.get('converted', 0):,} conversions ({o.get('revenue', 0.0):,.2f} revenue) against "
                   f"{o.get('held_out_converted', 0):,} in the holdout</p>")
        out.append(table([{"build": h["build_id"], "as of": str(h["as_of"])[:10], "candidates": h["candidates"],
                           "reach": h["chosen"], "capped": h["capped"], "held out": h["held_out"]} for h in past],
                         ["build", "as of", "candidates", "reach", "capped", "held out"], "no decisions yet"))
    return "".join(out)


def render_outcomes(data: dict[str, Any], rows: list[dict[str, Any]], table: Any) -> str:
    """Per campaign: deliveries and engagement credited to it, and conversions of its arms."""
    head = ("<h3>Results and conversions</h3><p class=muted>what the platforms report for the people each campaign "
            "held when a platform campaign reached them (deliveries, bounces, and the people who opened, clicked or "
            "unsubscribed), and the treated people with an order within the conversion window after joining "
            "(conversions, their orders and revenue), beside the held-out people with one</p>")
    shown = [{"campaign": r["campaign"], "reach": r["chosen"],
              **{label: _outcome(data.get("outcomes", {}).get(r["campaign"], {}), key)
                 for key, label in OUTCOME_COLUMNS.items()}} for r in rows]
    return head + table(shown, ["campaign", "reach", *OUTCOME_COLUMNS.values()], "no campaigns")


def _outcome(figures: dict[str, Any], key: str) -> str:
    value = figures.get(key, 0)
    return f"{value:,.2f}" if key == "revenue" else f"{value:,}"


# Below this many people in an arm an interval says little (two held-out people who bought
# nothing show no spread, and Welch's interval then ignores that arm's uncertainty)
FEW_IN_AN_ARM = 10


def render_lift(data: dict[str, Any], table: Any) -> str:
    """Lift against the holdout: both arms, the difference and its 95% interval, and a plot of
    each campaign's conversion lift with its interval around zero."""
    head = ("<h3>Lift against the holdout</h3><p class=muted>people who joined a campaign's arm (chosen: treated; "
            "held out), compared as assigned: the share with an order within the conversion window after joining, "
            "and order revenue per person in it. The difference is treated − held out with a 95% interval; one that "
            "excludes 0 says the campaign changed it.</p>")
    if not data.get("statistics"):
        return head + "<p class=muted>not measured: install statsmodels (pip install threadline-profiles[lift])</p>"
    if not data["lift"]:
        return head + "<p class=muted>nothing to compare yet: no campaign has people in both arms and orders mapped</p>"
    rows = [{"campaign": r["campaign"], "metric": r["metric"].replace("_", " "),
             "treated people": r["treated_people"], "held-out people": r["held_out_people"],
             "treated": _figure(r["treated"], r["metric"]), "held out": _figure(r["held_out"], r["metric"]),
             "difference": _figure(r["difference"], r["metric"]),
             "95% interval": f"{_figure(r['ci_low'], r['metric'])} … {_figure(r['ci_high'], r['metric'])}",
             "p": "" if r["p_value"] is None else f"{r['p_value']:.3f}",
             "note": f"fewer than {FEW_IN_AN_ARM} people in an arm: read with care"
             if min(r["treated_people"], r["held_out_people"]) < FEW_IN_AN_ARM else ""} for r in data["lift"]]
    return head + lift_svg([r for r in data["lift"] if r["metric"] == "conversion"]) + table(
        rows, ["campaign", "metric", "treated people", "held-out people", "treated", "held out", "difference",
               "95% interval", "p", "note"], "no lift measured")


def _figure(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.1f}%" if metric == "conversion" else f"{value:,.2f}"


def lift_svg(rows: list[dict[str, Any]]) -> str:
    """Each campaign's conversion lift as a dot with its interval, on one axis through zero."""
    usable = [r for r in rows if r["ci_low"] is not None and r["ci_high"] is not None]
    if not usable:
        return ""
    width, left, row_h = 640, 180, 28
    low = min(0.0, *(r["ci_low"] for r in usable))
    high = max(0.0, *(r["ci_high"] for r in usable))
    span = (high - low) or 1.0

    def x(v: float) -> float:
        return left + (v - low) / span * (width - left - 20)

    height = row_h * len(usable) + 30
    parts = [f'<svg role="img" aria-label="conversion lift per campaign" width="{width}" height="{height}">',
             f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{height - 20}" stroke="#999" stroke-dasharray="3,3"/>',
             f'<text x="{x(0):.1f}" y="{height - 6}" font-size="11" text-anchor="middle">0</text>']
    for i, r in enumerate(usable):
        y = 14 + i * row_h
        label = html.escape(r["campaign"])
        tip = html.escape(f"{r['campaign']}: {r['difference'] * 100:.1f} points ({r['ci_low'] * 100:.1f} to "
                          f"{r['ci_high'] * 100:.1f})")
        parts += [f'<text x="0" y="{y + 4}" font-size="12">{label}</text>',
                  f'<line x1="{x(r["ci_low"]):.1f}" y1="{y}" x2="{x(r["ci_high"]):.1f}" y2="{y}" stroke="#3b6ea5" '
                  'stroke-width="2"/>',
                  f'<circle cx="{x(r["difference"]):.1f}" cy="{y}" r="4" fill="#d1603d"><title>{tip}</title></circle>']
    parts.append("</svg>")
    return "".join(parts)
