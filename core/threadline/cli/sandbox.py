"""`threadline sandbox NAME`: run a plugin's vendor sandbox in the foreground.

For demos and manual tries: point a job's `base_url` at the printed URL, and drive faults
with `curl -X POST <url>/_sandbox/faults -d '{"kind": "rate_limit", "times": 3}'`.
"""

from __future__ import annotations

import threading

import click

from threadline.plugins import registry


@click.command("sandbox")
@click.argument("name", required=False)
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1 (0: a free one).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sandbox's data.")
def command(name: str | None, port: int, seed: int) -> None:
    """Run the sandbox NAME (a vendor API on 127.0.0.1) until Ctrl-C; without NAME, list them."""
    sandboxes = registry().sandboxes
    if not name:
        for known in sorted(sandboxes):
            click.echo(known)
        if not sandboxes:
            click.echo("no sandboxes are installed (plugins register them with `register_sandboxes`)")
        return
    factory = sandboxes.get(name)
    if factory is None:
        known = ", ".join(sorted(sandboxes)) or "(none)"
        raise click.UsageError(f"no sandbox named {name!r} is installed (installed: {known})")
    sandbox = factory(seed=seed, port=port)
    sandbox.start()  # idempotent: a factory may hand back a started sandbox
    click.echo(f"sandbox {name!r} listening on {sandbox.base_url}  (Ctrl-C to stop)")
    click.echo(f"  faults:   POST {sandbox.base_url}/_sandbox/faults  e.g. {{\"kind\": \"rate_limit\", \"times\": 3}}")
    click.echo(f"  requests: GET  {sandbox.base_url}/_sandbox/requests")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        click.echo("sandbox stopped")
