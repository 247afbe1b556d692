"""The push runner against real audience destinations and their sandboxes: diffs, resume
after a push that died midway, removals, the platform minimum, mirrors and the push lock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from threadline.activation import sha256_hex
from threadline.contracts import ThreadlineError
from threadline.sandbox import Fault
from threadline.testing import sample_members
from threadline_profiles.activation.push import (
    PushLockedError,
    PushOutcome,
    ledger_member_ids,
    push_lock,
    push_members,
)
from threadline_profiles.config.activations import Activation
from threadline_profiles.store import ProfileStore

tiktok = pytest.importorskip("threadline_tiktok_audiences", reason="threadline-tiktok-audiences is not installed")
direct_mail = pytest.importorskip("threadline_direct_mail", reason="threadline-direct-mail is not installed")
from threadline_tiktok_audiences.destination import MAPPING_PATH  # noqa: E402
from threadline_tiktok_audiences.sandbox import TikTokAudiencesSandbox  # noqa: E402

MEMBERS = 1200  # TikTok needs 1,000 to use an audience


@pytest.fixture
def sandbox():
    with TikTokAudiencesSandbox() as box:
        yield box


@pytest.fixture
def store(tmp_path: Path):
    with ProfileStore.open({"path": str(tmp_path / "p.duckdb"), "report_dir": str(tmp_path / "reports")}) as s:
        yield s


def push(store, sandbox, members: pa.Table, batch_rows: int = 250) -> PushOutcome:
    dest = tiktok.TikTokAudiences()
    config = dest.spec.model_validate({"base_url": sandbox.base_url, "access_token": sandbox.TOKEN,
                                       "advertiser_id": sandbox.ADVERTISER_ID, "audience_id": sandbox.AUDIENCE_ID,
                                       "backoff_base": 0.01})
    activation = Activation(audience="winback", connector="tiktok_audiences", batch_rows=batch_rows)
    outcome = PushOutcome("winback_tiktok", "winback", dest.name, "diff")
    return push_members(store, "winback_tiktok", activation, dest, config, members, outcome)


def email_hashes(members: pa.Table) -> set[str]:
    return {sha256_hex(e) for e in members.column("email").to_pylist()}


def adds_applied(sandbox) -> list[str]:
    """Every email hash the sandbox took in an add request it answered with success."""
    sent = []
    for r in sandbox.requests:
        if r.path.startswith(MAPPING_PATH) and r.status == 200:
            body = json.loads(r.body)
            if body["action"] == "add":
                col = body["id_schema"].index("EMAIL_SHA256")
                sent += [row[col]["id"] for row in body["batch_data"] if row[col]]
    return sent


def test_a_first_push_adds_everyone_and_a_second_sends_only_the_difference(store, sandbox):
    first = sample_members(0, MEMBERS)
    outcome = push(store, sandbox, first)
    assert (outcome.outcome, outcome.adds, outcome.removes, outcome.accepted) == ("pushed", MEMBERS, 0, MEMBERS)
    assert sandbox.audience_hashes(sandbox.AUDIENCE_ID) == email_hashes(first)
    sandbox.clear_requests()
    second = pa.concat_tables([first.slice(100), sample_members(MEMBERS, 30)])  # 100 left, 30 joined
    outcome = push(store, sandbox, second)
    assert (outcome.adds, outcome.removes) == (30, 100)
    assert sandbox.audience_hashes(sandbox.AUDIENCE_ID) == email_hashes(second)
    assert len(adds_applied(sandbox)) == 30, "the second push re-sent members the platform already had"


def test_nothing_is_sent_when_nobody_joined_or_left(store, sandbox):
    members = sample_members(0, MEMBERS)
    push(store, sandbox, members)
    sandbox.clear_requests()
    outcome = push(store, sandbox, members)
    assert (outcome.adds, outcome.removes, outcome.sent) == (0, 0, 0)
    assert not [r for r in sandbox.requests if r.path.startswith(MAPPING_PATH)]


def test_a_changed_identifier_removes_the_old_hash_and_adds_the_new(store, sandbox):
    members = sample_members(0, MEMBERS)
    push(store, sandbox, members)
    rows = members.to_pylist()
    rows[7]["email"] = "new.address.7@example.com"
    moved = pa.Table.from_pylist(rows, schema=members.schema)
    outcome = push(store, sandbox, moved)
    assert (outcome.adds, outcome.removes) == (1, 1)
    assert sandbox.audience_hashes(sandbox.AUDIENCE_ID) == email_hashes(moved)


def test_a_push_killed_midway_resumes_without_adding_anyone_twice(store, sandbox):
    members = sample_members(0, MEMBERS)
    # the platform starts failing for good after 2 batches were taken: the push dies midway
    sandbox.inject(Fault(kind="status", status=500, times=0, after=2, path=MAPPING_PATH))
    with pytest.raises(ThreadlineError):
        push(store, sandbox, members)
    assert len(ledger_member_ids(store, "winback_tiktok")) == 500, "the ledger must hold exactly the confirmed batches"
    sandbox.clear_faults()
    outcome = push(store, sandbox, members)
    assert outcome.adds == MEMBERS - 500
    applied = adds_applied(sandbox)
    assert sorted(applied) == sorted(email_hashes(members)), "every member added exactly once across both pushes"
    assert sandbox.audience_hashes(sandbox.AUDIENCE_ID) == email_hashes(members)


def test_a_removal_that_failed_is_still_pending_next_time(store, sandbox):
    members = sample_members(0, MEMBERS)
    push(store, sandbox, members)
    sandbox.inject(Fault(kind="status", status=500, times=0, path=MAPPING_PATH))
    with pytest.raises(ThreadlineError):
        push(store, sandbox, members.slice(50))
    assert len(ledger_member_ids(store, "winback_tiktok")) == MEMBERS  # nothing confirmed, nothing forgotten
    sandbox.clear_faults()
    outcome = push(store, sandbox, members.slice(50))
    assert outcome.removes == 50
    assert sandbox.audience_hashes(sandbox.AUDIENCE_ID) == email_hashes(members.slice(50))


def test_an_audience_below_the_platform_minimum_is_not_pushed(store, sandbox):
    outcome = push(store, sandbox, sample_members(0, 999))
    assert outcome.outcome == "below_minimum"
    assert "999" in outcome.message and "1,000" in outcome.message
    assert not [r for r in sandbox.requests if r.path.startswith(MAPPING_PATH)]


def test_a_mirror_only_destination_keeps_member_ids_only_in_its_ledger(store, tmp_path):
    dest = direct_mail.DirectMail()
    config = dest.spec.model_validate({"folder": str(tmp_path / "mail")})
    activation = Activation(audience="coupon", connector="direct_mail", mode="mirror")
    members = sample_members(0, 20)
    outcome = push_members(store, "coupon_mail", activation, dest, config, members,
                           PushOutcome("coupon_mail", "coupon", "direct_mail", "mirror"))
    assert outcome.accepted == 20
    assert store.engine.table_columns("tl_ledger_coupon_mail") == ["member_id"]
    files = list((tmp_path / "mail").glob("*.csv"))
    assert len(files) == 1 and "member.0@example.com" not in files[0].read_text()


def test_two_pushes_of_one_activation_never_run_at_once(store, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom threadline_profiles.activation.push import push_lock\nfrom threadline_profiles.store import ProfileStore\n"
         f"s = ProfileStore.open({{'path': {str(tmp_path / 'other.duckdb')!r}, 'report_dir': {str(tmp_path / 'reports')!r}}})\n"
         "with push_lock(s, 'winback_tiktok'):\n    print('locked', flush=True)\n    time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PushLockedError) as caught:
            with push_lock(store, "winback_tiktok"):
                pass
        assert f"pid {holder.pid}" in caught.value.render()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the lock goes with the process that held it
        try:
            with push_lock(store, "winback_tiktok"):
                break
        except PushLockedError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_a_refused_row_is_not_sent_again_until_its_identifiers_change(store):
    mc = pytest.importorskip("threadline_mailchimp_audiences", reason="threadline-mailchimp-audiences is not installed")
    from threadline_mailchimp_audiences.sandbox import MailchimpAudiencesSandbox

    members = sample_members(0, 10)
    contacts = [f"member.{i}@example.com" for i in range(12)]
    with MailchimpAudiencesSandbox(people=20, contacts=contacts) as box:
        box.archive(box.newsletter, "member.4@example.com")  # no longer a contact: Mailchimp refuses to tag it
        dest = mc.MailchimpAudiences()
        config = dest.spec.model_validate({"base_url": f"{box.base_url}/3.0", "api_key": box.API_KEY,
                                           "list_id": box.newsletter, "tag": "loyal"})
        activation = Activation(audience="loyal", connector="mailchimp_audiences")

        def diff_push(rows: pa.Table) -> PushOutcome:
            return push_members(store, "loyal_mc", activation, dest, config, rows,
                                PushOutcome("loyal_mc", "loyal", dest.name, "diff"))

        first = diff_push(members)
        assert (first.accepted, first.rejected) == (9, 1)
        second = diff_push(members)
        assert (second.adds, second.skipped_refused) == (0, 1), "a refused row was sent again unchanged"
        assert "not sent again" in second.summary()
        rows = members.to_pylist()
        rows[4]["email"] = "member.11@example.com"  # the customer gave a new address: worth trying
        third = diff_push(pa.Table.from_pylist(rows, schema=members.schema))
        assert (third.adds, third.accepted, third.skipped_refused) == (1, 1, 0)
