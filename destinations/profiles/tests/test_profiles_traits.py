"""Computed traits: every built-in trait and every aggregation on hand-computed data.

The shop below is small enough to compute by hand; traits are taken at as_of 2024-07-01.

    ana  orders 04-17 (10 shoes), 04-27 (20 shoes), 05-17 (20 hats + 10 bags), 06-16 (40 socks)
         gaps 10, 20, 30 days → median 20; 15 days since the last order → churn low
    bob  orders 01-01, 01-11, 01-31 (5 each): gaps 10, 20 → median 15; 152 days since → high
    cy   order 04-01 in two lines (50 shoes + 25 hats), order 05-01 (25 hats): gap 30; 61 days → medium
    dee  one order 06-01 without an amount: 30 days since, against everyone's median gap (20 → low)
    eve  no orders, events only;  fay  one order after as_of only
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from threadline.contracts import ConfigError
from threadline_profiles import ProfileStore, api
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.config.audiences import window_delta
from threadline_profiles.land.mapping import check_mapping
from threadline_profiles.testing import Lander
from threadline_profiles.traits.compute import (
    BUILT_IN_NAMES,
    catalog,
    check_traits,
    published_traits,
)

AS_OF = "2024-07-01"

MAPPINGS = {
    "crm.customers": {
        "identifiers": {"email": "email", "phone": "phone"},
        "traits": {"first_name": "first"},
        "address": {"line1": "street", "postal_code": "zip", "city": "city"},
        "cleaning": {"phone_region": "US"},
        "consent": [{"channel": "email", "column": "optin", "timestamp": "changed"},
                    {"channel": "sms", "column": "sms_ok", "timestamp": "changed"}],
    },
    "shop.orders": {"identifiers": {"email": "email"},
                    "orders": {"order_id": "order_id", "timestamp": "ordered_at", "amount": "amount", "category": "category"}},
    "web.events": {"identifiers": {"email": "email"}, "events": {"timestamp": "ts", "name": "event"}},
    "desk.tickets": {"identifiers": {"email": "email"},
                     "tickets": {"ticket_id": "ticket_id", "status": "status", "timestamp": "updated"}},
}

COMPUTED = {
    "spend_60d": {"aggregate": "sum", "of": "orders.amount", "window": "60d"},
    "orders_30d": {"aggregate": "count", "of": "orders", "window": "30d"},
    "first_category": {"aggregate": "first", "of": "orders.category"},
    "last_category": {"aggregate": "last", "of": "orders.category"},
    "favourite_category": {"aggregate": "most_frequent", "of": "orders.category"},
    "largest_line": {"aggregate": "max", "of": "orders.amount"},
    "smallest_line": {"aggregate": "min", "of": "orders.amount"},
    "categories": {"aggregate": "distinct", "of": "orders.category"},
    "email_opens_ever": {"aggregate": "count", "of": "events", "filter": {"name": ["Opened Email"]}},
    "first_event_at": {"aggregate": "min", "of": "events.timestamp"},
    "last_event": {"aggregate": "last", "of": "events.name"},
    "tickets_ever": {"aggregate": "count", "of": "tickets"},
}

UTC = timezone.utc


def _customers() -> list[dict[str, Any]]:
    row = dict.fromkeys(["phone", "street", "zip", "city", "optin", "sms_ok"])
    return [
        {**row, "id": "ana", "email": "ana@shop.test", "first": "Ana", "phone": "(415) 555-2671", "street": "1 Main St",
         "zip": "02139", "optin": "yes", "sms_ok": "true", "changed": datetime(2024, 1, 1, tzinfo=UTC)},
        {**row, "id": "bob", "email": "bob@shop.test", "first": "Bob", "optin": "no", "changed": datetime(2024, 1, 1, tzinfo=UTC)},
        {**row, "id": "cy", "email": "cy@shop.test", "first": "Cy", "street": "2 Elm St", "city": "Boston",
         "changed": datetime(2024, 1, 1, tzinfo=UTC)},
        {**row, "id": "dee", "email": "dee@shop.test", "first": "Dee", "changed": None},
        {**row, "id": "eve", "email": "eve@shop.test", "first": "Eve", "changed": None},
        {**row, "id": "fay", "email": "fay@shop.test", "first": "Fay", "changed": None},
        {**row, "id": "gus", "email": "gus@shop.test", "first": "Gus", "changed": None},
    ]


def _orders() -> list[dict[str, Any]]:
    def line(pk: str, who: str, order: str, day: datetime, amount: float | None, category: str) -> dict[str, Any]:
        return {"id": pk, "email": f"{who}@shop.test", "order_id": order, "ordered_at": day, "amount": amount, "category": category}

    d = datetime
    return [
        line("l1", "ana", "A1", d(2024, 4, 17), 10.0, "shoes"), line("l2", "ana", "A2", d(2024, 4, 27), 20.0, "shoes"),
        line("l3", "ana", "A3", d(2024, 5, 17), 20.0, "hats"), line("l4", "ana", "A3", d(2024, 5, 17), 10.0, "bags"),
        line("l5", "ana", "A4", d(2024, 6, 16), 40.0, "socks"),
        line("l6", "bob", "B1", d(2024, 1, 1), 5.0, "socks"), line("l7", "bob", "B2", d(2024, 1, 11), 5.0, "socks"),
        line("l8", "bob", "B3", d(2024, 1, 31), 5.0, "socks"),
        line("l9", "cy", "C1", d(2024, 4, 1), 50.0, "shoes"), line("m1", "cy", "C1", d(2024, 4, 1), 25.0, "hats"),
        line("m2", "cy", "C2", d(2024, 5, 1), 25.0, "hats"),
        line("m3", "dee", "D1", d(2024, 6, 1), None, "socks"),
        line("m4", "fay", "F1", d(2024, 8, 1), 99.0, "hats"),
    ]


def _events() -> list[dict[str, Any]]:
    def event(pk: str, who: str, ts: str, name: str) -> dict[str, Any]:
        return {"id": pk, "email": f"{who}@shop.test", "ts": ts, "event": name}

    return [
        event("e1", "ana", "2024-06-20T10:00:00+02:00", "Opened Email"),  # 08:00 UTC
        event("e2", "ana", "2024-06-25", "email_clicked"),
        event("e3", "ana", "2024-06-30T23:30:00-02:00", "page_view"),  # 01:30 UTC on 07-01: after as_of
        event("e4", "ana", "2024-03-01T09:00:00Z", "Opened Email"),  # before the 90-day window
        event("e5", "eve", "2024-06-01", "open"),
        event("e6", "eve", "yesterday", "click"),  # not a timestamp: left out
    ]


def _tickets() -> list[dict[str, Any]]:
    def ticket(pk: str, who: str, tid: str, status: str, updated: str) -> dict[str, Any]:
        return {"id": pk, "email": f"{who}@shop.test", "ticket_id": tid, "status": status, "updated": updated}

    return [
        ticket("t1", "bob", "T1", "Open", "2024-06-01"), ticket("t2", "bob", "T2", "solved", "2024-06-01"),
        ticket("t3", "bob", "T3", "On-Hold", "2024-06-02"),
        ticket("t4", "cy", "T4", "open", "2024-06-01"), ticket("t5", "cy", "T4", "solved", "2024-06-10"),
    ]


def shop_config(path: Path, **extra: Any) -> dict[str, Any]:
    return {"path": str(path), "resolve_on_finish": False, "mappings": MAPPINGS,
            "traits": {"as_of": AS_OF, "computed": COMPUTED}, **extra}


def land_shop(config: dict[str, Any]) -> ProfileStore:
    lander = Lander(config)
    lander.land("crm", "customers", _customers())
    lander.land("shop", "orders", _orders())
    lander.land("web", "events", _events())
    lander.land("desk", "tickets", _tickets())
    store = lander.store()
    api.build(store, report=False)
    return store


def traits_by_name(store: ProfileStore) -> dict[str, dict[str, Any]]:
    """Each profile's traits, by the name in its email (ana@shop.test → ana)."""
    rows = store.engine.rows("SELECT g.value AS email, t.* FROM tl_traits AS t JOIN tl_golden AS g "
                             "ON g.profile_id = t.profile_id AND g.field = 'email'")
    return {r.pop("email").split("@")[0]: r for r in rows}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    store = land_shop(shop_config(tmp_path_factory.mktemp("shop") / "profiles.duckdb"))
    try:
        yield traits_by_name(store)
    finally:
        store.close()


# --------------------------------------------------------------------------- built-in traits


def test_orders_count_counts_each_order_once_however_many_lines(shop):
    assert [shop[n]["orders_count"] for n in ("ana", "bob", "cy", "dee", "eve")] == [4, 3, 2, 1, 0]


def test_orders_after_as_of_are_left_out(shop):
    assert shop["fay"]["orders_count"] == 0
    assert shop["fay"]["last_order_at"] is None


def test_lifetime_value_sums_every_line_and_average_divides_by_priced_orders(shop):
    assert (shop["ana"]["lifetime_value"], shop["ana"]["average_order_value"]) == (100.0, 25.0)
    assert (shop["cy"]["lifetime_value"], shop["cy"]["average_order_value"]) == (100.0, 50.0)
    assert (shop["bob"]["lifetime_value"], shop["bob"]["average_order_value"]) == (15.0, 5.0)
    assert (shop["dee"]["lifetime_value"], shop["dee"]["average_order_value"]) == (0.0, None)  # no amount
    assert (shop["eve"]["lifetime_value"], shop["eve"]["average_order_value"]) == (0.0, None)


def test_first_and_last_order_and_days_since(shop):
    assert shop["ana"]["first_order_at"] == datetime(2024, 4, 17)
    assert shop["ana"]["last_order_at"] == datetime(2024, 6, 16)
    assert [shop[n]["days_since_last_order"] for n in ("ana", "bob", "cy", "dee", "eve")] == [15, 152, 61, 30, None]


def test_repeat_buyer_has_two_orders_or_more(shop):
    assert [shop[n]["repeat_buyer"] for n in ("ana", "cy", "dee", "eve")] == [True, True, False, False]


def test_churn_risk_compares_days_since_the_last_order_with_the_customers_own_median_gap(shop):
    assert [shop[n]["median_days_between_orders"] for n in ("ana", "bob", "cy")] == [20.0, 15.0, 30.0]
    assert shop["ana"]["churn_risk"] == "low"  # 15 days ≤ 1.5 × 20
    assert shop["cy"]["churn_risk"] == "medium"  # 45 < 61 days ≤ 90
    assert shop["bob"]["churn_risk"] == "high"  # 152 days > 3 × 15


def test_a_one_order_customer_is_measured_against_everyones_rhythm(shop):
    # every gap of every repeat buyer: 10, 20, 30, 10, 20, 30 → median 20; 30 days ≤ 1.5 × 20
    assert shop["dee"]["median_days_between_orders"] is None
    assert shop["dee"]["churn_risk"] == "low"
    assert shop["eve"]["churn_risk"] is None


def test_rfm_scores_are_fifths_of_the_buyers_with_ties_scored_alike(shop):
    # four buyers: recency by days since (152, 61, 30, 15), frequency by orders (1, 2, 3, 4)
    assert {n: shop[n]["recency_score"] for n in ("bob", "cy", "dee", "ana")} == {"bob": 2, "cy": 3, "dee": 4, "ana": 5}
    assert {n: shop[n]["frequency_score"] for n in ("dee", "cy", "bob", "ana")} == {"dee": 2, "cy": 3, "bob": 4, "ana": 5}
    # monetary over the three buyers with amounts: bob 15, ana 100 and cy 100 (tied)
    assert {n: shop[n]["monetary_score"] for n in ("bob", "ana", "cy", "dee")} == {"bob": 2, "ana": 5, "cy": 5, "dee": None}
    assert shop["eve"]["recency_score"] is None


def test_top_categories_are_the_three_ordered_most_often(shop):
    assert shop["ana"]["top_categories"] == ["shoes", "bags", "hats"]  # shoes 2; bags, hats, socks 1 each: by name
    assert shop["cy"]["top_categories"] == ["hats", "shoes"]
    assert shop["eve"]["top_categories"] == []


def test_email_engagement_counts_opens_and_clicks_of_the_last_90_days(shop):
    ana = shop["ana"]
    assert (ana["email_opens_90d"], ana["email_clicks_90d"], ana["email_engagement_90d"]) == (1, 1, 2)
    assert (shop["eve"]["email_opens_90d"], shop["eve"]["email_clicks_90d"]) == (1, 0)  # "click" has no usable time


def test_open_tickets_take_each_tickets_latest_status(shop):
    assert shop["bob"]["open_tickets"] == 2  # Open and On-Hold; solved is closed
    assert shop["cy"]["open_tickets"] == 0  # T4 was open, then solved
    assert shop["ana"]["open_tickets"] == 0


def test_last_seen_is_the_latest_order_or_event_before_as_of(shop):
    assert shop["ana"]["last_seen_at"] == datetime(2024, 6, 25)
    assert shop["eve"]["last_seen_at"] == datetime(2024, 6, 1)
    assert shop["bob"]["last_seen_at"] == datetime(2024, 1, 31)


def test_text_timestamps_with_an_offset_are_read_in_utc(shop):
    assert shop["ana"]["first_event_at"] == datetime(2024, 3, 1, 9, 0)
    assert shop["eve"]["first_event_at"] == datetime(2024, 6, 1)


def test_reachable_channels_need_an_identifier_and_consent(shop):
    assert shop["ana"]["reachable_channels"] == ["direct_mail", "email", "sms"]  # advertising: denied by default
    assert shop["bob"]["reachable_channels"] == []  # email opted out, no phone, no address
    assert shop["cy"]["reachable_channels"] == ["direct_mail"]  # street and city; email has no consent record
    assert shop["gus"]["reachable_channels"] == []


# --------------------------------------------------------------------------- declared traits


def test_sum_over_a_window(shop):
    assert shop["ana"]["spend_60d"] == 70.0  # 05-17 (30) and 06-16 (40) are after 05-02
    assert shop["bob"]["spend_60d"] == 0.0


def test_count_over_a_window_leaves_out_its_first_instant(shop):
    assert shop["ana"]["orders_30d"] == 1
    assert shop["dee"]["orders_30d"] == 0  # 06-01 00:00 is exactly 30 days before as_of


def test_first_and_last_follow_the_timestamp(shop):
    assert (shop["ana"]["first_category"], shop["ana"]["last_category"]) == ("shoes", "socks")
    assert shop["ana"]["last_event"] == "email_clicked"  # page_view is after as_of
    assert shop["cy"]["first_category"] == "shoes"  # two lines at one time: the first record key (l9)


def test_most_frequent_value(shop):
    assert shop["ana"]["favourite_category"] == "shoes"
    assert shop["cy"]["favourite_category"] == "hats"
    assert shop["eve"]["favourite_category"] is None


def test_min_and_max(shop):
    assert (shop["ana"]["smallest_line"], shop["ana"]["largest_line"]) == (10.0, 40.0)
    assert shop["dee"]["largest_line"] is None  # its only line has no amount


def test_distinct_lists_every_value_once_sorted(shop):
    assert shop["ana"]["categories"] == ["bags", "hats", "shoes", "socks"]
    assert shop["eve"]["categories"] == []


def test_count_with_a_filter_matches_values_in_any_case(shop):
    assert shop["ana"]["email_opens_ever"] == 2
    assert shop["eve"]["email_opens_ever"] == 0


def test_count_of_tickets_counts_ticket_ids(shop):
    assert (shop["bob"]["tickets_ever"], shop["cy"]["tickets_ever"]) == (3, 1)


def test_windows_read_hours_days_weeks_and_years():
    assert [window_delta(w) for w in ("24h", "90d", "2w", "1y")] == [
        timedelta(days=1), timedelta(days=90), timedelta(days=14), timedelta(days=365)]
    with pytest.raises(ValueError, match="number and a unit"):
        window_delta("3 months")


# --------------------------------------------------------------------------- as_of, mappings, config


def test_a_fixed_as_of_gives_the_same_traits_on_every_build(tmp_path):
    store = land_shop(shop_config(tmp_path / "p.duckdb"))
    try:
        first = store.engine.rows("SELECT * FROM tl_traits ORDER BY profile_id")
        api.build(store, report=False)
        assert store.engine.rows("SELECT * FROM tl_traits ORDER BY profile_id") == first
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_trait_builds") == 2
        assert store.engine.scalar("SELECT MAX(as_of) FROM tl_trait_builds") == datetime(2024, 7, 1)
    finally:
        store.close()


def test_without_as_of_traits_are_taken_when_the_build_runs(tmp_path):
    config = shop_config(tmp_path / "p.duckdb")
    config["traits"] = {}
    store = land_shop(config)
    try:
        as_of = store.engine.scalar("SELECT as_of FROM tl_trait_builds")
        computed_at = store.engine.scalar("SELECT computed_at FROM tl_trait_builds")
        assert as_of == computed_at
        assert traits_by_name(store)["fay"]["orders_count"] == 1  # 2024-08-01 is in the past now
    finally:
        store.close()


def test_built_in_traits_exist_only_when_what_they_need_is_mapped(tmp_path):
    config = {"path": str(tmp_path / "p.duckdb"), "resolve_on_finish": False,
              "mappings": {"crm.customers": MAPPINGS["crm.customers"]}}
    lander = Lander(config)
    lander.land("crm", "customers", _customers())
    store = lander.store()
    try:
        api.build(store, report=False)
        assert store.engine.table_columns("tl_traits") == ["profile_id", "reachable_channels"]
        info = catalog(store.config)
        assert info["orders_count"].needs and info["open_tickets"].needs and not info["reachable_channels"].needs
        assert info["first_name"].origin == "profile"
    finally:
        store.close()


def test_published_columns_follow_the_mappings():
    config = ProfilesConfig.model_validate({"mappings": {
        "shop.orders": {"identifiers": {"e": "email"}, "orders": {"order_id": "i", "timestamp": "t"}}}})
    names = published_traits(config)
    assert "orders_count" in names and "churn_risk" in names
    assert "lifetime_value" not in names and "top_categories" not in names and "email_opens_90d" not in names


@pytest.mark.parametrize("spec, message", [
    ({"aggregate": "sum", "of": "orders.category"}, "`sum` needs a number"),
    ({"aggregate": "max", "of": "orders"}, "`max` needs a field"),
    ({"aggregate": "count", "of": "visits"}, "must start with one of"),
    ({"aggregate": "count", "of": "events.channel"}, "events have no field 'channel'"),
    ({"aggregate": "count", "of": "events", "window": "90 days"}, "number and a unit"),
    ({"aggregate": "count", "of": "events", "filter": {"kind": ["x"]}}, "filter field 'kind'"),
    ({"aggregate": "distinct", "of": "orders.amount"}, "`distinct` lists text values"),
])
def test_a_declared_trait_that_cannot_be_computed_is_a_config_error(spec, message):
    with pytest.raises(ValidationError, match=message):
        ProfilesConfig.model_validate({"traits": {"computed": {"x": spec}}})


def test_a_declared_trait_cannot_take_a_built_in_name():
    config = ProfilesConfig.model_validate({"traits": {"computed": {"orders_count": {"aggregate": "count", "of": "orders"}}}})
    with pytest.raises(ConfigError, match="name of a built-in trait") as exc:
        check_traits(config)
    assert exc.value.field == "traits.computed.orders_count"
    assert "orders_count" in BUILT_IN_NAMES


def test_order_and_ticket_columns_are_checked_against_the_stream():
    config = ProfilesConfig.model_validate({"mappings": MAPPINGS})
    with pytest.raises(ConfigError, match="'category'") as exc:
        check_mapping("shop.orders", config.mappings["shop.orders"], ["email", "order_id", "ordered_at", "amount", "cat"])
    assert exc.value.field == "mappings.shop.orders.orders.category"
    with pytest.raises(ConfigError) as exc:
        check_mapping("desk.tickets", config.mappings["desk.tickets"], ["email", "ticket_id", "state", "updated"])
    assert exc.value.field == "mappings.desk.tickets.tickets.status"


@pytest.mark.postgres
def test_duckdb_and_postgres_compute_the_same_traits(tmp_path, pg_schema):
    duck = land_shop(shop_config(tmp_path / "p.duckdb"))
    pg = land_shop({**shop_config(tmp_path / "unused.duckdb"), "engine": "postgres", "schema": pg_schema})
    try:
        assert traits_by_name(pg) == traits_by_name(duck)
        query = 'SELECT profile_id, channel, purpose, granted, "at", source, stream, record_key FROM tl_consent ORDER BY 1, 2, 3'
        assert pg.engine.rows(query) == duck.engine.rows(query)
    finally:
        duck.close()
        pg.close()
