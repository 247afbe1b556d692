"""The main job (examples/mission), as `python3 dev.py demo` runs it: every vendor sandbox,
three monthly syncs into the profile store, audiences pushed to six platforms and a mail file."""

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from threadline_profiles.engines.duckdb_crypto import connect_file

ROOT = Path(__file__).resolve().parents[2]
# the replay below runs three months of syncs under its own 900 s limit; the suite's 300 s per
# test would cut it short on a loaded machine and fail every test of the module with it
pytestmark = pytest.mark.timeout(960)


@pytest.fixture(scope="module")
def mission(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mission") / "mission"
    shutil.copytree(ROOT / "examples" / "mission", folder,
                    ignore=shutil.ignore_patterns(".threadline", "*.duckdb*", "*_reports", "mail"))
    out = subprocess.run([sys.executable, "replay.py", "--serve"], cwd=folder, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return folder, out.stdout + out.stderr


def query(folder: Path, sql: str) -> list[tuple]:
    con = connect_file(folder / "mission.duckdb", read_only=True)  # the profile store, encrypted or not
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_mission_resolves_kelly_across_the_vendors(mission):
    folder, _ = mission
    out = subprocess.run([sys.executable, "-m", "threadline", "profiles", "get", "--job", "job.yaml", "--email",
                          "kelly.neal@gmail.com", "--json"], cwd=folder, capture_output=True, text=True)
    (profile,) = json.loads(out.stdout)
    sources = {m["record_key"].split(".")[0] for m in profile["members"]}
    assert {"hubspot", "salesforce", "zendesk", "shopify", "mailchimp", "klaviyo", "tills"} <= sources


def test_every_run_evaluates_the_audiences_and_pushes_only_the_difference(mission):
    folder, _ = mission
    assert query(folder, "SELECT COUNT(*) FROM tl_audience_evaluations")[0][0] == 3
    pushes = query(folder, "SELECT activation, outcome, adds, removes, accepted FROM tl_pushes ORDER BY finished_at")
    by = {}
    for activation, outcome, adds, removes, accepted in pushes:
        by.setdefault(activation, []).append((outcome, adds, removes, accepted))
    assert len(by) == 7 and all(len(v) == 3 for v in by.values())
    loyal = by["loyal_to_mailchimp"]
    assert all(o == "pushed" for o, *_ in loyal) and loyal[0][3] > 100
    assert loyal[1][1] < loyal[0][1] / 2, "a second push re-sent most of the audience instead of the difference"
    assert any(o == "pushed" and acc > 0 for o, _, _, acc in by["lapsed_to_meta"])
    assert {o for o, *_ in by["lapsed_to_tiktok"]} == {"below_minimum"}  # TikTok needs 1,000 people


def test_ad_platform_ledgers_hold_no_plain_identifier(mission):
    folder, _ = mission
    rows = query(folder, "SELECT * FROM tl_ledger_lapsed_to_meta")
    assert rows
    assert not any("@" in str(v) for row in rows for v in row[1:])


def test_the_direct_mail_file_holds_names_and_addresses_only(mission):
    folder, _ = mission
    files = sorted((folder / "mail").glob("service_recovery-*.csv"))
    assert files, "no direct-mail file was written"
    text = files[-1].read_text()
    assert "postal_code" in text.splitlines()[0] and "@" not in text


def test_the_report_shows_audiences_over_runs_and_what_platforms_accepted(mission):
    folder, _ = mission
    report = sorted((folder / "mission_reports").glob("profiles-*.html"))[-1].read_text()
    assert "Audience sizes across builds" in report and "<svg" in report
    assert "Pushes to platforms" in report and "meta_audiences" in report
    assert "kelly.neal@gmail.com" not in report


def test_the_lifecycle_group_gives_nobody_two_campaigns(mission):
    folder, _ = mission
    (several, given_several), = query(folder, (
        "SELECT COUNT(CASE WHEN candidate_for > 1 THEN 1 END), COUNT(CASE WHEN chosen_for > 1 THEN 1 END) FROM "
        "(SELECT profile_id, COUNT(*) AS candidate_for, COUNT(CASE WHEN chosen THEN 1 END) AS chosen_for "
        "FROM tl_decisions WHERE campaign_group = 'lifecycle' GROUP BY profile_id) AS x"))
    # about a hundred people (~100 since conflicts are settled by weight across rules, 107
    # before; fewer by the last month, when the simulated answers to the campaigns have moved
    # a few buyers out of abandoned_cart): the number moves with how profiles resolve
    assert several > 50, "the audiences no longer overlap: the example stopped showing collisions"
    assert given_several == 0
    # and the platforms agree: nobody is on the loyalty list and in the win-back ads at once
    assert query(folder, "SELECT COUNT(*) FROM tl_ledger_loyal_to_mailchimp JOIN tl_ledger_lapsed_to_meta "
                         "USING (member_id)") == [(0,)]
    reasons = dict(query(folder, "SELECT reason, COUNT(*) FROM tl_decisions GROUP BY reason"))
    assert reasons["lower_priority"] > 0 and reasons["held_out"] > 0 and reasons["chosen"] > 500


def test_preview_and_report_show_the_decisions(mission):
    folder, _ = mission
    out = subprocess.run([sys.executable, "-m", "threadline", "audiences", "preview", "loyal_customers", "--job",
                          "job.yaml"], cwd=folder, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "campaign loyal_thanks: chosen" in out.stdout and "lower priority" in out.stdout
    assert "decision=loyal_thanks:" in out.stdout
    report = sorted((folder / "mission_reports").glob("profiles-*.html"))[-1].read_text()
    assert "<h2>Campaigns</h2>" in report and "<h3>Priority groups</h3>" in report
    assert "<h3>Lift against the holdout</h3>" in report and 'aria-label="conversion lift per campaign"' in report
    assert all(f"<h3>Campaign {c}</h3>" in report
               for c in ("loyal_thanks", "lapsed_winback", "cart_reminder", "service_recovery_coupon"))


def test_campaign_results_and_match_rates_come_back_into_the_store(mission):
    folder, _ = mission
    (sent, opened, credited), = query(folder, (
        "SELECT SUM(delivered), SUM(CASE WHEN opened > 0 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN campaign = 'loyal_thanks' THEN delivered ELSE 0 END) FROM tl_campaign_results "
        "WHERE platform_campaign LIKE 'a1b2-loyal-custo%'"))
    assert sent > 100 and opened > 0, "the loyalty thank-you email sent to the tag did not come back"
    assert credited >= 0.9 * sent, "the thank-you email's deliveries were not credited to loyal_thanks"
    (openers, clickers, unsubscribed), = query(folder, (
        "SELECT COUNT(CASE WHEN opened > 0 THEN 1 END), COUNT(CASE WHEN clicked > 0 THEN 1 END), SUM(unsubscribed) "
        "FROM tl_campaign_results WHERE channel = 'email'"))
    assert openers > 1000 and clickers > 100 and unsubscribed > 10  # the newsletters' and Klaviyo's too
    assert query(folder, "SELECT COUNT(*) FROM tl_traits WHERE last_campaign IS NOT NULL")[0][0] > 1000
    rates = query(folder, "SELECT activation, held, matched FROM tl_match_rates WHERE activation = 'lapsed_to_meta'")
    assert rates and all(held > 0 for _, held, _ in rates)
    report = sorted((folder / "mission_reports").glob("profiles-*.html"))[-1].read_text()
    assert "<h3>Results and conversions</h3>" in report and "<h3>Match rates across pushes</h3>" in report


def test_the_measured_lift_contains_the_known_effect_of_the_simulated_answers(mission):
    # replay.py has the people of each campaign's arms answer it with orders in the Shopify
    # sandbox at known rates (ANSWER_RATES), each answer the same order (ANSWER_TOTAL): on top of
    # what everyone buys anyway, the loyalty thank-you adds (treated − held out) × ANSWER_TOTAL
    # to revenue per person, and the interval the last build measured must contain it
    from threadline_shopify.sandbox import ANSWER_TOTAL

    folder, output = mission
    rates = runpy.run_path(str(folder / "replay.py"))["ANSWER_RATES"]  # not as __main__: nothing runs
    assert "loyal_thanks, held_out:" in output and "answer with an order" in output
    # every person of the arms has an email to answer with, so the whole arm carries the effect
    assert query(folder, "SELECT COUNT(*) FROM tl_campaign_arms AS a WHERE a.campaign = 'loyal_thanks' AND NOT EXISTS "
                         "(SELECT 1 FROM tl_golden AS g WHERE g.profile_id = a.profile_id AND g.field = 'email')"
                 ) == [(0,)]
    lift = {metric: (treated, held_out, low, high) for metric, treated, held_out, low, high in query(folder, (
        "SELECT metric, treated_people, held_out_people, ci_low, ci_high FROM tl_campaign_lift "
        "WHERE campaign = 'loyal_thanks' AND as_of = (SELECT MAX(as_of) FROM tl_campaign_lift)"))}
    treated, held_out, low, high = lift["revenue_per_person"]
    assert treated > 200 and held_out > 20, "too few people in the arms to measure the loyalty thank-you"
    true_effect = (rates["treated"] - rates["held_out"]) * ANSWER_TOTAL
    assert low < true_effect < high, (true_effect, low, high)
    _, _, low, high = lift["conversion"]
    assert low > 0, "the answers no longer raise the treated arm's conversion above the held-out arm's"
