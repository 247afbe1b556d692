"""Audiences: filters, exclusions, suppression, required consent, min_size, membership
history across builds, what a push selects, preview, check-time validation, CLI and report.

The shop (traits as of 2024-07-01):

    ana   email opt-in, orders 05-01 and 06-28, abandoned a cart 06-29
    bob   bob.smith@gmail.com, opt-in, orders 05-01 and 06-01 — on the do-not-contact list
          as Bob.Smith+promo@Gmail.com
    cy    email opt-out, order 06-29
    dee   no consent record, no order, abandoned a cart 06-30
    eve   opt-in, orders 02-01 and 03-01, abandoned a cart 06-30; her phone is on a list
          that applies only to `everyone`
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from threadline.contracts import MEMBER_COLUMNS, ConfigError, ThreadlineError
from threadline_profiles import ProfileStore, api
from threadline_profiles.audiences.membership import (
    changes,
    evaluate_audiences,
    mask_email,
    members_at,
    preview,
    select_members,
    size_history,
)
from threadline_profiles.cli.audiences import audiences_group
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.destination import ProfilesDestination
from threadline_profiles.report.audiences import trait_summary
from threadline_profiles.testing import Lander

AUDIENCES = {
    "recent_buyers": {"where": "last_order_at within 7d"},
    "abandoned_cart": {"where": "last_event = 'cart_abandoned' and last_seen_at within 7d", "exclude": ["recent_buyers"]},
    "loyal": {"where": "orders_count >= 2", "requires_consent": ["email"], "min_size": 3},
    "everyone": {"where": "orders_count >= 0"},
}
MAPPINGS = {
    "crm.customers": {"identifiers": {"email": "email", "phone": "phone"}, "traits": {"first_name": "first", "last_name": "last"},
                      "address": {"line1": "street", "city": "city", "postal_code": "zip", "country": "country"},
                      "cleaning": {"phone_region": "US"}, "consent": {"channel": "email", "column": "optin"}},
    "shop.orders": {"identifiers": {"email": "email"}, "orders": {"order_id": "id", "timestamp": "at", "amount": "amount"}},
    "web.events": {"identifiers": {"email": "email"}, "events": {"timestamp": "at", "name": "event"}},
}


def customer(pk: str, email: str, first: str, optin: str | None, phone: str | None = None) -> dict[str, Any]:
    return {"id": pk, "email": email, "phone": phone, "first": first, "last": "Doe", "street": f"{pk} Main St",
            "city": "Boston", "zip": "02139", "country": "us", "optin": optin}


CUSTOMERS = [
    customer("ana", "ana@shop.test", "Ana", "yes"), customer("bob", "bob.smith@gmail.com", "Bob", "yes"),
    customer("cy", "cy@shop.test", "Cy", "no"), customer("dee", "dee@shop.test", "Dee", None),
    customer("eve", "eve@shop.test", "Eve", "yes", phone="(415) 555-2672"),
]


def order(pk: str, email: str, day: datetime) -> dict[str, Any]:
    return {"id": pk, "email": email, "at": day, "amount": 10.0}


ORDERS = [
    order("o1", "ana@shop.test", datetime(2024, 5, 1)), order("o2", "ana@shop.test", datetime(2024, 6, 28)),
    order("o3", "bob.smith@gmail.com", datetime(2024, 5, 1)), order("o4", "bob.smith@gmail.com", datetime(2024, 6, 1)),
    order("o5", "cy@shop.test", datetime(2024, 6, 29)),
    order("o6", "eve@shop.test", datetime(2024, 2, 1)), order("o7", "eve@shop.test", datetime(2024, 3, 1)),
]
EVENTS = [
    {"id": "e1", "email": "ana@shop.test", "at": datetime(2024, 6, 29), "event": "cart_abandoned"},
    {"id": "e2", "email": "dee@shop.test", "at": datetime(2024, 6, 30), "event": "cart_abandoned"},
    {"id": "e3", "email": "eve@shop.test", "at": datetime(2024, 6, 30), "event": "cart_abandoned"},
]


def shop_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    (tmp_path / "vip_hold.csv").write_text("name,phone\nEve,+1 415-555-2672\n")
    return {
        "path": str(tmp_path / "profiles.duckdb"), "resolve_on_finish": False, "report_dir": str(tmp_path / "reports"),
        "mappings": MAPPINGS,
        "traits": {"as_of": "2024-07-01", "computed": {"last_event": {"aggregate": "last", "of": "events.name"}}},
        "suppression": {"do_not_contact": {"values": ["Bob.Smith+promo@Gmail.com", "not an address"]},
                        "vip_hold": {"file": str(tmp_path / "vip_hold.csv"), "audiences": ["everyone"]}},
        "audiences": AUDIENCES, **extra,
    }


def land(config: dict[str, Any]) -> Lander:
    lander = Lander(config)
    lander.land("crm", "customers", CUSTOMERS)
    lander.land("shop", "orders", ORDERS)
    lander.land("web", "events", EVENTS)
    return lander


def emails_of(store: ProfileStore, profile_ids: list[str]) -> list[str]:
    golden = {r["profile_id"]: r["value"] for r in store.engine.rows("SELECT profile_id, value FROM tl_golden WHERE field = 'email'")}
    return sorted(golden[p].split("@")[0].split(".")[0] for p in profile_ids)


def sizes(store: ProfileStore) -> dict[str, dict[str, Any]]:
    latest = store.engine.scalar("SELECT MAX(seq) FROM tl_audience_sizes")
    return {r.pop("audience"): r for r in store.engine.rows(
        "SELECT audience, size, matched, excluded_by_exclusion, excluded_suppressed, excluded_no_consent, status "
        f"FROM tl_audience_sizes WHERE seq = {latest}")}


@pytest.fixture
def shop(tmp_path: Path):
    lander = land(shop_config(tmp_path))
    store = lander.store()
    result = api.build(store, report=False)
    yield store, lander, result
    store.close()


def current(store: ProfileStore, audience: str) -> list[str]:
    build = store.engine.scalar("SELECT build_id FROM tl_audience_evaluations ORDER BY seq DESC LIMIT 1")
    return emails_of(store, members_at(store, audience, build))


# --------------------------------------------------------------------------- evaluation


def test_an_audience_is_the_profiles_its_filter_matches(shop):
    store, _, _ = shop
    assert current(store, "recent_buyers") == ["ana", "cy"]


def test_an_exclusion_takes_out_the_members_of_another_audience(shop):
    store, _, _ = shop
    assert current(store, "abandoned_cart") == ["dee", "eve"]  # ana bought after abandoning
    figures = sizes(store)["abandoned_cart"]
    assert (figures["matched"], figures["excluded_by_exclusion"], figures["size"]) == (3, 1, 2)


def test_suppression_compares_normalized_values_with_every_identifier(shop):
    store, _, _ = shop
    assert "bob" not in current(store, "everyone")  # Bob.Smith+promo@Gmail.com is bob.smith@gmail.com
    assert sizes(store)["loyal"]["excluded_suppressed"] == 1


def test_a_suppression_list_can_apply_to_some_audiences_only(shop):
    store, _, _ = shop
    assert current(store, "everyone") == ["ana", "cy", "dee"]  # eve's phone is on vip_hold
    assert "eve" in current(store, "abandoned_cart")
    assert sizes(store)["everyone"]["excluded_suppressed"] == 2


def test_required_consent_leaves_out_those_without_it(shop):
    store, _, _ = shop
    assert current(store, "loyal") == ["ana", "eve"]  # bob is suppressed first, and counted there
    figures = sizes(store)["loyal"]
    assert (figures["matched"], figures["excluded_suppressed"], figures["excluded_no_consent"]) == (3, 1, 0)


def test_required_consent_counts_each_profile_once_by_the_first_reason(tmp_path):
    config = shop_config(tmp_path, audiences={"everyone": AUDIENCES["everyone"],
                                              "opted": {"where": "orders_count >= 0", "requires_consent": ["email", "sms"]}})
    with land(config).store() as store:
        api.build(store, report=False)
        figures = sizes(store)["opted"]
        # sms has no records and is denied by default: everyone not suppressed lacks it
        assert (figures["matched"], figures["excluded_suppressed"], figures["excluded_no_consent"], figures["size"]) == (5, 1, 4, 0)


def test_an_audience_below_min_size_is_evaluated_and_marked(shop):
    store, _, result = shop
    assert sizes(store)["loyal"]["status"] == "below_min_size"
    assert sizes(store)["everyone"]["status"] == "ok"


def test_evaluating_a_build_twice_stores_it_once(shop):
    store, _, result = shop
    again = evaluate_audiences(store, result.build_id)
    assert {s.audience: s.size for s in again} == {"abandoned_cart": 2, "everyone": 3, "loyal": 2, "recent_buyers": 2}
    assert store.engine.scalar("SELECT COUNT(*) FROM tl_audience_evaluations") == 1


# --------------------------------------------------------------------------- history


def test_membership_is_kept_per_build_as_intervals(shop):
    store, lander, first = shop
    store.close()
    lander.land("shop", "orders", [order("o8", "dee@shop.test", datetime(2024, 6, 30))], run_id="run-2")
    with lander.store() as store:
        second = api.build(store, report=False)
        assert emails_of(store, members_at(store, "abandoned_cart", first.build_id)) == ["dee", "eve"]
        assert emails_of(store, members_at(store, "abandoned_cart", second.build_id)) == ["eve"]
        added, removed = changes(store, "abandoned_cart", first.build_id, second.build_id)
        assert (added, emails_of(store, removed)) == ([], ["dee"])
        added, removed = changes(store, "recent_buyers", first.build_id)
        assert (emails_of(store, added), removed) == (["dee"], [])
        # unchanged members keep their one row: only dee's moves cost rows
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_audience_members WHERE audience = 'everyone'") == 3
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_audience_members WHERE audience = 'abandoned_cart'") == 2
        history = [(r["build_id"], r["audience"], r["size"], r["added"], r["removed"]) for r in size_history(store)
                   if r["audience"] in ("abandoned_cart", "recent_buyers")]
        assert history == [(first.build_id, "abandoned_cart", 2, 2, 0), (first.build_id, "recent_buyers", 2, 2, 0),
                           (second.build_id, "abandoned_cart", 1, 0, 1), (second.build_id, "recent_buyers", 3, 1, 0)]


def test_an_audience_removed_from_the_config_ends_its_membership(shop, tmp_path):
    store, lander, first = shop
    store.close()
    config = shop_config(tmp_path)
    config["audiences"] = {k: v for k, v in AUDIENCES.items() if k != "loyal"}
    with Lander(config).store() as store:
        second = api.build(store, report=False)
        assert len(members_at(store, "loyal", first.build_id)) == 2
        assert members_at(store, "loyal", second.build_id) == []
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_audience_members WHERE audience = 'loyal' AND to_seq IS NULL") == 0
        assert len(members_at(store, "everyone", second.build_id)) == 3


# --------------------------------------------------------------------------- what a push selects


def test_select_members_applies_the_channels_consent_and_gives_golden_values(shop):
    store, _, result = shop
    selection = select_members(store, "abandoned_cart", "email")
    assert selection.members.column_names == list(MEMBER_COLUMNS)
    assert [r["email"] for r in selection.members.to_pylist()] == ["eve@shop.test"]  # dee: no record, email denied by default
    assert (selection.size_before_consent, selection.excluded_no_consent) == (2, 1)
    assert (selection.excluded_by_exclusion, selection.excluded_suppressed, selection.build_id) == (1, 0, result.build_id)
    eve = selection.members.to_pylist()[0]
    assert (eve["phone"], eve["first_name"], eve["country"], eve["postal_code"]) == ("+14155552672", "Eve", "US", "02139")
    assert eve["member_id"] == store.engine.scalar(
        "SELECT profile_id FROM tl_golden WHERE field = 'email' AND value = 'eve@shop.test'")


def test_direct_mail_is_granted_by_default(shop):
    store, _, _ = shop
    selection = select_members(store, "abandoned_cart", "direct_mail")
    assert sorted(r["email"] for r in selection.members.to_pylist()) == ["dee@shop.test", "eve@shop.test"]
    assert selection.excluded_no_consent == 0


def test_select_members_of_an_unknown_audience_suggests_one(shop):
    store, _, _ = shop
    with pytest.raises(ConfigError, match="no audience named 'abandoned_carts'; did you mean 'abandoned_cart'"):
        select_members(store, "abandoned_carts", "email")
    with pytest.raises(ConfigError, match="unknown consent channel 'fax'"):
        select_members(store, "loyal", "fax")


def test_select_members_before_any_evaluation_says_to_build(tmp_path):
    with ProfileStore.open({"path": str(tmp_path / "p.duckdb"), "audiences": {"a": {"where": "x = 1"}}}) as store:
        with pytest.raises(ThreadlineError, match="has not been evaluated yet"):
            select_members(store, "a", "email")


# --------------------------------------------------------------------------- preview


def test_preview_evaluates_now_and_stores_nothing(shop):
    store, _, _ = shop
    before = store.engine.scalar("SELECT COUNT(*) FROM tl_audience_sizes")
    p = preview(store, "abandoned_cart", sample=5)
    assert store.engine.scalar("SELECT COUNT(*) FROM tl_audience_sizes") == before
    assert (p.size, p.matched, p.excluded_by_exclusion, p.excluded_suppressed) == (2, 3, 1, 0)
    assert p.lacking_consent == {"email": 1, "sms": 2, "advertising": 2, "direct_mail": 0}
    assert p.overlap == {"recent_buyers": 0, "loyal": 1, "everyone": 1}
    assert {r["email"] for r in p.sample} == {"d***@shop.test", "e***@shop.test"}
    assert set(p.sample[0]) == {"profile_id", "email", "last_event", "last_seen_at"}
    assert p.unusable_suppression == {"do_not_contact": 1}


def test_masked_emails_keep_the_first_letter_and_the_domain():
    assert mask_email("sam@example.com") == "s***@example.com"
    assert mask_email(None) == "" and mask_email("no-at") == ""


# --------------------------------------------------------------------------- config and checks


@pytest.mark.parametrize("audiences, message", [
    ({"a": {"where": "x", "exclude": ["b"]}}, "excludes 'b', which is not declared"),
    ({"a": {"where": "x", "exclude": ["b"]}, "b": {"where": "x", "exclude": ["a"]}}, "cycle: a → b → a"),
    ({"a": {"where": "x", "exclude": ["a"]}}, "excludes itself"),
    ({"Bad Name": {"where": "x"}}, "must be lower-case"),
    ({"a": {"where": "  "}}, "`where` is empty"),
    ({"a": {"where": "x", "requires_consent": ["fax"]}}, "requires_consent"),
])
def test_audience_definitions_are_validated(audiences, message):
    with pytest.raises(ValidationError, match=re.escape(message) if "→" not in message else message):
        ProfilesConfig.model_validate({"audiences": audiences})


def test_a_suppression_list_needs_values_or_a_file_and_known_audiences():
    with pytest.raises(ValidationError, match="needs `values` or a `file`"):
        ProfilesConfig.model_validate({"suppression": {"s": {}}})
    with pytest.raises(ValidationError, match="names audience 'nope'"):
        ProfilesConfig.model_validate({"suppression": {"s": {"values": ["a@b.co"], "audiences": ["nope"]}}})


def test_check_refuses_a_typo_with_position_and_caret(tmp_path):
    config = ProfilesConfig.model_validate(shop_config(tmp_path, audiences={"everyone": AUDIENCES["everyone"],
                                                                            "winback": {"where": "ordrs_count > 3"}}))
    with pytest.raises(ConfigError) as exc:
        ProfilesDestination().check_targets(config, [])
    assert exc.value.field == "audiences.winback.where"
    assert exc.value.message == ("audience 'winback' (audiences.winback.where): unknown trait 'ordrs_count' at 1:1 — "
                                 "did you mean 'orders_count'?\n    ordrs_count > 3\n    ^^^^^^^^^^^")


def test_check_refuses_a_missing_suppression_file(tmp_path):
    config = shop_config(tmp_path)
    config["suppression"]["vip_hold"]["file"] = str(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="file .*missing.csv' does not exist") as exc:
        ProfilesDestination().check(ProfilesConfig.model_validate(config))
    assert exc.value.field == "suppression.vip_hold.file"


def test_a_sync_with_a_bad_audience_fails_before_anything_is_read(tmp_path):
    from threadline.engine import run_job
    from threadline.job import load_job
    from threadline.plugins import reset

    (tmp_path / "crm.csv").write_text("id,email\n1,ana@shop.test\n")
    (tmp_path / "job.yaml").write_text(json.dumps({
        "name": "typo", "sources": {"crm": {"connector": "files", "config": {"streams": [
            {"name": "customers", "path": "crm.csv", "primary_key": ["id"]}]}}},
        "destinations": {"store": {"connector": "profiles", "config": {
            "path": "profiles.duckdb", "mappings": {"crm.customers": {"identifiers": {"email": "email"}}},
            "audiences": {"winback": {"where": "orders_count > 3 and last_order_at within 90d"}}}}}}))
    from threadline.checks import check_job

    reset()
    failed = [r for r in check_job(tmp_path / "job.yaml") if not r.ok]
    assert failed and "trait 'orders_count' needs a stream mapped with `orders" in failed[0].message
    report = run_job(load_job(tmp_path / "job.yaml"))
    assert not report.ok and "audiences.winback.where" in report.error
    with ProfileStore.open({"path": str(tmp_path / "profiles.duckdb")}) as store:
        assert store.engine.table_columns("raw_crm__customers") == []


# --------------------------------------------------------------------------- CLI and report


def test_the_cli_lists_audiences_with_their_sizes(shop, tmp_path):
    store, _, _ = shop
    store.close()
    result = CliRunner().invoke(audiences_group, ["list", "--path", str(tmp_path / "profiles.duckdb")])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "2  +2 −0" in lines["abandoned_cart"] and "excludes recent_buyers" in lines["abandoned_cart"]
    assert "below_min_size" in lines["loyal"] and "needs email consent" in lines["loyal"]


def test_the_cli_previews_an_audience_with_masked_emails(shop, tmp_path):
    store, _, _ = shop
    store.close()
    result = CliRunner().invoke(audiences_group, ["preview", "abandoned_cart", "--path", str(tmp_path / "profiles.duckdb")])
    assert result.exit_code == 0, result.output
    assert "size               2" in result.output
    assert "email 1 · sms 2 · advertising 2 · direct_mail 0" in result.output
    assert "overlap: recent_buyers 0 · loyal 1 · everyone 1" in result.output
    assert "e***@shop.test" in result.output and "eve@shop.test" not in result.output
    as_json = CliRunner().invoke(audiences_group, ["preview", "loyal", "--json", "--path", str(tmp_path / "profiles.duckdb")])
    assert json.loads(as_json.output)["size"] == 2


def test_the_report_shows_audience_sizes_across_builds_and_a_trait_summary(tmp_path):
    lander = land(shop_config(tmp_path))
    with lander.store() as store:
        api.build(store)
        lander.land("shop", "orders", [order("o8", "dee@shop.test", datetime(2024, 6, 30))], run_id="run-2")
        result = api.build(store)
    text = Path(result.report_path).read_text()
    assert 'aria-label="audience sizes across builds"' in text
    assert text.count("<polyline") == 4  # one line per audience over two builds
    assert "<h2>Audiences</h2>" in text and "below_min_size" in text
    assert "<h2>Traits</h2>" in text and "days_since_last_order" in text and "min 1 · median" in text
    assert "<h2>Consent (marketing)</h2>" in text
    assert "@shop.test" not in text and "gmail.com" not in text  # figures only, no personal data


@pytest.mark.postgres
def test_duckdb_and_postgres_give_the_same_audiences(tmp_path, pg_schema):
    audiences = {**AUDIENCES, "mailable": {"where": "reachable_channels contains 'email' and country in ['US', 'CA']"},
                 "quiet": {"where": "not (last_event = 'cart_abandoned') and first_name != 'Ana' and lifetime_value < 20.5"}}
    duck = land(shop_config(tmp_path, audiences=audiences)).store()
    pg = land({**shop_config(tmp_path, audiences=audiences), "engine": "postgres", "schema": pg_schema}).store()
    try:
        api.build(duck, report=False)
        api.build(pg, report=False)
        assert sizes(pg) == sizes(duck)
        assert (current(duck, "mailable"), current(duck, "quiet")) == (["ana", "eve"], ["cy"])  # bob is suppressed
        for name in audiences:
            assert current(pg, name) == current(duck, name)
        assert select_members(pg, "abandoned_cart", "email").members.to_pylist() == \
            select_members(duck, "abandoned_cart", "email").members.to_pylist()
        assert preview(pg, "abandoned_cart").lacking_consent == preview(duck, "abandoned_cart").lacking_consent
        assert trait_summary(pg) == trait_summary(duck)  # the report's figures
    finally:
        duck.close()
        pg.close()
