"""`threadline sandbox NAME[=PORT] ...`: run plugins' vendor sandboxes on 127.0.0.1.

For demos and manual tries: point a job's `base_url` at the printed URL, and drive faults
with `curl -X POST <url>/_sandbox/faults -d '{"kind": "rate_limit", "times": 3}'`.
With `--run COMMAND` the sandboxes serve only while COMMAND runs (examples use this:
`threadline sandbox hubspot=18101 --run "threadline sync examples/crm/job.yaml"`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import click

from threadline.plugins import registry


@click.command("sandbox")
@click.argument("names", nargs=-1)
@click.option("--port", type=int, default=0, show_default=True,
              help="Port on 127.0.0.1 for a single NAME (0: a free one); NAME=PORT sets it per sandbox.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sandboxes' data.")
@click.option("--run", "run_command", help="Run this command while the sandboxes serve, then stop them; "
              "exits with the command's status.")
def command(names: tuple[str, ...], port: int, seed: int, run_command: str | None) -> None:
    """Run sandboxes NAME[=PORT] (vendor APIs on 127.0.0.1) until Ctrl-C, or while --run's command
    runs. Without NAME, list the installed sandboxes."""
    sandboxes = registry().sandboxes
    if not names:
        for known in sorted(sandboxes):
            click.echo(known)
        if not sandboxes:
            click.echo("no sandboxes are installed (plugins register them with `register_sandboxes`)")
        return
    wanted = [_parse(n, port if len(names) == 1 else 0) for n in names]
    missing = [n for n, _ in wanted if n not in sandboxes]
    if missing:
        known = ", ".join(sorted(sandboxes)) or "(none)"
        raise click.UsageError(f"no sandbox named {', '.join(map(repr, missing))} is installed (installed: {known})")
    started = []
    try:
        for name, at in wanted:
            sandbox = sandboxes[name](seed=seed, port=at)
            try:
                sandbox.start()  # idempotent: a factory may hand back a started sandbox
            except OSError as exc:  # the port is taken (another sandbox, an earlier demo still running)
                raise click.UsageError(
                    f"sandbox {name!r} cannot listen on 127.0.0.1:{at}: {exc.strerror or exc}; "
                    f"choose another port ({name}=PORT), or {name}=0 for a free one") from None
            started.append(sandbox)
            click.echo(f"sandbox {name!r} listening on {sandbox.base_url}", err=bool(run_command))
        if run_command:
            sys.exit(_run(run_command))
        click.echo("  faults:   POST <url>/_sandbox/faults  e.g. {\"kind\": \"rate_limit\", \"times\": 3}")
        click.echo("  requests: GET  <url>/_sandbox/requests        (Ctrl-C to stop)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    finally:
        for sandbox in started:
            sandbox.stop()


def _parse(text: str, default_port: int) -> tuple[str, int]:
    name, _, port = text.partition("=")
    if port and not port.isdigit():
        raise click.UsageError(f"{text!r}: expected NAME or NAME=PORT, e.g. hubspot=18101")
    return name, int(port) if port else default_port


def _run(command_line: str) -> int:
    """Run the command with this environment's scripts first on PATH (so `threadline` is ours)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(shlex.split(command_line), env=env).returncode
