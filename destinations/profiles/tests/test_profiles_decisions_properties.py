"""Properties of the decisions over random campaigns, random audiences that change every day,
and 90 simulated days of pushes (a platform that accepts most new people and refuses some):

- nobody is chosen for two campaigns of one priority group in a run;
- no frequency cap is ever exceeded by what the platforms accepted;
- the same inputs give the same decisions;
- holdouts are stable (nobody is held out of a campaign one day and chosen for it another),
  and their share is within tolerance of the configured one.

The decision engine and the contact history run for real on DuckDB; the audiences and the
platform are simulated by writing the tables they would write (`tl_audience_members`, the
ledgers), so one example costs a fraction of a second a day.
"""

from __future__ import annotations

import random
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (destinations/profiles[dev])")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from threadline_profiles.config.audiences import window_delta  # noqa: E402
from threadline_profiles.decisions.contacts import record_contacts  # noqa: E402
from threadline_profiles.decisions.engine import decide, held_out_sql  # noqa: E402
from threadline_profiles.store import ProfileStore  # noqa: E402
from threadline_profiles.traits import consent  # noqa: E402

DAYS = 90
START = datetime(2026, 1, 1)
CHANNELS = ("email", "direct_mail")


@st.composite
def plans(draw: Any) -> dict[str, Any]:
    """Campaigns (each its own audience and activation), groups, caps, cooldowns, holdouts."""
    count = draw(st.integers(2, 5))
    priorities = draw(st.permutations(range(1, 20)))[:count]  # distinct: no tie in any group
    campaigns = {}
    for i in range(count):
        campaigns[f"c{i}"] = {
            "audience": f"a{i}", "activation": f"act{i}", "priority": priorities[i],
            "channel": draw(st.sampled_from(CHANNELS)),
            "group": draw(st.sampled_from([None, "g1", "g2"])),
            "cooldown": draw(st.sampled_from([None, "3d", "10d"])),
            "holdout": draw(st.sampled_from([None, 0.0, 0.2, 0.5])),
        }
    caps = draw(st.lists(st.fixed_dictionaries({
        "channel": st.sampled_from(CHANNELS), "max": st.integers(0, 3),
        "window": st.sampled_from(["1d", "7d", "14d", "30d"])}), max_size=3))
    return {"campaigns": campaigns, "caps": caps, "holdout": draw(st.sampled_from([0.0, 0.1, 0.3])),
            "people": draw(st.integers(20, 60)), "seed": draw(st.integers(0, 2**31))}


def config(folder: Path, plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": str(folder / "store.duckdb"), "report_dir": str(folder / "reports"),
        "consent": {"defaults": {"email": "granted"}},
        "audiences": {c["audience"]: {"where": "orders_count > 0"} for c in plan["campaigns"].values()},
        "activations": {c["activation"]: {"audience": c["audience"], "connector": "simulated"}
                        for c in plan["campaigns"].values()},
        "decisions": {"campaigns": plan["campaigns"], "caps": plan["caps"], "holdout": plan["holdout"]},
    }


def load(store: ProfileStore, table: str, rows: dict[str, list[Any]], schema: pa.Schema) -> None:
    store.engine.load_table(table, pa.table(rows, schema=schema))


def simulate(plan: dict[str, Any]) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Run the days; return each day's decisions and the final contact history."""
    rng = random.Random(plan["seed"])
    people = [f"p{i:03d}" for i in range(plan["people"])]
    campaigns = plan["campaigns"]
    members = {c["audience"]: {p for p in people if rng.random() < 0.4} for c in campaigns.values()}
    denied = {p for p in people if rng.random() < 0.1}  # no email consent
    days: list[list[dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp, ProfileStore.open(config(Path(tmp), plan)) as store:
        store.engine.execute("INSERT INTO tl_profiles (profile_id) VALUES " + ", ".join(f"('{p}')" for p in people))
        store.engine.run([consent.CREATE_PUBLISHED,
                          "CREATE TABLE tl_audience_evaluations (seq BIGINT, build_id VARCHAR, evaluated_at TIMESTAMP, "
                          "as_of TIMESTAMP)"])
        load(store, "tl_consent", {"profile_id": sorted(denied), "channel": ["email"] * len(denied),
                                   "purpose": ["marketing"] * len(denied), "granted": [False] * len(denied),
                                   "at": [START] * len(denied), "source": ["crm"] * len(denied),
                                   "stream": ["c"] * len(denied), "record_key": ["k"] * len(denied)},
             pa.schema([("profile_id", pa.string()), ("channel", pa.string()), ("purpose", pa.string()),
                        ("granted", pa.bool_()), ("at", pa.timestamp("us")), ("source", pa.string()),
                        ("stream", pa.string()), ("record_key", pa.string())]))
        for day in range(DAYS):
            as_of = START + timedelta(days=day)
            for audience, now in members.items():  # a tenth of everyone moves in or out each day
                members[audience] = {p for p in people if (p in now) != (rng.random() < 0.1)}
            rows = [(a, p) for a, ps in members.items() for p in sorted(ps)]
            load(store, "tl_audience_members", {"audience": [a for a, _ in rows], "profile_id": [p for _, p in rows],
                                                "from_seq": [day + 1] * len(rows), "to_seq": [None] * len(rows)},
                 pa.schema([("audience", pa.string()), ("profile_id", pa.string()), ("from_seq", pa.int64()),
                            ("to_seq", pa.int64())]))
            store.engine.execute(f"INSERT INTO tl_audience_evaluations VALUES ({day + 1}, 'b{day:03d}', "
                                 f"TIMESTAMP '{as_of}', TIMESTAMP '{as_of}')")
            decide(store, as_of)
            decided = store.engine.rows("SELECT * FROM tl_work_d_out ORDER BY campaign, profile_id")
            if day % 30 == 0:  # the same inputs, decided again, give the same decisions
                decide(store, as_of)
                assert store.engine.rows("SELECT * FROM tl_work_d_out ORDER BY campaign, profile_id") == decided
            days.append(decided)
            for name, c in campaigns.items():  # the platform: keeps who stays, takes most newcomers
                chosen = [r for r in decided if r["campaign"] == name and r["reason"] == "chosen"]
                held = [r["profile_id"] for r in chosen if r["continuing"] or rng.random() < 0.8]
                load(store, f"tl_ledger_{c['activation']}", {"member_id": held}, pa.schema([("member_id", pa.string())]))
                record_contacts(store, c["activation"], name, c["channel"], f"push-{day}-{name}")
        history = store.engine.rows("SELECT * FROM tl_contacts ORDER BY contacted_at")
    return days, history


@settings(max_examples=4, deadline=None, derandomize=True, database=None)
@given(plans())
def test_decisions_over_ninety_days_keep_groups_caps_and_holdouts(plan):
    days, history = simulate(plan)
    campaigns = plan["campaigns"]

    for decided in days:  # one campaign per person and group, per run
        slots: dict[tuple[str, str], str] = {}
        for row in decided:
            group = campaigns[row["campaign"]]["group"]
            if row["reason"] == "chosen" and group is not None:
                other = slots.setdefault((group, row["profile_id"]), row["campaign"])
                assert other == row["campaign"], f"{row['profile_id']} got {other} and {row['campaign']} of {group}"

    for cap in plan["caps"]:  # contacts the platforms accepted, in every window ending on a day
        window = window_delta(cap["window"])
        on_channel = [(h["profile_id"], h["contacted_at"], h["campaign"]) for h in history if h["channel"] == cap["channel"]]
        for day in range(DAYS):
            end = START + timedelta(days=day)
            seen: dict[str, set[tuple[str, datetime]]] = {}
            for person, at, campaign in on_channel:
                if end - window < at <= end:
                    seen.setdefault(person, set()).add((campaign, at))
            assert all(len(v) <= cap["max"] for v in seen.values()), (cap, day)

    held_out = {(r["campaign"], r["profile_id"]) for d in days for r in d if r["reason"] == "held_out"}
    chosen = {(r["campaign"], r["profile_id"]) for d in days for r in d if r["reason"] == "chosen"}
    assert history or not chosen, "people were chosen but no contact was recorded: the caps were not tested"
    assert not held_out & chosen, "a holdout changed between runs"


@pytest.mark.parametrize("share", [0.05, 0.1, 0.3, 0.5])
def test_the_holdout_share_is_within_tolerance_of_the_configured_one(tmp_path, share):
    people = 20_000
    with ProfileStore.open({"path": str(tmp_path / "s.duckdb")}) as store:
        held = store.engine.scalar(
            f"SELECT COUNT(*) FROM (SELECT 'p' || CAST(i AS VARCHAR) AS profile_id FROM range({people}) AS t(i)) AS x "
            f"WHERE {held_out_sql('x.profile_id', 'spring_sale', share)}")
    sigma = (people * share * (1 - share)) ** 0.5
    assert abs(held - people * share) < 4 * sigma, (held, people * share)
