"""Lift against the holdout: did a campaign change what its people did?

The first time a campaign's decisions choose a person or hold them out, the person joins an
arm of the campaign (`tl_campaign_arms`: `treated` or `held_out`, with the `as_of` of that
build) and stays in it. Arms are compared as assigned (intent to treat: a chosen person a
platform refused still counts as treated), which the stable random holdout makes fair — the
holdout is drawn among exactly the people who would have been chosen.

For each campaign, at each build, from the orders mapped into the store (counted once, in
`tl_campaign_conversions`: see results.py), over the people of each arm whose conversion
window has ended (joined at least `decisions.conversion_window` before `as_of`; the others
could still order and would count as not converted):

- conversion: the share of the arm with an order within `decisions.conversion_window` after
  joining it;
- revenue per person: order amounts in that window per person of the arm (0 without any).

`tl_campaign_lift` keeps, per build, campaign and metric, both arms' figures and the
difference treated − held out with a 95% interval (statsmodels: Newcomb's interval for two
proportions, Welch's t for two means). An interval that excludes 0 says the campaign
changed the metric. Without statsmodels (`pip install threadline-profiles[lift]`) lift is
not measured and the report says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from threadline_profiles.decisions import results
from threadline_profiles.decisions.contacts import ARMS_CREATE
from threadline_profiles.engines.base import lit
from threadline_profiles.land.landing import landed_streams
from threadline_profiles.resolve.values import mapped_streams
from threadline_profiles.traits.facts import ts_literal

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

PERSISTENT = [
    ARMS_CREATE,
    "CREATE TABLE IF NOT EXISTS tl_campaign_lift (build_id VARCHAR, as_of TIMESTAMP, campaign VARCHAR, metric VARCHAR, "
    "treated_people BIGINT, held_out_people BIGINT, treated DOUBLE PRECISION, held_out DOUBLE PRECISION, "
    "difference DOUBLE PRECISION, ci_low DOUBLE PRECISION, ci_high DOUBLE PRECISION, p_value DOUBLE PRECISION)",
]
METRICS = ("conversion", "revenue_per_person")


@dataclass
class Lift:
    """One campaign's lift on one metric: treated − held out, with a 95% interval."""

    campaign: str
    metric: str
    treated_people: int
    held_out_people: int
    treated: float
    held_out: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float


def assign_arms_sql(as_of: datetime) -> str:
    """Add the people this decision run chose or held out for the first time to their arms
    (reads `tl_work_d_out`)."""
    return ("INSERT INTO tl_campaign_arms SELECT o.campaign, o.profile_id, "
            f"CASE WHEN o.reason = 'chosen' THEN 'treated' ELSE 'held_out' END, {ts_literal(as_of)} "
            "FROM tl_work_d_out AS o WHERE o.reason IN ('chosen', 'held_out') AND NOT EXISTS (SELECT 1 FROM "
            "tl_campaign_arms AS a WHERE a.campaign = o.campaign AND a.profile_id = o.profile_id)")


def statistics_available() -> bool:
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        return False
    return True


def measure(store: ProfileStore, as_of: datetime) -> list[Lift]:
    """Every campaign's lift at `as_of`, from its arms and their conversions (results.py),
    counting only the people whose conversion window has ended by `as_of`."""
    engine, config = store.engine, store.config
    orders = any(m.orders is not None for _, m in mapped_streams(config, landed_streams(store)))
    if not orders or not config.decisions.campaigns or not statistics_available():
        return []
    engine.run(PERSISTENT + results.PERSISTENT)
    table = engine.query(results.per_person_sql(results.window_seconds(store), as_of))
    out = []
    for campaign in config.decisions.in_order():
        arms = {arm: table.filter(pc.and_(pc.equal(table.column("campaign"), campaign), pc.equal(table.column("arm"), arm)))
                for arm in ("treated", "held_out")}
        if arms["treated"].num_rows < 2 or arms["held_out"].num_rows < 2:
            continue  # nothing to compare yet
        out.extend(_compare(campaign, arms["treated"], arms["held_out"]))
    return out


def _compare(campaign: str, treated: Any, held_out: Any) -> list[Lift]:
    # no order in either arm yet (or no spread): the statistics are undefined, kept as NULL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _statistics(campaign, treated, held_out)


def _statistics(campaign: str, treated: Any, held_out: Any) -> list[Lift]:
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    n_t, n_h = treated.num_rows, held_out.num_rows
    c_t = int(pc.sum(treated.column("converted").cast("int64")).as_py() or 0)
    c_h = int(pc.sum(held_out.column("converted").cast("int64")).as_py() or 0)
    low, high = confint_proportions_2indep(c_t, n_t, c_h, n_h, method="newcomb", compare="diff")
    p_conversion = test_proportions_2indep(c_t, n_t, c_h, n_h, compare="diff").pvalue
    conversion = Lift(campaign, "conversion", n_t, n_h, c_t / n_t, c_h / n_h, c_t / n_t - c_h / n_h, float(low),
                      float(high), float(p_conversion))
    r_t = treated.column("revenue").cast("double").to_numpy()
    r_h = held_out.column("revenue").cast("double").to_numpy()
    means = CompareMeans(DescrStatsW(r_t), DescrStatsW(r_h))
    low, high = means.tconfint_diff(alpha=0.05, usevar="unequal")
    p_revenue = means.ttest_ind(usevar="unequal")[1]
    revenue = Lift(campaign, "revenue_per_person", n_t, n_h, float(r_t.mean()), float(r_h.mean()),
                   float(r_t.mean() - r_h.mean()), float(low), float(high), float(p_revenue))
    return [conversion, revenue]


def record(store: ProfileStore, build_id: str, as_of: datetime, lifts: list[Lift]) -> None:
    store.engine.run(PERSISTENT)
    if not lifts:
        return
    rows = ", ".join(
        f"({lit(build_id)}, {ts_literal(as_of)}, {lit(x.campaign)}, {lit(x.metric)}, {x.treated_people}, "
        f"{x.held_out_people}, {_number(x.treated)}, {_number(x.held_out)}, {_number(x.difference)}, "
        f"{_number(x.ci_low)}, {_number(x.ci_high)}, {_number(x.p_value)})" for x in lifts)
    store.engine.execute(f"INSERT INTO tl_campaign_lift VALUES {rows}")


def _number(value: float) -> str:
    return "NULL" if value != value else repr(float(value))  # NaN (no variance in either arm) is unknown
