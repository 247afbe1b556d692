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
from threadline_profiles.resolve import incremental
from threadline_profiles.testing import Lander, copy_store, snapshot

FIRST = ["ana", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo"]
SURNAMES = ["okafor", "lindqvist", "moreau", "tanaka", "kowalski", "haddad", "brennan", "novak", "sato", "ferreira",
            "mbeki", "castillo", "olsen", "petrov", "quinlan", "romano", "szabo", "takeda", "ulloa", "varga",
            "whitlock", "xavier", "yilmaz", "zamora", "abbott", "bianchi", "chandra", "dufresne", "eklund", "fontaine"]
MAPPINGS = {
    "crm.contacts": {"identifiers": {"email": "email", "phone": "phone", "cid": "customer_id:crm"},
                     "traits": {"first_name": "first", "last_name": "last", "birth_date": "dob"},
                     "updated_at": "updated", "cleaning": {"phone_region": "US", "priority": 10}},
    # no updated_at: landing an unchanged record again moves its seen_at
    "shop.customers": {"identifiers": {"email": "email", "sid": "customer_id:shop"}, "traits": {"first_name": "first"}},
}
RESOLUTION = {"max_records_per_value": 4, "agreement": None}
# The agreement rule on, with blocks small enough that changes push some over max_block and
# back (their pairs start and stop being compared).
FUZZY = {"max_records_per_value": 4, "agreement": {"min_fields": 3, "max_block": 5}}
# CRM records without shared contacts (see World) and no rule on names: only the agreement rule joins them.
NO_CONTACTS = {**FUZZY, "rules": [{"name": "email", "match": ["email"]}]}
# And blocks that cross refine_over and back (their records' pairs narrow to the refined key, and widen again).
REFINED = {**NO_CONTACTS, "agreement": {"min_fields": 3, "max_block": 12, "refine_over": 3}}
PUBLISHED = ["tl_members", "tl_profiles", "tl_golden", "tl_record_values", "tl_links", "tl_dq", "tl_blocked",
             "tl_dropped_links", "tl_profile_history", "tl_builds", "tl_state_records", "tl_state_keys", "tl_state_drops",
             "tl_norm_cache", "tl_meta", "tl_state_person"]


class World:
    """People and the records that sources hold about them, changed step by step."""

    def __init__(self, seed: int, contacts: bool = True) -> None:
        self.rng = random.Random(seed)
        self.contacts = contacts  # False: CRM records share no email, phone or id (only the agreement rule joins them)
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
        if not self.contacts:
            row.update(email=self.rng.choice([None, f"r{self.clock}@mail.com"]), phone=None, cid=None,
                       last=SURNAMES[p % len(SURNAMES)].title())
            if self.rng.random() < 0.3:  # a typo: one edit in the first name
                row["first"] = row["first"] + "e"
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


@pytest.mark.parametrize("seed,base", [(1, RESOLUTION), (2, RESOLUTION), (3, RESOLUTION), (4, FUZZY), (5, NO_CONTACTS),
                                       (6, REFINED)],
                         ids=["rules-1", "rules-2", "rules-3", "agreement-4", "agreement-no-contacts-5",
                              "agreement-refined-blocks-6"])
def test_incremental_builds_equal_full_and_clean_builds_step_by_step(tmp_path, seed, base):
    """With the agreement rule on, every build after the first reuses the model the first one
    fitted (the copies too: a clean build keeps the store's model), so all three must agree."""
    alone = base is NO_CONTACTS or base is REFINED  # only the agreement rule joins CRM records
    world, people = World(seed, contacts=not alone), 12 if alone else 30
    resolution = dict(base)
    fuzzy = base is FUZZY or alone
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
            if fuzzy and step in (3, 4, 6):  # the overrides moved: the agreement rule resolves them in full
                assert result.why_full == incremental.AGREEMENT_FULL and result.model_version == 1
                assert snapshot(store, with_ids=True) == full, f"step {step}"
                continue
            assert result.mode == "incremental", result.why_full
            assert result.model_version == (1 if fuzzy else None) and not result.refit
            assert result.distinct_values <= 12 * (step + 8)  # only values new to the store are normalized
            smaller += result.resolved < result.records
            assert snapshot(store, with_ids=True) == full, f"step {step}"
            assert snapshot(store, with_ids=False) == clean, f"step {step}"
    assert smaller >= 3  # most steps resolved only part of the store
    if fuzzy:
        with ProfileStore.open(config) as store:
            keys = store.engine.scalar("SELECT COUNT(*) FROM tl_state_keys WHERE rule = 'agreement'")
            assert keys > 0, "the agreement rule's pairs are kept for the next build's scope"


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


def test_a_changed_setting_makes_a_full_build_the_agreement_model_is_reused_and_full_or_a_refit_can_be_asked_for(tmp_path):
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
        first = api.build(store, report=False)  # the agreement rule on: the first build fits its model ...
        assert "changed since the last build" in first.why_full and first.refit and first.model_version == 1
        unchanged = api.build(store, report=False)  # ... which the builds after reuse
        assert (unchanged.mode, unchanged.resolved, unchanged.model_version, unchanged.refit) == ("incremental", 0, 1, "")
    world.move(2, 15)
    land(Lander(fuzzy), world, 1, replace=False)
    with ProfileStore.open(fuzzy) as store:
        moved = api.build(store, report=False)
        assert (moved.mode, moved.model_version) == ("incremental", 1) and 0 < moved.resolved < moved.records
        again = api.build(store, report=False, full=True)  # a full build reuses the model too
        assert (again.why_full, again.model_version, again.refit) == ("asked for", 1, "")
        refit = api.build(store, report=False, refit=True)
        assert (refit.mode, refit.model_version, refit.refit) == ("full", 2, "the agreement model is fitted again: asked for")
        builds = store.engine.rows("SELECT mode, model_version FROM tl_builds ORDER BY started_at")
        assert [(b["mode"], b["model_version"]) for b in builds[-5:]] == [
            ("full", 1), ("incremental", 1), ("incremental", 1), ("full", 1), ("full", 2)]
    with ProfileStore.open({**fuzzy, "resolution": {**fuzzy["resolution"], "never_merge": [["crm.contacts:1", "crm.contacts:2"]]}}) as store:
        assert api.build(store, report=False).why_full == incremental.AGREEMENT_FULL
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

    fuzzy = config_for(tmp_path / "fuzzy", FUZZY)
    (tmp_path / "fuzzy").mkdir()
    land(Lander(fuzzy), world, 0, replace=False)
    with ProfileStore.open(fuzzy) as store:
        store.save_settings()
    config = fuzzy
    assert "full build (no earlier build to start from), agreement model v1 fitted (no agreement model is stored yet)" in cli()
    assert "incremental build (0 records resolved), agreement model v1 reused" in cli()
    assert "full build (the agreement model is fitted again: asked for), agreement model v2 fitted" in cli("--refit")


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
