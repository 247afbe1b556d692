"""The main job (examples/mission), as `python3 dev.py demo` runs it: every vendor sandbox,
three monthly syncs into the profile store, audiences pushed to six platforms and a mail file."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mission(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mission") / "mission"
    shutil.copytree(ROOT / "examples" / "mission", folder,
                    ignore=shutil.ignore_patterns(".threadline", "*.duckdb*", "*_reports", "mail"))
    out = subprocess.run([sys.executable, "replay.py", "--serve"], cwd=folder, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return folder, out.stdout + out.stderr


def query(folder: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(folder / "mission.duckdb"), read_only=True)
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
