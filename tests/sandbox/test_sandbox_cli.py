"""`threadline sandbox NAME` runs a plugin's sandbox in another process, drivable over HTTP."""

from __future__ import annotations

import subprocess
import sys

import requests
from click.testing import CliRunner

from threadline.cli.sandbox import command
from threadline.sandbox import CustomersSandbox, RemoteSandbox


def test_threadline_sandbox_serves_the_rest_sandbox_and_takes_faults_over_http():
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadline", "sandbox", "rest"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        base_url = first.split("listening on ")[1].split()[0]
        remote = RemoteSandbox(base_url)
        remote.inject("status", status=502)
        headers = {"Authorization": f"Bearer {CustomersSandbox.TOKEN}"}
        assert requests.get(base_url + "/customers", headers=headers, timeout=5).status_code == 502
        assert requests.get(base_url + "/customers", headers=headers, timeout=5).json()["total"] == 250
        assert [r.status for r in remote.requests] == [502, 200]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_threadline_sandbox_without_a_name_lists_the_installed_sandboxes():
    result = CliRunner().invoke(command, [])
    assert "rest" in result.output.split()


def test_an_unknown_sandbox_is_a_usage_error_naming_the_installed_ones():
    result = CliRunner().invoke(command, ["nope"])
    assert result.exit_code != 0
    assert "no sandbox named 'nope'" in result.output and "rest" in result.output


def test_a_sandbox_port_in_use_is_a_usage_error_saying_how_to_choose_another():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(command, [f"rest={port}"])
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "rest=0 for a free one" in result.output
