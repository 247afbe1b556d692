"""The generic push runner (threadline.activation.runner) works with any store that keeps a
ledger: here one kept in a Python dict, against a platform that records what it was sent."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from threadline.activation import prepare_members
from threadline.activation.runner import PushTally, push_audience, without_rejected
from threadline.contracts import (
    MEMBER_SCHEMA, AudienceDestination, AudienceTarget, AudienceWriter, PushMode, PushReport, PushResult,
    RowRejection, Spec,
)


class Platform:
    """What the platform holds, by member id, and every request it got."""

    def __init__(self, refuse: set[str] = frozenset()):
        self.held: dict[str, str] = {}
        self.requests: list[tuple[str, int]] = []
        self.refuse = refuse


class ToySpec(Spec):
    pass


class ToyAudiences(AudienceDestination[ToySpec]):
    name, spec, channel, max_batch_rows, min_members = "toy", ToySpec, "advertising", 3, 2
    platform = Platform()

    def check(self, config):
        pass

    def prepare(self, config, members):
        return prepare_members(members, "SELECT member_id, hashed(email_norm(email)) AS email_sha256 FROM members")

    def open_audience(self, config, target):
        return ToyWriter(self.platform)


class ToyWriter(AudienceWriter):
    def __init__(self, platform):
        self.platform = platform

    def add(self, rows):
        self.platform.requests.append(("add", rows.num_rows))
        refused = [m for m in rows.column("member_id").to_pylist() if m in self.platform.refuse]
        for m, h in zip(rows.column("member_id").to_pylist(), rows.column("email_sha256").to_pylist()):
            if m not in refused:
                self.platform.held[m] = h
        return PushResult(rows.num_rows - len(refused), [RowRejection(m, "INVALID") for m in refused])

    def remove(self, rows):
        self.platform.requests.append(("remove", rows.num_rows))
        for m in rows.column("member_id").to_pylist():
            self.platform.held.pop(m, None)
        return PushResult(rows.num_rows)

    def finish(self):
        return PushReport()


class DictLedger:
    """A ledger kept in memory: member id -> prepared row."""

    def __init__(self):
        self.rows: dict[str, dict] = {}
        self.refused: dict[str, dict] = {}
        self.skipped_refused = 0

    def diff(self, current):
        now = {r["member_id"]: r for r in current.to_pylist()}
        fresh = [r for m, r in now.items() if self.rows.get(m) != r]
        self.skipped_refused = sum(1 for r in fresh if self.refused.get(r["member_id"]) == r)
        adds = [r for r in fresh if self.refused.get(r["member_id"]) != r]
        removes = [r for m, r in self.rows.items() if now.get(m) != r]
        return (pa.Table.from_pylist(adds, schema=current.schema), pa.Table.from_pylist(removes, schema=current.schema))

    def apply(self, op, chunk, result):
        kept = without_rejected(chunk, result)
        for r in kept.to_pylist():
            if op == "remove":
                self.rows.pop(r["member_id"], None)
            else:
                self.rows[r["member_id"]] = r
        if op == "add":
            refused = chunk.filter(pc.invert(pc.is_in(chunk.column("member_id"), kept.column("member_id"))))
            self.refused.update({r["member_id"]: r for r in refused.to_pylist()})

    def replace(self, rows):
        self.rows = {r["member_id"]: r for r in rows.to_pylist()}


def _members(ids) -> pa.Table:
    rows = [{c: None for c in MEMBER_SCHEMA.names} | {"member_id": f"m{i}", "email": f"p{i}@example.com"} for i in ids]
    return pa.Table.from_pylist(rows, schema=MEMBER_SCHEMA)


@pytest.fixture
def toy():
    ToyAudiences.platform = Platform(refuse={"m9"})
    return ToyAudiences(), DictLedger()


def push(toy, table, mode=PushMode.DIFF):
    dest, ledger = toy
    target = AudienceTarget("toy_push", "everyone", mode, "run-1", 0, 0)
    return push_audience(dest, ToySpec(), table, target, ledger_for=lambda schema: ledger)


def test_a_diff_push_sends_who_joined_and_who_left_in_batches_within_the_platform_limit(toy):
    push(toy, _members(range(5)))
    dest, ledger = toy
    tally = push(toy, _members(range(2, 9)))
    assert (tally.adds, tally.removes) == (4, 2)
    assert set(dest.platform.held) == {f"m{i}" for i in range(2, 9)}
    assert all(n <= ToyAudiences.max_batch_rows for _, n in dest.platform.requests)
    assert set(ledger.rows) == set(dest.platform.held)


def test_a_refused_member_is_remembered_and_not_sent_again_until_it_changes(toy):
    first = push(toy, _members([1, 2, 9]))
    assert first.rejection_reasons == {"INVALID": 1}
    again = push(toy, _members([1, 2, 9]))
    assert (again.adds, again.skipped_refused) == (0, 1)


def test_below_the_platform_minimum_nothing_is_sent(toy):
    tally = push(toy, _members([1]))
    assert tally.outcome == "below_minimum" and "needs at least 2" in tally.message
    assert toy[0].platform.requests == []


def test_a_mirror_replaces_the_ledger_with_what_the_platform_accepted(toy):
    push(toy, _members(range(4)))
    tally = push(toy, _members([3, 4, 9]), mode=PushMode.MIRROR)
    assert isinstance(tally, PushTally) and tally.accepted == 2
    assert set(toy[1].rows) == {"m3", "m4"}
