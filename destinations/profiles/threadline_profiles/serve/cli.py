"""`threadline serve` (the lookup API on uvicorn) and `threadline serve token create|revoke|list`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from threadline_profiles.cli.profiles import store_config, store_options
from threadline_profiles.store import ProfileStore


class ServeGroup(click.Group):
    """`threadline serve job.yaml` serves, as every command takes its job file first;
    `threadline serve token ...` manages tokens."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and Path(args[0]).is_file():
            args = ["--job", args[0], *args[1:]]
        return super().parse_args(ctx, args)


def _store_flags(fn: Any) -> Any:
    for option in reversed([
        click.option("-j", "--job", type=click.Path(exists=True, dir_okay=False), help="A job file with a profiles destination."),
        click.option("--destination", help="Which profiles destination of the job (when it has several)."),
        click.option("--path", type=click.Path(dir_okay=False), help="A DuckDB profile store file."),
        click.option("--dsn", help="A Postgres profile store (postgresql://user@host:port/db)."),
        click.option("--schema", help="The Postgres schema of the store."),
    ]):
        fn = option(fn)
    return fn


@click.group("serve", cls=ServeGroup, invoke_without_command=True)
@_store_flags
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8640, show_default=True, help="Port to listen on (0: any free one).")
@click.option("--rate-limit", default="60/minute", show_default=True,
              help="Calls allowed per token (and per address without a valid token): N/second|minute|hour|day.")
@click.pass_context
def serve_group(ctx: click.Context, job: str | None, destination: str | None, path: str | None, dsn: str | None,
                schema: str | None, host: str, port: int, rate_limit: str) -> None:
    """Serve the profile lookup API (OpenAPI at /openapi.json, a page at /docs).

    Callers send a token made with `threadline serve token create --role support|marketer|admin`.
    Support looks up one person by an exact email, phone or id, with a reason, and sees them
    masked; marketers see audience sizes, masked previews and aggregate traits; admins
    everything, including erasure. Every call is in the audit log (`threadline audit`)."""
    if ctx.invoked_subcommand is not None:
        return
    from threadline_profiles.serve.ratelimit import Rate

    try:
        rate = Rate.parse(rate_limit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rate-limit") from None
    run_server(store_config(job, destination, path, dsn, schema), host, port, rate)


def run_server(config: Any, host: str, port: int, rate: Any) -> None:
    """Run until SIGINT or SIGTERM; uvicorn finishes the calls in flight."""
    import logging
    import socket

    import uvicorn
    from threadline.contracts import ConfigError

    from threadline_profiles.serve.app import create_app

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"threadline serve cannot listen on {host}:{port}: {exc.strerror}",
                          hint="pick another port (--port)") from None
    sock.listen(128)
    with ProfileStore.open(config) as store:
        app = create_app(store, rate)
        server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_config=None, lifespan="off",
                                               server_header=False, timeout_graceful_shutdown=10))
        logging.getLogger("threadline.profiles.serve").info(
            "serving the profile lookup API on http://%s:%s (docs at /docs; %s per token) from %s",
            host, sock.getsockname()[1], rate, store.engine.location)
        server.run(sockets=[sock])


@serve_group.group("token")
def token_group() -> None:
    """API tokens: create (printed once), revoke, list."""


@token_group.command("create")
@store_options
@click.option("--role", type=click.Choice(["support", "marketer", "admin"]), required=True, help="What the token may do.")
@click.option("--name", required=True, help="Who uses it (shown in `token list`).")
def create_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None,
                   role: str, name: str) -> None:
    """Make a token and print it once: the store keeps only its hash."""
    from threadline_profiles.audit import log
    from threadline_profiles.serve.tokens import create_token

    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        record, token = create_token(store, role, name, log.cli_user())
        log.record(store, who=log.cli_user(), action="token", subject=log.named("token", record.who),
                   result=f"created: role {role}")
    click.echo(token)
    click.echo(f"token {record.who} ({role}, {record.name}): shown once, keep it in a secret manager; "
               f"revoke with `threadline serve token revoke {record.who}`", err=True)


@token_group.command("revoke")
@click.argument("token_id")
@store_options
def revoke_command(token_id: str, job: str | None, destination: str | None, path: str | None, dsn: str | None,
                   schema: str | None) -> None:
    """Revoke token TOKEN_ID (tok_...): its next call is refused."""
    from threadline_profiles.audit import log
    from threadline_profiles.serve.tokens import revoke_token

    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        record = revoke_token(store, token_id)
        if record is None:
            raise click.ClickException(f"no token {token_id} in this store (`threadline serve token list` shows them)")
        log.record(store, who=log.cli_user(), action="token", subject=log.named("token", record.who), result="revoked")
    click.echo(f"revoked {record.who} ({record.role}, {record.name})")


@token_group.command("list")
@store_options
def list_command(job: str | None, destination: str | None, path: str | None, dsn: str | None, schema: str | None) -> None:
    """Every token: id, role, name, when made, and whether it is revoked."""
    from threadline_profiles.serve.tokens import list_tokens

    with ProfileStore.open(store_config(job, destination, path, dsn, schema)) as store:
        tokens = list_tokens(store)
    if not tokens:
        click.echo("no tokens (make one with `threadline serve token create --role support --name NAME`)")
    for t in tokens:
        state = f"revoked {t.revoked_at}" if t.revoked_at else "active"
        click.echo(f"{t.who}  {t.role:<9} {t.name:<24} created {t.created_at} by {t.created_by}  {state}")
