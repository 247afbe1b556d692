"""Lift against the holdout: a campaign whose true effect is known (treated people order with
probability 0.30 within the window, held-out people with 0.15; each order 20.00) is measured
with intervals that contain the truth, from the arms its decisions assigned."""

from __future__ import annotations

import random
from typing import Any

import pytest

pytest.importorskip("statsmodels", reason="statsmodels is not installed (destinations/profiles[dev])")
from threadline_profiles.testing import Lander  # noqa: E402

PEOPLE = 1200
TREATED_RATE, HELD_OUT_RATE, AMOUNT = 0.30, 0.15, 20.0


def config(store_config: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
    return {
        **store_config, "report_dir": str(tmp_path / "reports"),
        "mappings": {
            "crm.customers": {"identifiers": {"email": "email"}, "traits": {"first_name": "first"}},
            "shop.orders": {"identifiers": {"email": "email"},
                            "orders": {"order_id": "id", "timestamp": "at", "amount": "amount"}}},
        "traits": {"as_of": "2026-01-01"},
        "audiences": {"everyone": {"where": "first_name is not null"}},
        "activations": {"promo_by_post": {"audience": "everyone", "connector": "direct_mail", "mode": "mirror",
                                          "config": {"folder": str(tmp_path / "mail")}}},
        "decisions": {"holdout": 0.5, "conversion_window": "30d", "campaigns": {
            "promo": {"audience": "everyone", "channel": "direct_mail", "activation": "promo_by_post", "priority": 1}}},
    }


def measured(base: dict[str, Any], tmp_path: Any) -> tuple[dict[str, dict[str, Any]], int, str]:
    """Land the shop, let the decisions assign the arms, land orders drawn with the known
    effect, build again: (metric -> lift row, people in arms, report path)."""
    land = Lander(config(base, tmp_path))
    land.land("crm", "customers", [{"id": f"c{i}", "email": f"p{i}@shop.test", "first": f"Ann{i}"} for i in range(PEOPLE)])
    early = {"id": "o-old", "email": "p1@shop.test", "at": "2025-12-01T10:00:00Z", "amount": 99.0}  # before joining
    land.land("shop", "orders", [early])
    land.build()  # assigns the arms as of 2026-01-01
    with land.store() as store:
        arm_of = {r["record_key"].rsplit(":", 1)[1]: r["arm"] for r in store.engine.rows(
            "SELECT m.record_key, a.arm FROM tl_campaign_arms AS a JOIN tl_members AS m ON m.profile_id = a.profile_id "
            "WHERE m.source = 'crm'")}
    assert set(arm_of.values()) == {"treated", "held_out"} and len(arm_of) == PEOPLE
    rng = random.Random(19)
    orders = [early]
    for i in range(PEOPLE):
        if rng.random() < (TREATED_RATE if arm_of[f"c{i}"] == "treated" else HELD_OUT_RATE):
            orders.append({"id": f"o{i}", "email": f"p{i}@shop.test", "at": "2026-01-10T10:00:00Z", "amount": AMOUNT})
        if i % 10 == 0:  # after the window: not counted either
            orders.append({"id": f"late{i}", "email": f"p{i}@shop.test", "at": "2026-02-20T10:00:00Z", "amount": AMOUNT})
    land.land("shop", "orders", orders)
    land.raw_config["traits"]["as_of"] = "2026-03-01"
    result = land.build()
    with land.store() as store:
        lift = {r["metric"]: r for r in store.engine.rows(
            "SELECT metric, treated_people, held_out_people, treated, held_out, difference, ci_low, ci_high "
            "FROM tl_campaign_lift WHERE campaign = 'promo' AND as_of = CAST('2026-03-01 00:00:00' AS TIMESTAMP)")}
        arms = store.engine.scalar("SELECT COUNT(*) FROM tl_campaign_arms")
    return lift, arms, result.report_path


def test_lift_against_the_holdout_recovers_a_known_effect(store_config, tmp_path):
    lift, arms, report = measured(store_config, tmp_path)
    assert arms == PEOPLE  # a person joins an arm once
    conversion, revenue = lift["conversion"], lift["revenue_per_person"]
    true_difference = TREATED_RATE - HELD_OUT_RATE
    assert conversion["ci_low"] < true_difference < conversion["ci_high"] and conversion["ci_low"] > 0
    assert revenue["ci_low"] < true_difference * AMOUNT < revenue["ci_high"]
    assert conversion["treated_people"] + conversion["held_out_people"] == PEOPLE
    text = open(report).read()
    assert "<h3>Lift against the holdout</h3>" in text and 'aria-label="conversion lift per campaign"' in text


def test_postgres_measures_the_same_lift(store_config, tmp_path, pg_schema):
    duck, _, _ = measured(store_config, tmp_path / "duck")
    postgres, _, _ = measured({"engine": "postgres", "schema": pg_schema, "resolve_on_finish": False}, tmp_path / "pg")
    assert duck.keys() == postgres.keys()
    for metric, row in duck.items():
        assert {k: pytest.approx(v) for k, v in row.items() if k != "metric"} == \
            {k: v for k, v in postgres[metric].items() if k != "metric"}


def test_the_report_warns_when_an_arm_is_too_small_to_read():
    from threadline_profiles.report.decisions import FEW_IN_AN_ARM, render_lift
    from threadline_profiles.report.page import _table

    def row(campaign: str, held_out_people: int) -> dict[str, Any]:
        return {"campaign": campaign, "metric": "revenue_per_person", "treated_people": 300,
                "held_out_people": held_out_people, "treated": 20.0, "held_out": 0.0, "difference": 20.0,
                "ci_low": 15.0, "ci_high": 25.0, "p_value": 0.001}

    text = render_lift({"statistics": True, "lift": [row("coupon", 2), row("thanks", 40)]}, _table)
    warning = f"fewer than {FEW_IN_AN_ARM} people in an arm: read with care"
    assert text.count(warning) == 1
    assert text.index("coupon") < text.index(warning) < text.index("thanks")
