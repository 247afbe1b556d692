"""Replay three months of the mission against the running sandboxes (see job.yaml).

Each sync is the same job seen a month later (`MISSION_AS_OF`): traits are computed as of
that day, so customers lapse, new orders arrive and carts are abandoned between runs, and
every push sends only who joined and who left. After each push the loyalty thank-you email
goes out to the Mailchimp tag the push keeps, and the people each campaign's decisions chose or
held out answer it with orders at known rates (ANSWER_RATES); the next sync reads back what
the email and the orders did. At the end it prints the audiences, the
pushes, one customer's unified profile and where the report is.

    python examples/mission/replay.py --serve     # what `python3 dev.py demo` runs: starts the
                                                  # sandboxes, then replays inside them

Every replay starts over (the store, state, reports and mail files of the last one are
deleted), because the sandboxes start empty too: a push ledger must match the platform.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
JOB = HERE / "job.yaml"
MONTHS = ("2026-09-20", "2026-10-20", "2026-11-20")
# vendor sandbox -> port, as the job file's default URLs expect them
SANDBOXES = {
    "hubspot": 18501, "salesforce": 18502, "zendesk": 18503, "shopify": 18504, "mailchimp_audiences": 18505,
    "klaviyo_lists": 18506, "x": 18507, "loyaltylion": 18508, "google_customer_match": 18511,
    "meta_audiences": 18512, "tiktok_audiences": 18513, "linkedin_audiences": 18514,
}
# the job file's variables for each sandbox's address (its default is the port above), with the path after it
URL_VARIABLES = {
    "hubspot": {"HUBSPOT_URL": ""}, "salesforce": {"SALESFORCE_LOGIN_URL": ""}, "zendesk": {"ZENDESK_URL": ""},
    "shopify": {"SHOPIFY_URL": ""}, "mailchimp_audiences": {"MAILCHIMP_URL": "/3.0"},
    "klaviyo_lists": {"KLAVIYO_URL": "/api"}, "x": {"X_URL": "/2"}, "loyaltylion": {"LOYALTYLION_URL": "/v2"},
    "google_customer_match": {"GOOGLE_URL": "", "GOOGLE_TOKEN_URL": "/token"}, "meta_audiences": {"META_URL": ""},
    "tiktok_audiences": {"TIKTOK_URL": ""},
    "linkedin_audiences": {"LINKEDIN_URL": "/rest", "LINKEDIN_TOKEN_URL": "/oauth/v2/accessToken"},
}
# The simulated shoppers, with a known true effect: in the weeks after a campaign's decisions,
# a person of its treated arm buys the answer order (the Shopify sandbox's `answer_campaign`,
# seeded) with probability TREATED, someone held out with HELD_OUT, on top of what the
# population buys anyway. So each campaign adds (TREATED - HELD_OUT) answer orders per person
# of its arms, and the report's lift on revenue per person should have that times the order's
# total inside its interval (tests/examples/test_examples_mission.py checks it).
ANSWER_RATES = {"treated": 0.45, "held_out": 0.10}
ANSWER_WITHIN_DAYS = 20  # inside the conversion window (decisions.conversion_window, 30d)
LEFTOVERS = ("mission.duckdb", "mission.duckdb.wal", "mission.duckdb.secret", "mission.duckdb.key", ".threadline", "mission_reports", "mail")
THREADLINE = [sys.executable, "-m", "threadline"]


def run(*args: str, env: dict[str, str] | None = None) -> None:
    print(f"\n$ threadline {' '.join(args)}", flush=True)
    done = subprocess.run([*THREADLINE, *args], env={**os.environ, **(env or {})})
    if done.returncode not in (0, 75):  # 75: a stream paused for a rate limit, resumed next run
        sys.exit(done.returncode)


def serve() -> int:
    """Start every sandbox and replay while they serve."""
    names, env = addresses(SANDBOXES)
    replay = f"{sys.executable} {Path(__file__).resolve()}"
    return subprocess.run([*THREADLINE, "sandbox", *names, "--run", replay], env={**os.environ, **env}).returncode


def addresses(sandboxes: dict[str, int]) -> tuple[list[str], dict[str, str]]:
    """`NAME=PORT` for each sandbox, and the job's *_URL variables for those that could not
    have their usual port (another demo, another program holds it) and got a free one."""
    ports = {name: port if _free(port) else _any_free_port() for name, port in sandboxes.items()}
    moved = {name: port for name, port in ports.items() if port != sandboxes[name]}
    if moved:
        print("ports in use, so these sandboxes listen elsewhere: "
              + ", ".join(f"{name} on {port}" for name, port in moved.items()), flush=True)
    env = {variable: f"http://127.0.0.1:{port}{path}"
           for name, port in moved.items() for variable, path in URL_VARIABLES[name].items()}
    return [f"{name}={port}" for name, port in ports.items()], env


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def send_loyalty_email(as_of: str) -> None:
    """The marketer sends the loyalty thank-you to the Mailchimp tag the push keeps, two days
    later (the sandbox's `send_campaign`: a real account would do it in Mailchimp's editor)."""
    root = os.environ.get("MAILCHIMP_URL", "http://127.0.0.1:18505/3.0").removesuffix("/3.0")
    at = (datetime.fromisoformat(as_of) + timedelta(days=2, hours=10)).isoformat() + "+00:00"
    body = json.dumps({"list_id": "a1b2c3d4e5", "tag": "loyal-customers", "title": "Thank you for your loyalty",
                       "at": at, "open_rate": 0.6}).encode()
    request = urllib.request.Request(f"{root}/_sandbox/send_campaign", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        sent = json.loads(answer.read())
    print(f"\n(the loyalty thank-you email goes to the tag's {sent['recipients']:,} contacts: {sent['campaign_id']})",
          flush=True)


def answer_campaigns(as_of: str) -> None:
    """The people who joined a campaign's arms at `as_of` (the store's `tl_campaign_arms`: the
    simulation knows who got which offer) answer it in the Shopify sandbox at their arm's rate.
    Only campaigns with a holdout: one without (the win-back ads) cannot be measured, and its
    answers would only shrink the lapsed audience below what the ad platforms take."""
    from threadline_profiles.engines.duckdb_crypto import connect_file

    con = connect_file(HERE / "mission.duckdb", read_only=True)  # the store is encrypted: read with its key
    try:
        rows = con.execute(
            "SELECT a.campaign, a.arm, g.value FROM tl_campaign_arms AS a "
            "JOIN tl_golden AS g ON g.profile_id = a.profile_id AND g.field = 'email' "
            "WHERE a.assigned_at = CAST(? AS TIMESTAMP) "
            "AND a.campaign IN (SELECT campaign FROM tl_campaign_arms WHERE arm = 'held_out') ORDER BY 1, 2, 3",
            [as_of]).fetchall()
    finally:
        con.close()
    arms: dict[tuple[str, str], list[str]] = {}
    for campaign, arm, email in rows:
        arms.setdefault((campaign, arm), []).append(email)
    root = os.environ.get("SHOPIFY_URL", "http://127.0.0.1:18504")
    for (campaign, arm), emails in sorted(arms.items()):
        body = json.dumps({"emails": emails, "rate": ANSWER_RATES[arm], "after": f"{as_of}T12:00:00+00:00",
                           "within_days": ANSWER_WITHIN_DAYS, "label": f"{campaign}/{arm}/{as_of}"}).encode()
        request = urllib.request.Request(f"{root}/_sandbox/answer_campaign", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            placed = json.loads(answer.read())
        print(f"({campaign}, {arm}: {placed['orders']:,} of {placed['of']:,} people answer with an order of "
              f"{placed['total']:.2f})", flush=True)


def start_over() -> None:
    for name in LEFTOVERS:
        path = HERE / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def main() -> None:
    if "--serve" in sys.argv[1:]:
        sys.exit(serve())
    start_over()
    for n, as_of in enumerate(MONTHS):
        print(f"\n=== the store as of {as_of} ===", flush=True)
        run("sync", str(JOB), env={"MISSION_AS_OF": as_of})
        if n + 1 < len(MONTHS):  # the next sync reads what the campaigns did
            send_loyalty_email(as_of)
            answer_campaigns(as_of)
    run("audiences", "list", "--job", str(JOB))
    run("push", "--job", str(JOB), "--history")
    run("profiles", "get", "--job", str(JOB), "--email", "kelly.neal@gmail.com")
    run("profiles", "report", "--job", str(JOB))


if __name__ == "__main__":
    main()
