"""Incremental builds resolve only what changed and give what a full build gives.

Random data lands in steps: new records, records changed so that they move to another
person, deletions, records landed again unchanged, and override pairs added and removed
later. Before each build the store file is copied twice; the original builds
incrementally, one copy runs a full build from the same previous state (everything must
match, profile ids and history included), and the other copy loses every published and
state table first and runs a clean build (same partition into profiles, same golden
records, same links and summaries).
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from threadline.contracts import WriteDisposition
from threadline_profiles import ProfileStore, api
from threadline_profiles.testing import Lander, copy_store, snapshot

FIRST = ["ana", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo"]
MAPPINGS = {
    "crm.contacts": {"identifiers": {"email": "email", "phone": "phone", "cid": "customer_id:crm"},
                     "traits": {"first_name": "first", "last_name": "last", "birth_date": "dob"},
                     "updated_at": "updated", "cleaning": {"phone_region": "US", "priority": 10}},
    # no updated_at: landing an unchanged record again moves its seen_at
    "shop.customers": {"identifiers": {"email": "email", "sid": "customer_id:shop"}, "traits": {"first_name": "first"}},
}
RESOLUTION = {"max_records_per_value": 4, "agreement": None}
PUBLISHED = ["tl_members", "tl_profiles", "tl_golden", "tl_record_values", "tl_links", "tl_dq", "tl_blocked",
             "tl_dropped_links", "tl_profile_history", "tl_builds", "tl_state_records", "tl_state_keys", "tl_state_drops",
             "tl_norm_cache", "tl_meta"]


class World:
    """People and the records that sources hold about them, changed step by step."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.crm: dict[int, dict[str, Any]] = {}
        self.shop: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.clock = 0

    def person(self, p: int) -> dict[str, Any]:
        rng = self.rng
        email = rng.choice([f"p{p}@mail.com", f"p{p}@mail.com", f"p{max(p - 1, 0)}@mail.com", "test@test.com", None])
        return {"email": email, "first": FIRST[p % len(FIRST)].title(), "last": f"L{p % 7}",
                "dob": f"19{60 + p % 30}-0{1 + p % 9}-1{p % 10}"}

    def crm_row(self, p: int) -> dict[str, Any]:
        self.clock += 1
        row = self.person(p)
        row.update(phone=self.rng.choice([f"+1415555{p:04d}", f"(415) 555-{p:04d}", "12", None]),
                   cid=self.rng.choice([f"C{p}", f"C{p}", f"C{p}x", None]), updated=f"2024-01-01 10:{self.clock // 60:02d}:{self.clock % 60:02d}")
        return row

    def shop_row(self, p: int) -> dict[str, Any]:
        row = self.person(p)
        return {"email": row["email"], "first": row["first"], "sid": self.rng.choice([f"S{p}", f"S{p // 2}", None])}

    def add(self, n: int, people: int) -> None:
        for _ in range(n):
            table, make = self.rng.choice([(self.crm, self.crm_row), (self.shop, self.shop_row)])
            table[self.next_id] = make(self.rng.randrange(people))
            self.next_id += 1

    def move(self, n: int, people: int) -> None:
        """Records whose values now say they are someone else."""
        for _ in range(n):
            table, make = self.rng.choice([(self.crm, self.crm_row), (self.shop, self.shop_row)])
            if table:
                table[self.rng.choice(sorted(table))] = make(self.rng.randrange(people))

    def delete(self, n: int) -> None:
        for _ in range(n):
            table = self.rng.choice([self.crm, self.shop])
            if len(table) > 1:
                del table[self.rng.choice(sorted(table))]

    def rows(self, table: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": i, **row} for i, row in sorted(table.items())]


def land(lander: Lander, world: World, step: int, replace: bool) -> None:
    how = WriteDisposition.REPLACE if replace else WriteDisposition.UPSERT
    for key, table in (("crm.contacts", world.crm), ("shop.customers", world.shop)):
        rows = world.rows(table)
        if rows:
            source, stream = key.split(".")
            lander.land(source, stream, rows, run_id=f"r{step}", disposition=how)


def build_copy(config: dict[str, Any], path: Path, clean: bool) -> dict[str, Any]:
    with ProfileStore.open({**config, "path": str(path)}) as store:
        if clean:
            store.engine.run([f"DROP TABLE IF EXISTS {t}" for t in PUBLISHED])
            store.ensure_catalog()
        result = api.build(store, report=False, full=True)
        assert result.mode == "full"
        return snapshot(store, with_ids=not clean)


def config_for(tmp_path: Path, resolution: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(tmp_path / "p.duckdb"), "resolve_on_finish": False, "mappings": MAPPINGS,
            "resolution": resolution, "incremental_up_to": 1.0}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_builds_equal_full_and_clean_builds_step_by_step(tmp_path, seed):
    world, people = World(seed), 30
    resolution = dict(RESOLUTION)
    config = config_for(tmp_path, resolution)
    path = tmp_path / "p.duckdb"
    world.add(60, people)
    land(Lander(config), world, 0, replace=False)
    with ProfileStore.open(config) as store:
        assert api.build(store, report=False).mode == "full"  # nothing to start from
    smaller = 0
    for step in range(1, 7):
        world.add(world.rng.randrange(1, 6), people)
        world.move(world.rng.randrange(1, 4), people)
        replace = step % 2 == 0
        if replace:
            world.delete(world.rng.randrange(1, 4))
        if step == 3:  # an override added later: two records that share a profile are kept apart
            with ProfileStore.open(config) as store:
                pair = store.engine.rows("SELECT MIN(record_key) AS a, MAX(record_key) AS b FROM tl_members "
                                         "GROUP BY profile_id HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 1")
            if pair:
                resolution["never_merge"] = [[pair[0]["a"], pair[0]["b"]]]
        if step == 4:  # and two apart are joined
            resolution["always_merge"] = [["crm.contacts:1", f"shop.customers:{max(world.shop or [1])}"]]
        if step == 6:
            resolution["always_merge"] = []
        config = config_for(tmp_path, resolution)
        lander = Lander(config)
        land(lander, world, step, replace)
        full = build_copy(config, copy_store(path, tmp_path / f"full{step}.duckdb"), clean=False)
        clean = build_copy(config, copy_store(path, tmp_path / f"clean{step}.duckdb"), clean=True)
        with ProfileStore.open(config) as store:
            result = api.build(store, report=False)
            assert result.mode == "incremental", result.why_full
            assert result.distinct_values <= 12 * (step + 8)  # only values new to the store are normalized
            smaller += result.resolved < result.records
            assert snapshot(store, with_ids=True) == full, f"step {step}"
            assert snapshot(store, with_ids=False) == clean, f"step {step}"
    assert smaller >= 3  # most steps resolved only part of the store


def test_a_build_with_nothing_new_resolves_nothing_and_changes_nothing(tmp_path):
    world = World(5)
    world.add(40, 20)
    config = config_for(tmp_path, RESOLUTION)
    land(Lander(config), world, 0, replace=False)
    with ProfileStore.open(config) as store:
        api.build(store, report=False)
        before = snapshot(store, with_ids=True)
        again = api.build(store, report=False)
        assert (again.mode, again.resolved, again.distinct_values) == ("incremental", 0, 0)
        assert snapshot(store, with_ids=True) == before


def test_a_changed_setting_or_the_agreement_rule_makes_a_full_build_and_full_can_be_asked_for(tmp_path):
    world = World(6)
    world.add(30, 15)
    config = config_for(tmp_path, RESOLUTION)
    land(Lander(config), world, 0, replace=False)
    with ProfileStore.open(config) as store:
        assert api.build(store, report=False).why_full == "no earlier build to start from"
        assert api.build(store, report=False, full=True).why_full == "asked for"
    with ProfileStore.open({**config, "resolution": {**RESOLUTION, "max_records_per_value": 9}}) as store:
        assert "changed since the last build" in api.build(store, report=False).why_full
    with ProfileStore.open({**config, "resolution": {**RESOLUTION, "max_records_per_value": 9}, "full_rebuild": True}) as store:
        assert api.build(store, report=False).why_full == "asked for"
    fuzzy = {**config, "resolution": {"max_records_per_value": 9, "agreement": {"min_fields": 3}}}
    with ProfileStore.open(fuzzy) as store:
        api.build(store, report=False)  # the agreement rule on: its weights come from every record ...
        unchanged = api.build(store, report=False)  # ... so only a store where nothing changed is incremental
        assert (unchanged.mode, unchanged.resolved) == ("incremental", 0)
    world.move(2, 15)
    land(Lander(fuzzy), world, 1, replace=False)
    with ProfileStore.open(fuzzy) as store:
        assert api.build(store, report=False).why_full == "the agreement rule estimates its weights from all records"
    with ProfileStore.open({**config, "incremental_up_to": 0.01}) as store:
        api.build(store, report=False)
        world.move(3, 15)
        land(Lander(config), world, 1, replace=False)
        assert "records are linked to what changed" in api.build(store, report=False).why_full


def test_the_cli_builds_incrementally_and_full_on_request(tmp_path):
    world = World(8)
    world.add(20, 10)
    config = config_for(tmp_path, RESOLUTION)
    land(Lander(config), world, 0, replace=False)
    with ProfileStore.open(config) as store:
        store.save_settings()

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "threadline", "profiles", "build", "--path", config["path"], *args],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "full build (no earlier build to start from)" in cli()
    assert "incremental build (0 records resolved)" in cli()
    assert "full build (asked for)" in cli("--full")


KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from threadline_profiles import ProfileStore, api

    def stage(name):
        if name == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)

    with ProfileStore.open(json.loads(sys.argv[1])) as store:
        api.build(store, report=False, on_stage=stage)
    """
)


def test_an_incremental_build_killed_at_any_stage_leaves_the_last_build_and_the_next_equals_a_clean_one(tmp_path):
    import json

    world = World(9)
    world.add(50, 20)
    config = config_for(tmp_path, RESOLUTION)
    land(Lander(config), world, 0, replace=False)
    with ProfileStore.open(config) as store:
        api.build(store, report=False)
        published = snapshot(store, with_ids=True)
    world.add(5, 20)
    world.move(4, 20)
    land(Lander(config), world, 1, replace=False)
    expected = build_copy(config, copy_store(tmp_path / "p.duckdb", tmp_path / "expected.duckdb"), clean=False)
    for stage in ("scope", "normalize", "resolve", "golden", "prepare"):
        proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(config), stage], timeout=120)
        assert proc.returncode == -9
        with ProfileStore.open(config) as store:
            assert snapshot(store, with_ids=True) == published  # nothing half-published
    with ProfileStore.open(config) as store:
        assert api.build(store, report=False).mode == "incremental"
        assert snapshot(store, with_ids=True) == expected


def test_an_erased_person_landing_again_is_dropped_by_an_incremental_build(tmp_path):
    from threadline_profiles.api import forget

    world = World(10)
    world.add(30, 12)
    config = config_for(tmp_path, RESOLUTION)
    land(Lander(config), world, 0, replace=False)
    with ProfileStore.open(config) as store:
        api.build(store, report=False)
        forget(store, email="p3@mail.com")
        assert api.find(store, email="p3@mail.com") == []
    world.crm[999] = {**world.crm_row(3), "email": "p3@mail.com"}  # a later sync brings them back
    land(Lander(config), world, 1, replace=False)
    expected = build_copy(config, copy_store(tmp_path / "p.duckdb", tmp_path / "full.duckdb"), clean=False)
    with ProfileStore.open(config) as store:
        result = api.build(store, report=False)
        assert result.mode == "incremental"
        assert api.find(store, email="p3@mail.com") == []
        assert snapshot(store, with_ids=True) == expected
