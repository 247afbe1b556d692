"""What is special about the x source: 15-minute rate-limit windows that outlast a run, the
profile hints a handle carries, handles X no longer knows, and bad input."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from threadline.contracts import Batch, Checkpoint, ConfigError, ReadRequest, SyncMode
from threadline.engine.runner import run_job
from threadline.job import job_from_dict
from threadline.engine.runner import RESUME_KEY as ENGINE_RESUME_KEY
from threadline.state import StateStore
from threadline.testing.harness import installed_destination, registry_of
from threadline_x import XSource
from threadline_x.sandbox import BRANDS, XSandbox, expected_user
from threadline.contracts import RateLimitStop
from threadline.http.pause import RESUME_AFTER_KEY
from threadline_x.source import RESUME_KEY, XConfig

SHOP = next(iter(BRANDS))


@pytest.fixture
def x() -> Any:
    with XSandbox(users=300, followers_limit=1000) as sandbox:
        yield sandbox


def config(sandbox: XSandbox, **changes: Any) -> dict[str, Any]:
    return {"base_url": f"{sandbox.base_url}/2", "bearer_token": sandbox.BEARER_TOKEN, "followers_of": [SHOP],
            "page_size": 40, "backoff_base": 0.01, **changes}


def sync(sandbox: XSandbox, workdir: Path, raw: dict[str, Any], streams: tuple[str, ...] = ("followers",)) -> Any:
    duckdb = installed_destination("duckdb")
    job = job_from_dict({
        "name": "x", "state": str(workdir / "state"), "concurrency": 1, "max_rejected_share": 0.05,
        "sources": {"x": {"connector": "x", "config": raw, "streams": {s: {} for s in streams}}},
        "destinations": {"db": {"connector": "duckdb", "config": {"path": str(workdir / "x.duckdb")}}},
    }, base_dir=workdir)
    return run_job(job, registry=registry_of([XSource], [duckdb]))


def read(raw: dict[str, Any], stream: str, state: dict[str, Any] | None = None) -> list[Any]:
    source = XSource()
    cfg = XConfig.model_validate(raw)
    return list(source.read(cfg, ReadRequest(source.discover(cfg).get(stream), SyncMode.FULL_REFRESH, state=state or {})))


def rows(messages: list[Any]) -> list[dict[str, Any]]:
    return [r for m in messages if isinstance(m, Batch) for r in m.records.to_pylist()]


def test_a_rate_limit_window_outlasting_the_budget_stops_cleanly_with_state_saved_and_a_resume_time(x, tmp_path):
    x.limits["followers"] = 3  # three pages of 40 in this window, then 429 until it resets in 15 minutes
    report = sync(x, tmp_path, config(x, max_rate_limit_wait=2))

    stream = report.stream("x", "followers")
    assert stream.outcome == "paused" and "Stopped cleanly" in (stream.error or "")
    assert "run the sync again after" in stream.error
    assert stream.rows_written == 120  # the three pages read were committed, not rolled back
    store = StateStore(tmp_path / "state")
    state = store.get("x", "x", "followers")[ENGINE_RESUME_KEY]  # an unfinished full refresh
    store.close()
    resume_after = datetime.fromisoformat(state[RESUME_AFTER_KEY])
    window_reset = x.window_reset("followers")
    assert abs(resume_after.timestamp() - window_reset) < 5, "the resume time is when X's window resets"
    assert state[RESUME_KEY]["account_id"] == SHOP and state[RESUME_KEY]["pagination_token"]
    assert resume_after.strftime("%H:%M:%S") in stream.error


def test_a_read_given_the_saved_state_resumes_at_the_saved_page(x):
    x.limits["followers"] = 3
    raw = config(x, max_rate_limit_wait=2)
    messages: list[Any] = []
    with pytest.raises(RateLimitStop) as stopped:
        for message in XSource().read(XConfig.model_validate(raw), ReadRequest(
                XSource().discover(XConfig.model_validate(raw)).get("followers"), SyncMode.FULL_REFRESH)):
            messages.append(message)
    assert stopped.value.resume_after is not None
    saved = [m for m in messages if isinstance(m, Checkpoint)][-1].state

    x.limits["followers"] = 1000
    x.exhaust_window("followers", resets_in=-1)  # the window has reset
    x.clear_requests()
    rest = rows(read(raw, "followers", saved))

    first = x.requests_to(f"/2/users/{SHOP}/followers")[0]
    assert first.query["pagination_token"] == [saved[RESUME_KEY]["pagination_token"]]
    got = {r["id"] for r in rows(messages)} | {r["id"] for r in rest}
    assert got == {u["id"] for u in x.followers(SHOP)} and len(rows(messages)) + len(rest) == len(got)


def test_a_pagination_token_x_no_longer_accepts_restarts_the_account_from_its_first_page(x):
    stale = {RESUME_KEY: {"account_id": SHOP, "pagination_token": "EXPIRED0000TOKEN", "accounts_done": []}}
    got = rows(read(config(x), "followers", stale))
    assert sorted(r["id"] for r in got) == sorted(u["id"] for u in x.followers(SHOP))


def test_every_profile_hint_is_kept_for_the_profile_store(x):
    user = next(u for u in x.followers(SHOP) if u.get("entities", {}).get("url") and u.get("location"))
    got = next(r for r in rows(read(config(x), "followers")) if r["id"] == user["id"])
    assert got["followed_id"] == SHOP
    assert got["profile_url"] == user["entities"]["url"]["urls"][0]["expanded_url"]  # not the t.co link
    assert got["url"].startswith("https://t.co/")
    assert (got["name"], got["username"], got["location"]) == (user["name"], user["username"], user["location"])
    assert got["followers_count"] == user["public_metrics"]["followers_count"]


def test_handles_x_does_not_know_are_skipped_with_a_warning_not_an_error(x, caplog):
    known = x.usernames(3)
    got = rows(read(config(x, usernames=["@" + known[0], "nobody_at_all_1", known[1], known[1].upper(), known[2]]), "users"))
    assert sorted(r["username"] for r in got) == sorted(known)
    assert "@nobody_at_all_1" in caplog.text


def test_a_revoked_bearer_token_mid_sync_is_a_config_error_naming_bearer_token(x):
    raw = config(x)
    source = XSource()
    cfg = XConfig.model_validate(raw)
    messages = source.read(cfg, ReadRequest(source.discover(cfg).get("followers"), SyncMode.FULL_REFRESH))
    next(messages)
    x.revoke_credentials()
    with pytest.raises(ConfigError) as caught:
        list(messages)
    assert caught.value.field == "bearer_token" and "401" in caught.value.message


def test_a_follower_count_of_an_unexpected_type_is_quarantined_by_the_engine_not_a_crash(x, tmp_path):
    odd = x.followers(SHOP)[5]["id"]
    x.set_user_field(odd, "public_metrics.followers_count", "1.2K")
    report = sync(x, tmp_path, config(x))

    stream = report.stream("x", "followers")
    assert report.ok, report.error
    assert stream.rows_rejected == 1 and stream.rows_written == len(x.followers(SHOP)) - 1
    quarantined = "".join(p.read_text() for p in Path(report.quarantine).rglob("*") if p.is_file())
    assert odd in quarantined and "followers_count" in quarantined


def test_a_second_full_sync_upserts_renamed_handles_by_id_and_adds_new_followers(x, tmp_path):
    import duckdb

    assert sync(x, tmp_path, config(x)).ok
    renamed = x.followers(SHOP)[3]["id"]
    x.rename(renamed, "kneal1985_new")
    new = x.follow(SHOP, 2)
    assert sync(x, tmp_path, config(x)).ok

    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    try:
        handles = dict(con.sql("select id, username from x__followers").fetchall())
    finally:
        con.close()
    assert handles[renamed] == "kneal1985_new" and len(handles) == len(x.followers(SHOP))
    assert set(new) <= set(handles)


def test_check_without_anything_to_read_names_followers_of(x):
    with pytest.raises(ConfigError) as caught:
        XSource().check(XConfig.model_validate(config(x, followers_of=[], usernames=[])))
    assert caught.value.field == "followers_of"


def test_check_with_a_brand_id_that_does_not_exist_names_followers_of(x):
    with pytest.raises(ConfigError) as caught:
        XSource().check(XConfig.model_validate(config(x, followers_of=["42"])))
    assert caught.value.field == "followers_of"


def test_a_handle_in_followers_of_is_refused_with_how_to_find_the_id():
    with pytest.raises(ValueError, match="numeric user ids"):
        XConfig.model_validate({"bearer_token": "t", "followers_of": ["@threadline_shop"]})


def test_the_full_read_matches_the_sandbox_for_both_brands(x):
    got = rows(read(config(x, followers_of=list(BRANDS)), "followers"))
    want = [expected_user(u, followed_id=b) for b in BRANDS for u in x.followers(b)]
    assert len(got) == len(want) and {(r["followed_id"], r["id"]) for r in got} == {(r["followed_id"], r["id"]) for r in want}


# ---------------------------------------------------------------------- access tiers


def test_the_sandbox_refuses_endpoints_outside_the_apps_tier_as_x_does(x):
    import requests

    followers = f"{x.base_url}/2/users/{SHOP}/followers"
    basic = {"Authorization": f"Bearer {x.BASIC_BEARER_TOKEN}"}
    refused = requests.get(followers, headers=basic)
    assert refused.status_code == 403
    assert refused.json()["reason"] == "client-not-enrolled" and refused.json()["title"] == "Client Forbidden"
    assert "x-rate-limit-remaining" not in refused.headers  # refused before any window is spent
    assert requests.get(f"{x.base_url}/2/users/by", params={"usernames": x.usernames(1)[0]}, headers=basic).ok
    free = {"Authorization": f"Bearer {x.FREE_BEARER_TOKEN}"}
    assert requests.get(f"{x.base_url}/2/users/by", params={"usernames": "a"}, headers=free).status_code == 403
    x.set_tier("pro")  # the main app moves down: follows lookup is Enterprise only
    assert requests.get(followers, headers={"Authorization": f"Bearer {x.BEARER_TOKEN}"}).status_code == 403


def test_a_basic_tier_token_reading_followers_is_a_config_error_naming_bearer_token_and_the_tier(x, tmp_path):
    with pytest.raises(ConfigError) as caught:
        read(config(x, bearer_token=x.BASIC_BEARER_TOKEN), "followers")
    assert caught.value.field == "bearer_token"
    assert "client-not-enrolled" in caught.value.message and "Enterprise" in caught.value.message
    assert "tier" in caught.value.hint
    with pytest.raises(ConfigError) as checked:
        XSource().check(XConfig.model_validate(config(x, bearer_token=x.BASIC_BEARER_TOKEN)))
    assert checked.value.field == "bearer_token"
    report = sync(x, tmp_path, config(x, bearer_token=x.BASIC_BEARER_TOKEN))  # a failed sync, not a crash or an empty one
    assert not report.ok and "bearer_token" in (report.error or "") + (report.stream("x", "followers").error or "")
    assert report.stream("x", "followers").rows_written == 0


def test_a_basic_tier_token_still_looks_users_up_and_a_free_one_is_refused_naming_the_tier(x):
    names = x.usernames(3)
    found = rows(read(config(x, bearer_token=x.BASIC_BEARER_TOKEN, followers_of=[], usernames=names), "users"))
    assert sorted(r["username"] for r in found) == sorted(names)
    with pytest.raises(ConfigError) as caught:
        read(config(x, bearer_token=x.FREE_BEARER_TOKEN, followers_of=[], usernames=names), "users")
    assert caught.value.field == "bearer_token" and "Basic" in caught.value.message


def test_the_sandbox_takes_every_user_field_x_lists_and_refuses_others(x):
    import requests

    headers = {"Authorization": f"Bearer {x.BEARER_TOKEN}"}
    name = x.usernames(1)[0]
    newer = requests.get(f"{x.base_url}/2/users/by", headers=headers,
                         params={"usernames": name, "user.fields": "most_recent_tweet_id,verified_followers_count,location"})
    assert newer.status_code == 200  # valid at X: fields it has no value for are left out, not refused
    assert set(newer.json()["data"][0]) <= {"id", "name", "username", "location"}
    bad = requests.get(f"{x.base_url}/2/users/by", headers=headers, params={"usernames": name, "user.fields": "shoe_size"})
    assert bad.status_code == 400 and "shoe_size" in bad.text
