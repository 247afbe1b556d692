"""Profile ids stay stable across builds: growing keeps the id, a merge keeps the older id,
a split gets new ids, and each change is in the history."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from threadline_profiles import api
from threadline_profiles.testing import Lander, profile_ids, profiles_of

MAPPING = {"crm.contacts": {"identifiers": {"email": "email", "phone": "phone"}, "cleaning": {"phone_region": "US"}}}


def lander_for(tmp_path) -> Lander:
    return Lander({"path": str(tmp_path / "p.duckdb"), "resolve_on_finish": False, "mappings": MAPPING})


def build(lander: Lander, rows: list[dict], run_id: str) -> dict[str, str]:
    lander.land("crm", "contacts", rows, run_id=run_id, schema=None)
    with lander.store() as store:
        api.build(store, report=False)
        return profile_ids(store)


def history(lander: Lander) -> list[tuple[str, str, str | None]]:
    with lander.store() as store:
        rows = store.engine.rows("SELECT profile_id, event, related_profile_id FROM tl_profile_history WHERE event <> 'created'")
    return sorted((r["profile_id"], r["event"], r["related_profile_id"]) for r in rows)


def row(i: int, email: str | None = None, phone: str | None = None) -> dict:
    return {"id": i, "email": email, "phone": phone}


def test_building_the_same_input_twice_keeps_every_id(tmp_path):
    lander = lander_for(tmp_path)
    first = build(lander, [row(1, "a@mail.com"), row(2, "a@mail.com"), row(3, "b@mail.com")], "r1")
    with lander.store() as store:
        api.build(store, report=False)
        assert profile_ids(store) == first


def test_a_growing_profile_keeps_its_id(tmp_path):
    lander = lander_for(tmp_path)
    first = build(lander, [row(1, "a@mail.com")], "r1")
    second = build(lander, [row(2, "a@mail.com")], "r2")
    assert second["crm.contacts:2"] == second["crm.contacts:1"] == first["crm.contacts:1"]


def test_a_merge_keeps_the_older_id_and_records_the_other(tmp_path):
    lander = lander_for(tmp_path)
    old = build(lander, [row(1, "a@mail.com")], "r1")["crm.contacts:1"]
    newer = build(lander, [row(2, "b@mail.com", "4155552671")], "r2")["crm.contacts:2"]
    merged = build(lander, [row(3, "a@mail.com", "4155552671")], "r3")
    assert set(merged.values()) == {old}
    assert history(lander) == [(newer, "merged_into", old)]


def test_a_split_gets_new_ids_with_a_history_of_what_became_what(tmp_path):
    lander = lander_for(tmp_path)
    before = build(lander, [row(1, "a@mail.com"), row(2, "a@mail.com", "4155552671"), row(3, None, "4155552671")], "r1")
    old = before["crm.contacts:1"]
    after = build(lander, [row(2, "b@mail.com", None)], "r2")  # the bridge record changed
    assert len({after["crm.contacts:1"], after["crm.contacts:2"], after["crm.contacts:3"]}) == 3
    assert old not in after.values()
    assert history(lander) == sorted((old, "split_into", pid) for pid in set(after.values()))


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from threadline_profiles import ProfileStore, api

    def stage(name):
        if name == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)

    with ProfileStore.open({"path": sys.argv[1], "mappings": %r}) as store:
        api.build(store, report=False, on_stage=stage)
    """
) % MAPPING


def test_a_build_killed_mid_resolution_is_completed_by_the_next_and_equals_a_clean_one(tmp_path):
    rows = [row(i, f"p{i // 3}@mail.com", f"+1415{2000000 + i // 2}") for i in range(60)]
    clean = lander_for(tmp_path / "clean")
    clean_ids = build(clean, rows, "r1")

    killed = lander_for(tmp_path / "killed")
    killed.land("crm", "contacts", rows, run_id="r1")
    for stage in ("resolve", "golden"):
        proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "killed" / "p.duckdb"), stage], timeout=120)
        assert proc.returncode == -9
    with killed.store() as store:
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_members") == 0  # nothing half-published
        api.build(store, report=False)
        assert profile_ids(store) == clean_ids
        assert len(profiles_of(store)) == len(set(clean_ids.values()))
