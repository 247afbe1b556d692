"""Decisions: campaigns in priority groups, frequency caps and cooldowns counted from what the
platforms accepted, stable holdouts, the reasons in `tl_decisions`, and pushes that follow them.

The shop: 40 people, each in audience `a` (even numbers), `b` (multiples of 3) or both
(multiples of 6); people 0, 5, 10, ... have no postal address (the print house rejects them);
people 4 (in a) and 15 (in b) opted out of direct mail. Campaigns go to direct-mail files (mirror pushes).
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from threadline.contracts import ConfigError
from threadline_profiles import api
from threadline_profiles.activation.push import check_activations, push_all
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.cli.audiences import render_preview
from threadline_profiles.decisions.engine import held_out_sql
from threadline_profiles.decisions.preview import preview
from threadline_profiles.report.decisions import collisions
from threadline_profiles.testing import Lander

PEOPLE = 40
NO_ADDRESS = {i for i in range(PEOPLE) if i % 5 == 0}
OPTED_OUT = {4, 15}
IN_A = {i for i in range(PEOPLE) if i % 2 == 0}
IN_B = {i for i in range(PEOPLE) if i % 3 == 0}


def people() -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "email": f"person{i}@shop.test", "first": f"Ann{i}", "last": "Lee",
             "street": None if i in NO_ADDRESS else f"{i} Main St", "city": "Boston", "zip": "02139", "country": "US",
             "seg_a": "y" if i in IN_A else "n", "seg_b": "y" if i in IN_B else "n",
             "mail": "opted_out" if i in OPTED_OUT else None} for i in range(PEOPLE)]


def settings(folder: Path, **decisions: Any) -> dict[str, Any]:
    mail = {"connector": "direct_mail", "mode": "mirror", "config": {"folder": str(folder / "mail")}}
    return {
        "mappings": {"crm.customers": {
            "identifiers": {"email": "email"}, "traits": {"first_name": "first", "last_name": "last",
                                                          "seg_a": "seg_a", "seg_b": "seg_b"},
            "address": {"line1": "street", "city": "city", "postal_code": "zip", "country": "country"},
            "consent": {"channel": "direct_mail", "column": "mail"}}},
        "traits": {"as_of": "2026-01-01"},
        "audiences": {"a": {"where": "seg_a = 'y'"}, "b": {"where": "seg_b = 'y'"}},
        "activations": {"a_by_post": {"audience": "a", **mail}, "b_by_post": {"audience": "b", **mail}},
        "decisions": {"campaigns": {
            "thanks": {"audience": "a", "channel": "direct_mail", "activation": "a_by_post", "priority": 20, "group": "g"},
            "winback": {"audience": "b", "channel": "direct_mail", "activation": "b_by_post", "priority": 10, "group": "g"},
        }, **decisions},
    }


@pytest.fixture
def shop(store_config, tmp_path) -> Lander:
    land = Lander({**store_config, "report_dir": str(tmp_path / "reports"), **settings(tmp_path)})
    land.land("crm", "customers", people())
    return land


def decisions(land: Lander) -> dict[tuple[str, int], tuple[str, str | None]]:
    """(campaign, person number) -> (reason, detail) at the latest build."""
    with land.store() as store:
        rows = store.engine.rows(
            "SELECT d.campaign, m.record_key, d.reason, d.detail FROM tl_decisions AS d "
            "JOIN tl_members AS m ON m.profile_id = d.profile_id")
    return {(r["campaign"], int(r["record_key"].rsplit(":c", 1)[1])): (r["reason"], r["detail"]) for r in rows}


def build_and_push(land: Lander, as_of: str) -> list:
    land.raw_config["traits"]["as_of"] = as_of
    land.build()
    with land.store() as store:
        store.config = land.config
        return push_all(store)


def mailed(folder: Path, audience: str) -> set[int]:
    latest = sorted((folder / "mail").glob(f"{audience}-*.csv"), key=lambda p: p.stat().st_mtime)[-1]
    with latest.open() as f:
        return {int(row["first_name"].removeprefix("Ann")) for row in csv.DictReader(f)}


# --------------------------------------------------------------------------- config


def test_a_campaign_naming_a_missing_audience_names_its_path(tmp_path):
    raw = settings(tmp_path)
    raw["decisions"]["campaigns"]["thanks"]["audience"] = "loyall"
    with pytest.raises(ValidationError, match=r"decisions\.campaigns\.thanks\.audience: audience 'loyall' is not declared"):
        ProfilesConfig.model_validate(raw)


def test_a_campaign_naming_a_missing_activation_names_its_path(tmp_path):
    raw = settings(tmp_path)
    raw["decisions"]["campaigns"]["winback"]["activation"] = ["b_by_post", "b_by_pigeon"]
    with pytest.raises(ValidationError, match=r"decisions\.campaigns\.winback\.activation: activation 'b_by_pigeon'"):
        ProfilesConfig.model_validate(raw)


def test_a_campaign_whose_activation_pushes_another_audience_is_refused(tmp_path):
    raw = settings(tmp_path)
    raw["decisions"]["campaigns"]["winback"]["activation"] = "a_by_post"
    with pytest.raises(ValidationError, match=r"decisions\.campaigns\.winback\.activation: .* pushes audience 'a'"):
        ProfilesConfig.model_validate(raw)


def test_a_priority_tie_within_a_group_names_both_campaigns(tmp_path):
    raw = settings(tmp_path)
    raw["decisions"]["campaigns"]["winback"]["priority"] = 20
    with pytest.raises(ValidationError, match=r"campaigns\.winback\.priority: 20 is also the priority of campaign 'thanks'"):
        ProfilesConfig.model_validate(raw)


def test_equal_priorities_in_different_groups_are_fine(tmp_path):
    raw = settings(tmp_path)
    raw["decisions"]["campaigns"]["winback"].update(priority=20, group="other")
    assert ProfilesConfig.model_validate(raw).decisions.in_order() == ["thanks", "winback"]


@pytest.mark.parametrize("where", ["caps", "cooldown"])
def test_a_window_that_cannot_be_parsed_names_its_path(tmp_path, where):
    raw = settings(tmp_path, caps=[{"channel": "direct_mail", "max": 1, "window": "7 days" if where == "caps" else "7d"}])
    if where == "cooldown":
        raw["decisions"]["campaigns"]["thanks"]["cooldown"] = "a fortnight"
    with pytest.raises(ValidationError) as caught:
        ProfilesConfig.model_validate(raw)
    (error,) = caught.value.errors()
    path = ("decisions", "caps", 0, "window") if where == "caps" else ("decisions", "campaigns", "thanks", "cooldown")
    assert error["loc"] == path and "must be a number and a unit" in error["msg"]


def test_a_campaign_on_another_channel_than_its_destination_fails_check(tmp_path):
    raw = settings(tmp_path)
    raw["decisions"]["campaigns"]["thanks"]["channel"] = "email"
    with pytest.raises(ConfigError) as caught:
        check_activations(ProfilesConfig.model_validate(raw))
    assert caught.value.field == "decisions.campaigns.thanks.channel"


# --------------------------------------------------------------------------- deciding


def test_within_a_group_each_person_gets_only_the_highest_priority_campaign(shop):
    shop.build()
    found = decisions(shop)
    both = IN_A & IN_B - OPTED_OUT
    assert both and all(found[("winback", i)] == ("lower_priority", "thanks") for i in both)
    assert all(found[("thanks", i)][0] == "chosen" for i in IN_A - OPTED_OUT)
    assert all(found[("winback", i)][0] == "chosen" for i in IN_B - IN_A - OPTED_OUT)


def test_a_person_without_consent_for_the_channel_is_left_out_for_it(shop):
    shop.build()
    found = decisions(shop)
    assert found[("thanks", 4)] == ("no_consent", None)
    assert found[("winback", 15)] == ("no_consent", None)
    assert ("thanks", 15) not in found  # not in audience a at all


def test_pushes_follow_the_decisions_and_contacts_count_only_what_was_accepted(shop, tmp_path):
    outcomes = {o.activation: o for o in build_and_push(shop, "2026-01-01")}
    assert all(o.outcome == "pushed" for o in outcomes.values()), [o.message for o in outcomes.values()]
    assert mailed(tmp_path, "b") == IN_B - IN_A - OPTED_OUT - NO_ADDRESS
    assert outcomes["b_by_post"].excluded_by_decision == len(IN_A & IN_B)
    with shop.store() as store:
        contacted = store.engine.rows("SELECT campaign, COUNT(*) AS n FROM tl_contacts GROUP BY campaign ORDER BY campaign")
    assert contacted == [{"campaign": "thanks", "n": len(IN_A - OPTED_OUT - NO_ADDRESS)},
                         {"campaign": "winback", "n": len(IN_B - IN_A - OPTED_OUT - NO_ADDRESS)}]


def test_a_person_a_higher_priority_campaign_takes_is_removed_from_the_lower_one(shop, tmp_path):
    build_and_push(shop, "2026-01-01")
    moved = 9  # in b only; joins a
    rows = people()
    rows[moved]["seg_a"] = "y"
    shop.land("crm", "customers", rows)
    build_and_push(shop, "2026-01-08")
    assert decisions(shop)[("winback", moved)] == ("lower_priority", "thanks")
    assert moved not in mailed(tmp_path, "b") and moved in mailed(tmp_path, "a")


def test_a_frequency_cap_counts_contacts_in_its_window(store_config, tmp_path):
    # one contact a week on direct mail, and winback in no group: someone mailed `thanks` on
    # day 1 who also qualifies for winback is capped for it until the week has passed
    raw = settings(tmp_path, caps=[{"channel": "direct_mail", "max": 1, "window": "7d"}])
    raw["decisions"]["campaigns"]["winback"]["group"] = None
    land = Lander({**store_config, "report_dir": str(tmp_path / "reports"), **raw})
    land.land("crm", "customers", people())
    build_and_push(land, "2026-01-01")
    both = IN_A & IN_B - OPTED_OUT
    assert all(decisions(land)[("winback", i)] == ("capped", None) for i in both)  # thanks came first in this run
    build_and_push(land, "2026-01-05")
    assert all(decisions(land)[("winback", i)] == ("capped", None) for i in both)
    build_and_push(land, "2026-01-09")
    found = decisions(land)
    # mailed on day 1, out of the window now: thanks continues (no new contact), winback fits
    assert all(found[("winback", i)] == ("chosen", None) for i in both - NO_ADDRESS)
    # the print house refused them (no address), so thanks was never a contact and is tried
    # again as a new one, which uses up the week
    assert all(found[("winback", i)] == ("capped", None) for i in both & NO_ADDRESS)
    with land.store() as store:
        continuing = {r["campaign"]: r["n"] for r in store.engine.rows(
            "SELECT campaign, COUNT(*) AS n FROM tl_decisions WHERE continuing GROUP BY campaign")}
    assert continuing == {"thanks": len(IN_A - OPTED_OUT - NO_ADDRESS), "winback": len(IN_B - IN_A - OPTED_OUT - NO_ADDRESS)}


def test_a_cooldown_keeps_a_campaign_from_contacting_someone_again(shop, tmp_path):
    shop.raw_config["decisions"]["campaigns"]["winback"]["cooldown"] = "30d"
    build_and_push(shop, "2026-01-01")
    person = 3  # in b only, mailed winback on day 1
    rows = people()
    rows[person]["seg_b"] = "n"
    shop.land("crm", "customers", rows)
    build_and_push(shop, "2026-01-08")  # left b: removed from the list, contact closed
    rows[person]["seg_b"] = "y"
    shop.land("crm", "customers", rows)
    build_and_push(shop, "2026-01-15")
    assert decisions(shop)[("winback", person)] == ("cooling_down", None)
    build_and_push(shop, "2026-02-05")
    assert decisions(shop)[("winback", person)] == ("chosen", None)


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_merge_moves_the_contact_history_to_the_surviving_profile_so_caps_still_count_it(engine, request, tmp_path):
    # one mailing a week, and winback in no group. Ann41 has been a customer (in no audience)
    # since day 1; on day 2 a second record of hers, with another email, is new and in `a`, and
    # is mailed `thanks`. On day 3 that record gives her first email and moves her to `b`: the
    # two profiles merge into hers (the older), and the thanks letter of the week still counts
    store_config = request.getfixturevalue("store_config") if engine == "duckdb" else \
        {"engine": "postgres", "schema": request.getfixturevalue("pg_schema"), "resolve_on_finish": False}
    raw = settings(tmp_path, caps=[{"channel": "direct_mail", "max": 1, "window": "7d"}])
    raw["decisions"]["campaigns"]["winback"]["group"] = None
    land = Lander({**store_config, "report_dir": str(tmp_path / "reports"), **raw})
    template = people()[1]
    her = {**template, "id": "c41", "email": "ann41@shop.test", "first": "Ann41", "street": "41 Main St",
           "seg_a": None, "seg_b": None}
    land.land("crm", "customers", [*people(), her])
    build_and_push(land, "2026-01-01")
    second = {**her, "id": "c42", "email": "ann41.work@shop.test", "street": "7 Oak St",
              "seg_a": "y", "seg_b": "n"}  # another address: nothing links it to her yet
    land.land("crm", "customers", [second])
    build_and_push(land, "2026-01-02")
    with land.store() as store:
        ids = {r["record_key"].rsplit(":", 1)[1]: r["profile_id"] for r in store.engine.rows(
            "SELECT record_key, profile_id FROM tl_members WHERE record_key LIKE '%:c41' OR record_key LIKE '%:c42'")}
        assert ids["c41"] != ids["c42"]
        assert store.engine.rows(f"SELECT campaign FROM tl_contacts WHERE profile_id = '{ids['c42']}'") == [
            {"campaign": "thanks"}]
    land.land("crm", "customers", [{**second, "email": her["email"], "seg_a": "n", "seg_b": "y"}])
    build_and_push(land, "2026-01-03")
    with land.store() as store:
        survivor = store.engine.scalar("SELECT profile_id FROM tl_members WHERE record_key LIKE '%:c42'")
        assert survivor == ids["c41"]
        moved = store.engine.rows("SELECT profile_id, campaign, contacted_at FROM tl_contacts "
                                  f"WHERE profile_id IN ('{ids['c41']}', '{ids['c42']}')")
        assert moved == [{"profile_id": survivor, "campaign": "thanks", "contacted_at": datetime(2026, 1, 2)}]
        reason = store.engine.rows(f"SELECT campaign, reason FROM tl_decisions WHERE profile_id = '{survivor}'")
    assert reason == [{"campaign": "winback", "reason": "capped"}]  # the letter of day 2 fills her week


def test_a_merge_moves_campaign_arms_to_the_survivor_and_a_person_keeps_one_arm_per_campaign():
    """Lift counts the arms' people: a merged-away profile left in an arm is nobody."""
    import duckdb
    from threadline_profiles.decisions.contacts import follow_merges_sql

    con = duckdb.connect()
    con.execute("CREATE TABLE tl_work_history (profile_id VARCHAR, event VARCHAR, related_profile_id VARCHAR)")
    con.execute("INSERT INTO tl_work_history VALUES ('a', 'merged_into', 's'), ('b', 'merged_into', 's'), "
                "('c', 'merged_into', 't'), ('d', 'merged_into', 't'), ('x', 'created', NULL)")
    for sql in follow_merges_sql()[:1]:
        con.execute(sql)
    con.execute("CREATE TABLE tl_campaign_arms (campaign VARCHAR, profile_id VARCHAR, arm VARCHAR, assigned_at TIMESTAMP)")
    con.execute("INSERT INTO tl_campaign_arms VALUES "
                "('thanks', 'a', 'treated', '2026-01-01'), ('thanks', 's', 'held_out', '2026-01-02'), "  # survivor holds one
                "('thanks', 'c', 'treated', '2026-01-01'), ('thanks', 'd', 'held_out', '2026-01-03'), "  # two merged, no survivor row
                "('winback', 'b', 'treated', '2026-01-05'), ('thanks', 'x', 'treated', '2026-01-01')")
    for sql in follow_merges_sql()[1:]:
        con.execute(sql)
    assert sorted(con.execute("SELECT campaign, profile_id, arm FROM tl_campaign_arms").fetchall()) == [
        ("thanks", "s", "held_out"), ("thanks", "t", "treated"), ("thanks", "x", "treated"), ("winback", "s", "treated")]


def test_holdouts_are_stable_and_use_up_the_groups_slot(store_config, tmp_path):
    land = Lander({**store_config, "report_dir": str(tmp_path / "reports"), **settings(tmp_path, holdout=0.3)})
    land.land("crm", "customers", people())
    land.build()
    first = decisions(land)
    held = {i for (c, i), (reason, _) in first.items() if c == "thanks" and reason == "held_out"}
    assert 0 < len(held) < len(IN_A)
    assert all(first[("winback", i)] == ("lower_priority", "thanks") for i in held & IN_B - OPTED_OUT)
    land.build()
    assert decisions(land) == first


def test_removing_every_campaign_empties_the_decisions_and_pushes_audiences_whole(shop, tmp_path):
    build_and_push(shop, "2026-01-01")
    shop.raw_config["decisions"] = {}
    outcomes = build_and_push(shop, "2026-01-02")
    assert decisions(shop) == {}
    assert all(o.excluded_by_decision == 0 for o in outcomes)
    assert mailed(tmp_path, "b") == IN_B - OPTED_OUT - NO_ADDRESS


def test_the_holdout_draw_is_the_same_sql_on_every_engine():
    assert held_out_sql("p", "thanks", 0) == "FALSE"
    assert held_out_sql("p", "thanks", 0.5) == "SUBSTR(MD5(p || '/' || 'thanks'), 1, 8) < '80000000'"


# --------------------------------------------------------------------------- preview and report


def test_preview_shows_what_the_decisions_would_do_and_each_sampled_reason(shop):
    shop.build()
    with shop.store() as store:
        store.config = shop.config
        result = preview(store, "b", sample=40)
        assert not store.engine.leftover_tables("tl_work_")
    both = IN_A & IN_B - OPTED_OUT
    assert result.decisions == {"winback": {"chosen": len(IN_B - IN_A - OPTED_OUT), "lower_priority": len(both),
                                            "no_consent": len(OPTED_OUT & IN_B)}}
    reasons = {row["decision"] for row in result.sample}
    assert reasons == {"winback: chosen", "winback: lower priority than thanks", "winback: no consent"}
    text = render_preview(result)
    assert f"campaign winback: chosen {len(IN_B - IN_A - OPTED_OUT)} · lower priority {len(both)}" in text
    assert "decision=winback: lower priority than thanks" in text


def test_the_report_has_a_section_per_campaign_and_the_groups_collisions(shop):
    result = shop.build(report=True)
    text = Path(result.report_path).read_text()
    assert "<h2>Campaigns</h2>" in text and "<h3>Campaign thanks</h3>" in text and "<h3>Campaign winback</h3>" in text
    assert "<h3>Priority groups</h3>" in text
    with shop.store() as store:
        assert collisions(store, "g") == (len(IN_A & IN_B - OPTED_OUT) + len(IN_A & IN_B & OPTED_OUT), 0)
    assert "@shop.test" not in text


def test_forgetting_a_person_erases_their_decisions_and_contacts(shop):
    build_and_push(shop, "2026-01-01")
    with shop.store() as store:
        store.config = shop.config
        (profile_id,) = {r["profile_id"] for r in store.engine.rows(
            "SELECT profile_id FROM tl_members WHERE record_key LIKE '%:c2'")}
        assert store.engine.scalar(f"SELECT COUNT(*) FROM tl_contacts WHERE profile_id = '{profile_id}'") == 1
        api.forget(store, email="person2@shop.test")
        for table in ("tl_decisions", "tl_contacts"):
            assert store.engine.scalar(f"SELECT COUNT(*) FROM {table} WHERE profile_id = '{profile_id}'") == 0


def test_postgres_decides_and_counts_contacts_as_duckdb_does(tmp_path, pg_schema, store_config):
    def run(config: dict[str, Any]) -> dict:
        raw = settings(tmp_path, caps=[{"channel": "direct_mail", "max": 1, "window": "7d"}], holdout=0.3)
        raw["decisions"]["campaigns"]["winback"].update(group=None, cooldown="30d")
        land = Lander({**config, "report_dir": str(tmp_path / "reports"), **raw})
        land.land("crm", "customers", people())
        build_and_push(land, "2026-01-01")
        build_and_push(land, "2026-01-05")
        with land.store() as store:
            contacts = store.engine.rows("SELECT activation, COUNT(*) AS n FROM tl_contacts GROUP BY activation "
                                         "ORDER BY activation")
        return {"decisions": decisions(land), "contacts": contacts}

    duck = run(store_config)
    postgres = run({"engine": "postgres", "schema": pg_schema, "resolve_on_finish": False})
    assert postgres == duck
    assert {reason for reason, _ in duck["decisions"].values()} >= {"chosen", "capped", "held_out", "no_consent"}
