"""Store → audience → consent → push → forget → push, through the real runner and Meta's sandbox:
a member without advertising consent is never sent, and a forgotten person is removed."""

from __future__ import annotations

import pytest
from threadline.activation import sha256_hex
from threadline_profiles.activation.push import push_all
from threadline_profiles.api import forget
from threadline_profiles.testing import Lander

meta = pytest.importorskip("threadline_meta_audiences", reason="threadline-meta-audiences is not installed")
from threadline_meta_audiences.sandbox import MetaSandbox  # noqa: E402

PEOPLE = 150
DENIED = {i for i in range(PEOPLE) if i % 7 == 0}  # 22 people refused ad use


def people() -> list[dict]:
    return [{"id": i, "email": f"Person.{i}@Example.com", "first_name": f"Ann{i}", "last_name": "Lee",
             "ads": "denied" if i in DENIED else "granted", "ads_at": "2026-10-01T00:00:00Z"} for i in range(PEOPLE)]


@pytest.fixture
def sandbox():
    with MetaSandbox() as box:
        yield box


def lander(store_config: dict, sandbox) -> Lander:
    return Lander({**store_config, "report_dir": store_config["path"] + "_reports",
        "mappings": {"crm.contacts": {
            "identifiers": {"email": "email"}, "traits": {"first_name": "first_name", "last_name": "last_name"},
            "consent": {"channel": "advertising", "column": "ads", "timestamp": "ads_at"}}},
        "audiences": {"everyone": {"where": "email is not null"}},
        "activations": {"everyone_to_meta": {"audience": "everyone", "connector": "meta_audiences", "config": {
            "base_url": sandbox.base_url, "access_token": sandbox.ACCESS_TOKEN, "audience_id": sandbox.AUDIENCE_ID}}},
    })


def hashes(ids) -> set[str]:
    return {sha256_hex(f"person.{i}@example.com") for i in ids}


def test_only_consenting_members_reach_the_platform_and_a_forgotten_one_is_removed(store_config, sandbox):
    land = lander(store_config, sandbox)
    land.land("crm", "contacts", people())
    land.build()
    with land.store() as store:
        store.config = land.config
        (first,) = push_all(store)
        assert first.outcome == "pushed", first.message
        assert (first.members, first.excluded_no_consent) == (PEOPLE - len(DENIED), len(DENIED))
        granted = set(range(PEOPLE)) - DENIED
        assert sandbox.audience_hashes(sandbox.AUDIENCE_ID) == hashes(granted)
        assert not any("@" in r.body for r in sandbox.requests), "a plain email left for the ad platform"

        result = forget(store, email="person.1@example.com")
        assert result.pending_removals == {"everyone_to_meta": 1}
        (second,) = push_all(store)
        assert (second.adds, second.removes) == (0, 1)
        assert sandbox.audience_hashes(sandbox.AUDIENCE_ID) == hashes(granted - {1})
