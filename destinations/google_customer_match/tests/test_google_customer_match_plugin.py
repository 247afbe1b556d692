"""The plugin registers both destinations and the sandbox, and `threadline sandbox` serves it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from threadline.plugins import registry
from threadline_google_customer_match import GoogleCustomerMatch, GoogleDataManager
from threadline_google_customer_match.sandbox import GoogleSandbox

# Run while `threadline sandbox` serves: both destinations pass check() against it, push to it,
# and the sandbox's control endpoint shows the members.
CLIENT = """
import sys
from threadline.contracts import AudienceTarget, PushMode
from threadline.sandbox import RemoteSandbox
from threadline.testing import sample_members
from threadline_google_customer_match import GoogleCustomerMatch, GoogleDataManager
from threadline_google_customer_match.sandbox import GoogleSandbox as S
url = sys.argv[1]
common = dict(customer_id=S.CUSTOMER_ID, user_list_id=S.USER_LIST_ID, client_id=S.CLIENT_ID, client_secret=S.CLIENT_SECRET,
              refresh_token=S.REFRESH_TOKEN, token_url=url + "/token", base_url=url)
for dest, extra in ((GoogleDataManager, dict(terms_of_service_accepted=True)),
                    (GoogleCustomerMatch, dict(developer_token=S.DEVELOPER_TOKEN, poll_interval=0))):
    config = dest.spec.model_validate({**common, **extra})
    dest().check(config)
    writer = dest().open_audience(config, AudienceTarget("cli", "a", PushMode.DIFF, "r", 5, 0))
    writer.add(dest().prepare(config, sample_members(0, 5)))
    writer.finish()
assert len(RemoteSandbox(url).control("email_hashes", {})["email_hashes"]) == 5
"""


def test_plugin_registers_both_destinations_and_the_sandbox():
    reg = registry()
    assert reg.destinations["google_data_manager"] is GoogleDataManager
    assert reg.destinations["google_customer_match"] is GoogleCustomerMatch
    assert reg.sandboxes["google_customer_match"] is GoogleSandbox


def test_threadline_sandbox_serves_both_apis(tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    threadline = Path(sys.executable).parent / "threadline"
    done = subprocess.run(
        [str(threadline), "sandbox", f"google_customer_match={port}", "--run",
         f"{sys.executable} {script} http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
