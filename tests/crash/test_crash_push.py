"""The crash suite for a push (issue 13): a profile store's push of 1,200 members to the TikTok
sandbox, in batches of 50, SIGKILLed at 20 seeded points (after some batches were answered,
plus a delay that lands inside requests), then rerun: the platform holds exactly the members,
the ledger says so, and nobody was added who was not a member.

A push killed after the platform took a batch but before the ledger recorded it sends that
batch again (at least once; adds are idempotent on the platform), which the README says; what
must never happen is a member missing, an extra one, or a ledger that disagrees with the
platform."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("threadline_tiktok_audiences", reason="threadline-tiktok-audiences is not installed")
from threadline.activation import sha256_hex  # noqa: E402
from threadline.testing import sample_members  # noqa: E402
from threadline_profiles.activation.push import ledger_member_ids  # noqa: E402
from threadline_profiles.store import ProfileStore  # noqa: E402
from threadline_tiktok_audiences.destination import MAPPING_PATH  # noqa: E402
from threadline_tiktok_audiences.sandbox import TikTokAudiencesSandbox  # noqa: E402

# random kill points per run: 12 keep the suite within its time budget; a longer soak is
# THREADLINE_CRASH_KILLS=100 pytest tests/crash (the points are seeded, so a failure reruns the same)
KILLS = int(os.environ.get("THREADLINE_CRASH_KILLS", "12"))
MEMBERS = 1200
BATCH = 50

PUSH = textwrap.dedent("""
    import sys
    from threadline.testing import sample_members
    from threadline_profiles.activation.push import PushOutcome, push_members
    from threadline_profiles.config.activations import Activation
    from threadline_profiles.store import ProfileStore
    from threadline_tiktok_audiences.destination import TikTokAudiences

    store_path, base_url, token, advertiser, audience = sys.argv[1:6]
    dest = TikTokAudiences()
    config = dest.spec.model_validate({"base_url": base_url, "access_token": token, "advertiser_id": advertiser,
                                       "audience_id": audience, "backoff_base": 0.01})
    activation = Activation(audience="winback", connector="tiktok_audiences", batch_rows=%d)
    with ProfileStore.open({"path": store_path}) as store:
        outcome = PushOutcome("winback_tiktok", "winback", dest.name, "diff")
        push_members(store, "winback_tiktok", activation, dest, config, sample_members(0, %d), outcome)
    print(outcome.outcome, outcome.adds)
""" % (BATCH, MEMBERS))


def answered_adds(box: TikTokAudiencesSandbox) -> int:
    return sum(1 for r in box.requests if r.path.startswith(MAPPING_PATH) and r.status == 200)


def answered_bodies(box: TikTokAudiencesSandbox) -> list[dict]:
    """The JSON bodies of the mapping requests the platform answered with success (a request
    cut by the kill may have reached it without a whole body)."""
    bodies = []
    for r in box.requests:
        if r.path.startswith(MAPPING_PATH) and r.status == 200:
            try:
                bodies.append(json.loads(r.body))
            except ValueError:
                continue
    return bodies


def start_push(tmp_path: Path, box: TikTokAudiencesSandbox) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PUSH, str(tmp_path / "p.duckdb"), box.base_url, box.TOKEN,
                             box.ADVERTISER_ID, box.AUDIENCE_ID],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


KILL_POINTS = [(random.Random(5 + k).randrange(0, MEMBERS // BATCH), random.Random(50 + k).uniform(0, 0.03))
               for k in range(KILLS)]


@pytest.mark.parametrize("after, delay", KILL_POINTS,
                         ids=[f"kill{k:02d}-after{a}batches+{d * 1000:.0f}ms" for k, (a, d) in enumerate(KILL_POINTS)])
def test_a_push_killed_at_a_random_point_then_rerun_leaves_the_platform_and_ledger_exact(tmp_path, after, delay):
    members = sample_members(0, MEMBERS)
    wanted = {sha256_hex(e) for e in members.column("email").to_pylist()}
    with TikTokAudiencesSandbox() as box:
        proc = start_push(tmp_path, box)
        deadline = time.monotonic() + 120
        while answered_adds(box) < after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        # killed mid-push, unless it was to die after its last batch and finished first
        assert proc.returncode == -signal.SIGKILL or after >= MEMBERS // BATCH - 1, proc.communicate()

        rerun = start_push(tmp_path, box)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        assert out.split()[0] == "pushed", out
        assert box.audience_hashes(box.AUDIENCE_ID) == wanted
        sent = [row for body in answered_bodies(box) if body.get("action") == "add" for row in body["batch_data"]]
        assert len(sent) <= MEMBERS + BATCH, "more than the one batch in flight at the kill was sent twice"
    with ProfileStore.open({"path": str(tmp_path / "p.duckdb")}) as store:
        assert set(ledger_member_ids(store, "winback_tiktok")) == set(members.column("member_id").to_pylist())
