"""Results back into profiles: what the platforms report about each campaign (deliveries,
bounces, opens, clicks, unsubscribes) becomes facts on the profile, credited to the campaign
that held the person; orders after joining a campaign's arm are its conversions; lift counts
only people whose conversion window has ended; each push's match rate is kept; traits read
the results.

The print shop: 30 people (`p0`..`p29`) with postal addresses, one campaign `promo` by post
(mirror pushes to a direct-mail file), held out at 20%. The mail house reports what it
delivered and what came back; the ESP reports opens of its own newsletter (nobody holds the
newsletter's readers for a campaign, so it is credited to none).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError
from threadline_profiles.activation.push import push_all
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.testing import Lander

PEOPLE = 30


def customers(n: int = PEOPLE, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "email": f"p{i}@shop.test", "first": f"Ann{i}", "street": f"{i} Main St", "city": "Boston",
             "zip": "02139", "country": "US"} for i in range(start, start + n)]


def settings(folder: Any, **decisions: Any) -> dict[str, Any]:
    return {
        "report_dir": str(folder / "reports"),
        "mappings": {
            "crm.customers": {"identifiers": {"email": "email"}, "traits": {"first_name": "first"},
                              "address": {"line1": "street", "city": "city", "postal_code": "zip", "country": "country"}},
            "shop.orders": {"identifiers": {"email": "email"},
                            "orders": {"order_id": "id", "timestamp": "at", "amount": "amount"}},
            # the mail house's delivery report: a letter delivered, or returned (a bounce)
            "mailhouse.deliveries": {"identifiers": {"email": "email"}, "results": {
                "campaign": "mailing", "timestamp": "at", "action": "status", "channel": "direct_mail",
                "actions": {"delivered": ["delivered"], "bounced": ["returned"]}, "activations": ["promo_by_post"]}},
            # an ESP's email activity, with Mailchimp's words (the default ones)
            "esp.activity": {"identifiers": {"email": "email"},
                             "results": {"campaign": "campaign_id", "timestamp": "at", "action": "action"}},
            "esp.unsubscribes": {"identifiers": {"email": "email"},
                                 "results": {"campaign": "campaign_id", "timestamp": "at", "every_record": "unsubscribed"}},
        },
        "traits": {"as_of": "2026-01-01"},
        "audiences": {"everyone": {"where": "first_name is not null"}},
        "activations": {"promo_by_post": {"audience": "everyone", "connector": "direct_mail", "mode": "mirror",
                                          "config": {"folder": str(folder / "mail")}}},
        "decisions": {"holdout": 0.2, "conversion_window": "30d", "campaigns": {
            "promo": {"audience": "everyone", "channel": "direct_mail", "activation": "promo_by_post", "priority": 1}},
            **decisions},
    }


def build(land: Lander, as_of: str, push: bool = True) -> None:
    land.raw_config["traits"]["as_of"] = as_of
    land.build()
    if push:
        with land.store() as store:
            store.config = land.config
            (outcome,) = push_all(store)
            assert outcome.outcome == "pushed", outcome.message


def by_person(land: Lander, sql: str) -> dict[str, dict[str, Any]]:
    """Rows of `sql` (which selects profile_id, one row per person) keyed by the crm's customer id."""
    with land.store() as store:
        rows = store.engine.rows(f"SELECT m.record_key, x.* FROM ({sql}) AS x JOIN tl_members AS m "
                                 "ON m.profile_id = x.profile_id WHERE m.source = 'crm'")
    return {r.pop("record_key").rsplit(":", 1)[1]: r for r in rows}


def arms(land: Lander) -> dict[str, str]:
    return {k: r["arm"] for k, r in by_person(land, "SELECT profile_id, arm FROM tl_campaign_arms").items()}


@pytest.fixture
def shop(store_config, tmp_path) -> Lander:
    land = Lander({**store_config, **settings(tmp_path)})
    land.land("crm", "customers", customers())
    return land


def mailing(land: Lander, ids: list[int], at: str, returned: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    land.land("mailhouse", "deliveries", [{"id": f"m{i}-{at}", "email": f"p{i}@shop.test", "mailing": f"winter-{at[:10]}",
                                           "at": at, "status": "returned" if i in returned else "delivered"} for i in ids])


def newsletter(land: Lander) -> None:
    """The ESP's newsletter of 2026-01-05: sent to p0..p9, opened by p0..p4, clicked by p0, p1 unsubscribed."""
    rows = [{"id": f"s{i}", "email": f"p{i}@shop.test", "campaign_id": "nl-0105", "at": "2026-01-05T15:00:00Z",
             "action": "sent"} for i in range(10)]
    rows += [{"id": f"o{i}", "email": f"p{i}@shop.test", "campaign_id": "nl-0105", "at": "2026-01-05T18:00:00Z",
              "action": "open"} for i in range(5)]
    rows += [{"id": "c0", "email": "p0@shop.test", "campaign_id": "nl-0105", "at": "2026-01-05T18:01:00Z", "action": "click"},
             {"id": "x0", "email": "p3@shop.test", "campaign_id": "nl-0105", "at": "2026-01-05T18:02:00Z",
              "action": "Placed Order"}]  # not a result: left out
    land.land("esp", "activity", rows)
    land.land("esp", "unsubscribes", [{"id": "u1", "email": "p1@shop.test", "campaign_id": "nl-0105",
                                       "at": "2026-01-06T09:00:00Z"}])


# ---------------------------------------------------------------------------- results on the profile


def test_deliveries_are_credited_to_the_campaign_that_held_the_person(shop: Lander) -> None:
    mailing(shop, list(range(PEOPLE)), "2025-12-20T10:00:00Z")  # before anyone was held: credited to none
    build(shop, "2026-01-01")
    treated = sorted(int(k[1:]) for k, arm in arms(shop).items() if arm == "treated")
    mailing(shop, treated, "2026-01-04T10:00:00Z", returned={treated[0]})
    build(shop, "2026-01-10")
    january = by_person(shop, "SELECT * FROM tl_campaign_results WHERE platform_campaign = 'winter-2026-01-04'")
    assert sorted(int(k[1:]) for k in january) == treated
    assert {r["campaign"] for r in january.values()} == {"promo"}
    assert january[f"p{treated[0]}"]["bounced"] == 1 and january[f"p{treated[0]}"]["delivered"] == 0
    assert sum(r["delivered"] for r in january.values()) == len(treated) - 1
    december = by_person(shop, "SELECT * FROM tl_campaign_results WHERE platform_campaign = 'winter-2025-12-20'")
    assert len(december) == PEOPLE and {r["campaign"] for r in december.values()} == {None}


def test_email_activity_becomes_counts_per_person_and_campaign(shop: Lander) -> None:
    newsletter(shop)
    build(shop, "2026-01-10", push=False)
    results = by_person(shop, "SELECT * FROM tl_campaign_results WHERE platform_campaign = 'nl-0105'")
    assert sorted(results) == sorted(f"p{i}" for i in range(10))
    assert sum(r["delivered"] for r in results.values()) == 10
    assert [k for k, r in sorted(results.items()) if r["opened"]] == ["p0", "p1", "p2", "p3", "p4"]
    assert [k for k, r in results.items() if r["clicked"]] == ["p0"]
    assert [k for k, r in results.items() if r["unsubscribed"]] == ["p1"]
    assert results["p3"]["opened"] == 1 and {r["campaign"] for r in results.values()} == {None}


def test_results_after_as_of_are_left_out(shop: Lander) -> None:
    newsletter(shop)
    build(shop, "2026-01-05T16:00:00", push=False)  # sent, not opened yet
    results = by_person(shop, "SELECT * FROM tl_campaign_results")
    assert len(results) == 10 and not any(r["opened"] or r["unsubscribed"] for r in results.values())


def test_traits_read_the_results(shop: Lander) -> None:
    newsletter(shop)
    mailing(shop, [0, 20], "2025-12-20T10:00:00Z")
    build(shop, "2026-01-10", push=False)
    traits = by_person(shop, "SELECT profile_id, emails_received_7d, last_campaign, days_since_contact FROM tl_traits")
    assert traits["p0"] == {"profile_id": traits["p0"]["profile_id"], "emails_received_7d": 1, "last_campaign": "nl-0105",
                            "days_since_contact": 5}
    assert (traits["p20"]["emails_received_7d"], traits["p20"]["last_campaign"], traits["p20"]["days_since_contact"]) == \
        (0, "winter-2025-12-20", 21)  # a letter is a contact, not an email
    assert (traits["p25"]["emails_received_7d"], traits["p25"]["last_campaign"], traits["p25"]["days_since_contact"]) == \
        (0, None, None)
    build(shop, "2026-01-20", push=False)
    later = by_person(shop, "SELECT profile_id, emails_received_7d, days_since_contact FROM tl_traits")
    assert (later["p0"]["emails_received_7d"], later["p0"]["days_since_contact"]) == (0, 15)


# ---------------------------------------------------------------------------- conversions and lift


def orders(ids: list[int], at: str) -> list[dict[str, Any]]:
    return [{"id": f"o{i}-{at[:10]}", "email": f"p{i}@shop.test", "at": at, "amount": 10.0} for i in ids]


def test_orders_within_the_window_after_joining_are_conversions(shop: Lander) -> None:
    build(shop, "2026-01-01")
    shop.land("shop", "orders", orders([1, 2, 3], "2026-01-10T10:00:00Z") + orders([4], "2026-02-15T10:00:00Z")
              + orders([5], "2025-12-15T10:00:00Z"))
    build(shop, "2026-03-01")
    conversions = by_person(shop, "SELECT * FROM tl_campaign_conversions")
    assert sorted(conversions) == ["p1", "p2", "p3"]  # p4 ordered after the window, p5 before joining
    assert all(r["campaign"] == "promo" and r["amount"] == 10.0 for r in conversions.values())
    assert {k: r["arm"] for k, r in conversions.items()} == {k: arms(shop)[k] for k in conversions}


def test_lift_counts_only_people_whose_conversion_window_has_ended(shop: Lander) -> None:
    build(shop, "2026-01-01")  # the first 30 join the arms
    shop.land("crm", "customers", customers(20, start=PEOPLE))
    build(shop, "2026-01-20")  # 20 more join: their windows end on 2026-02-19
    joined = by_person(shop, "SELECT profile_id, assigned_at FROM tl_campaign_arms")
    first = {k for k, r in joined.items() if r["assigned_at"] == datetime(2026, 1, 1)}
    assert len(first) == PEOPLE and len(joined) == PEOPLE + 20
    shop.land("shop", "orders", orders(list(range(0, 50, 2)), "2026-01-25T10:00:00Z"))
    build(shop, "2026-02-15")
    with shop.store() as store:
        lift = store.engine.rows("SELECT * FROM tl_campaign_lift WHERE as_of = CAST('2026-02-15 00:00:00' AS TIMESTAMP) "
                                 "AND metric = 'conversion'")
        converted = store.engine.scalar("SELECT COUNT(DISTINCT profile_id) FROM tl_campaign_conversions")
    assert converted == 25  # every even person: the late ones' orders are conversions already ...
    (row,) = lift
    assert row["treated_people"] + row["held_out_people"] == PEOPLE  # ... but lift waits for their window to end
    first_arms = {k: arms(shop)[k] for k in first}
    assert row["treated_people"] == sum(1 for a in first_arms.values() if a == "treated")


def test_before_any_window_ends_no_lift_is_measured(shop: Lander) -> None:
    build(shop, "2026-01-01")
    shop.land("shop", "orders", orders([1, 2, 3, 4], "2026-01-05T10:00:00Z"))
    build(shop, "2026-01-20")
    with shop.store() as store:
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_campaign_lift") == 0
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_campaign_conversions") == 4


# ---------------------------------------------------------------------------- the report


def test_the_report_shows_results_and_conversions_per_campaign(shop: Lander) -> None:
    build(shop, "2026-01-01")
    treated = sorted(int(k[1:]) for k, arm in arms(shop).items() if arm == "treated")
    mailing(shop, treated, "2026-01-04T10:00:00Z", returned={treated[0]})
    shop.land("shop", "orders", orders(treated[:3], "2026-01-10T10:00:00Z"))
    shop.raw_config["traits"]["as_of"] = "2026-01-20"
    text = open(shop.build().report_path).read()
    assert "<h3>Results and conversions</h3>" in text
    assert (f"{len(treated) - 1:,} deliveries to {len(treated) - 1:,} people, 0 opened, 1 bounced; "
            "3 conversions (30.00 revenue)") in text


# ---------------------------------------------------------------------------- match rates


def test_each_push_with_a_platform_match_estimate_keeps_its_match_rate(store_config, tmp_path) -> None:
    meta = pytest.importorskip("threadline_meta_audiences.sandbox", reason="threadline-meta-audiences is not installed")
    with meta.MetaSandbox() as box:
        land = Lander({**store_config, "report_dir": str(tmp_path / "reports"),
                       "mappings": {"crm.customers": {"identifiers": {"email": "email"}, "traits": {"first_name": "first"},
                                                      "consent": {"channel": "advertising", "column": "ads"}}},
                       "traits": {"as_of": "2026-01-01"},
                       "audiences": {"everyone": {"where": "first_name is not null"}},
                       "activations": {"everyone_to_meta": {"audience": "everyone", "connector": "meta_audiences", "config": {
                           "base_url": box.base_url, "access_token": box.ACCESS_TOKEN, "audience_id": box.AUDIENCE_ID}}}})
        for as_of, joined in (("2026-01-01", customers(150)), ("2026-02-01", customers(20, start=150))):
            land.land("crm", "customers", [{**c, "ads": "granted"} for c in joined])
            land.raw_config["traits"]["as_of"] = as_of
            land.build()
            with land.store() as store:
                store.config = land.config
                (outcome,) = push_all(store)
            assert outcome.outcome == "pushed" and outcome.match_estimate is not None, outcome.message
        with land.store() as store:
            rates = store.engine.rows("SELECT * FROM tl_match_rates ORDER BY pushed_at")
        text = open(land.build().report_path).read()
    assert len(rates) == 2 and all(r["activation"] == "everyone_to_meta" and r["channel"] == "advertising" for r in rates)
    assert [r["held"] for r in rates] == [150, 170]
    assert all(r["match_rate"] == pytest.approx(r["matched"] / r["held"]) for r in rates)
    assert "<h3>Match rates across pushes</h3>" in text and f"{rates[-1]['match_rate'] * 100:.1f}%" in text


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("results", "says"), [
    ({"campaign": "c", "timestamp": "t"}, "give either `action`"),
    ({"campaign": "c", "timestamp": "t", "action": "a", "every_record": "opened"}, "give either `action`"),
    ({"campaign": "c", "timestamp": "t", "every_record": "read"}, "'delivered', 'bounced', 'opened', 'clicked' or"),
    ({"campaign": "c", "timestamp": "t", "action": "a", "actions": {"opened": ["open"], "clicked": ["Open"]}},
     "'open' is listed under both 'opened' and 'clicked'"),
])
def test_a_results_block_that_cannot_be_read_is_refused_naming_the_mapping(results: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProfilesConfig.model_validate({"mappings": {"esp.activity": {"identifiers": {"email": "email"}, "results": results}}})
    (error,) = caught.value.errors()
    assert error["loc"][:3] == ("mappings", "esp.activity", "results") and says in error["msg"]


def test_results_credited_to_an_undeclared_activation_name_the_yaml_path(tmp_path) -> None:
    config = settings(tmp_path)
    config["mappings"]["mailhouse.deliveries"]["results"]["activations"] = ["promo_by_fax"]
    with pytest.raises(ValidationError) as caught:
        ProfilesConfig.model_validate(config)
    assert "mappings.mailhouse.deliveries.results.activations: activation 'promo_by_fax' is not declared" in str(caught.value)


# ---------------------------------------------------------------------------- Postgres


def tables(land: Lander) -> dict[str, list[tuple]]:
    with land.store() as store:
        out = {}
        for table, order in (("tl_campaign_results", "platform_campaign, first_at"), ("tl_campaign_conversions", "ordered_at")):
            rows = store.engine.rows(f"SELECT m.record_key, x.* FROM {table} AS x JOIN tl_members AS m "
                                     f"ON m.profile_id = x.profile_id WHERE m.source = 'crm' ORDER BY m.record_key, {order}")
            out[table] = [tuple(v for k, v in r.items() if k != "profile_id") for r in rows]
        out["traits"] = [tuple(r.values()) for r in store.engine.rows(
            "SELECT m.record_key, t.emails_received_7d, t.last_campaign, t.days_since_contact FROM tl_traits AS t "
            "JOIN tl_members AS m ON m.profile_id = t.profile_id WHERE m.source = 'crm' ORDER BY m.record_key")]
    return out


def scenario(base: dict[str, Any], folder: Any) -> dict[str, list[tuple]]:
    land = Lander({**base, **settings(folder)})
    land.land("crm", "customers", customers())
    newsletter(land)
    build(land, "2026-01-01")
    mailing(land, list(range(0, PEOPLE, 3)), "2026-01-04T10:00:00Z", returned={3})
    land.land("shop", "orders", orders([1, 3, 6, 9], "2026-01-08T10:00:00Z"))
    build(land, "2026-01-10")
    return tables(land)


def test_postgres_keeps_the_same_results_conversions_and_traits(store_config, tmp_path, pg_schema) -> None:
    duck = scenario(store_config, tmp_path / "duck")
    postgres = scenario({"engine": "postgres", "schema": pg_schema, "resolve_on_finish": False}, tmp_path / "pg")
    assert duck["tl_campaign_results"] and duck["tl_campaign_conversions"]
    assert duck == postgres


# ---------------------------------------------------------------------------- a store without its job


def test_a_store_opened_without_its_job_builds_with_the_saved_settings_and_keeps_no_connection_details(
        shop: Lander, tmp_path) -> None:
    # Results streams and decisions name activations: the saved settings keep those names (with
    # audience and mode), so `threadline profiles build --path` validates and builds as the job
    # did; the activation's destination config (a folder here, a token elsewhere) stays out.
    mailing(shop, list(range(PEOPLE)), "2025-12-20T10:00:00Z")
    build(shop, "2026-01-01")
    before = arms(shop)
    with shop.store() as store:
        saved = store.engine.scalar("SELECT value FROM tl_meta WHERE key = 'settings'")
    assert '"promo_by_post"' in saved and str(tmp_path / "mail") not in saved and '"config"' not in saved
    from threadline_profiles import api
    from threadline_profiles.store import ProfileStore

    pathonly = {k: v for k, v in shop.raw_config.items() if k in ("engine", "path", "dsn", "schema", "key_file", "report_dir")}
    with ProfileStore.open(pathonly) as store:
        assert set(store.config.activations) == {"promo_by_post"} and not store.config.activations["promo_by_post"].push_on_build
        assert store.config.decisions.campaigns["promo"].activation == ["promo_by_post"]
        api.build(store, report=False, full=True)
    assert arms(shop) == before


def test_settings_saved_by_an_older_version_say_how_to_save_them_again(shop: Lander) -> None:
    # Before activations were kept, a store whose results name one saved settings that no
    # longer validate on their own: opening it by path says so and how to fix it.
    import json

    from threadline.errors import ConfigError
    from threadline_profiles.store import ProfileStore

    with shop.store() as store:
        old = json.loads(store.engine.scalar("SELECT value FROM tl_meta WHERE key = 'settings'"))
        old.pop("activations"), old.pop("decisions")
        store.engine.run(["DELETE FROM tl_meta WHERE key = 'settings'",
                          f"INSERT INTO tl_meta VALUES ('settings', '{json.dumps(old)}')"])
    pathonly = {k: v for k, v in shop.raw_config.items() if k in ("engine", "path", "dsn", "schema", "key_file", "report_dir")}
    with pytest.raises(ConfigError, match="activation 'promo_by_post' is not declared") as raised:
        ProfileStore.open(pathonly)
    assert "threadline profiles build job.yaml" in raised.value.hint


def test_results_follow_a_merge_to_the_surviving_profile(shop: Lander) -> None:
    """Results are recounted at every build from the facts, so when two profiles merge, what
    both received is the survivor's and nothing is left on the id that merged away."""
    newsletter(shop)  # p5's newsletter went to p5@shop.test: delivered
    shop.land("esp", "activity", [  # and to an older address of p5's, not yet known to be theirs: delivered, opened
        {"id": "alt-s", "email": "ann.five@old.test", "campaign_id": "nl-0105", "at": "2026-01-05T15:00:00Z", "action": "sent"},
        {"id": "alt-o", "email": "ann.five@old.test", "campaign_id": "nl-0105", "at": "2026-01-05T19:00:00Z", "action": "open"}])
    build(shop, "2026-01-10", push=False)
    with shop.store() as store:
        before = {r["profile_id"] for r in store.engine.rows("SELECT profile_id FROM tl_campaign_results")}
        alt, p5_id = ([r["profile_id"] for r in store.engine.rows(
            f"SELECT profile_id FROM tl_members WHERE record_key = '{key}'")][0] for key in ("esp.activity:alt-s", "crm.customers:p5"))
    assert by_person(shop, "SELECT * FROM tl_campaign_results")["p5"]["opened"] == 0
    assert alt in before  # its results stand on a profile of their own
    shop.raw_config["resolution"] = {"always_merge": [["crm.customers:p5", "esp.activity:alt-s"]]}
    build(shop, "2026-01-10", push=False)
    p5 = by_person(shop, "SELECT * FROM tl_campaign_results")["p5"]
    assert (p5["delivered"], p5["opened"]) == (2, 1)
    with shop.store() as store:
        orphans = store.engine.rows("SELECT r.profile_id FROM tl_campaign_results AS r "
                                    "WHERE r.profile_id NOT IN (SELECT profile_id FROM tl_profiles)")
        merged = store.engine.rows("SELECT profile_id FROM tl_profile_history WHERE event = 'merged_into'")
    assert orphans == [] and [r["profile_id"] for r in merged] in ([alt], [p5_id])  # one id merged away
