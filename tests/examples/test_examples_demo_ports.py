"""The demo does not need its usual ports free: a sandbox whose port is taken gets another,
and the job learns it through its *_URL variable (issue 13, item 16)."""

import importlib.util
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_replay():
    spec = importlib.util.spec_from_file_location("mission_replay", ROOT / "examples" / "mission" / "replay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_demo_sandbox_whose_port_is_taken_gets_a_free_one_and_the_job_its_url():
    replay = load_replay()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        names, env = replay.addresses({"linkedin_audiences": busy})
    (name,) = names
    port = int(name.split("=")[1])
    assert port != busy
    assert env == {"LINKEDIN_URL": f"http://127.0.0.1:{port}/rest",
                   "LINKEDIN_TOKEN_URL": f"http://127.0.0.1:{port}/oauth/v2/accessToken"}


def test_every_demo_sandbox_has_the_url_variables_its_job_reads():
    replay = load_replay()
    job = (ROOT / "examples" / "mission" / "job.yaml").read_text()
    assert set(replay.URL_VARIABLES) == set(replay.SANDBOXES)
    for variables in replay.URL_VARIABLES.values():
        for variable in variables:
            assert "${" + variable + ":-" in job
