"""Serving the collector with uvicorn, one process per log (a lock file says which)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

from threadline.contracts import ConfigError
from threadline.secrets import register_secret
from threadline.state import file_lock

from threadline_events.config import EventsConfig

log = logging.getLogger("threadline.events.collector")


class CollectorLockedError(ConfigError):
    """Another collector writes this log."""


def log_lock(folder: Path) -> Any:
    """Hold the log's writer lock: two collectors appending to one log would interleave lines."""
    return file_lock(folder / "collector.lock", lambda holder: CollectorLockedError(
        f"the event log {folder} is already written by a collector ({holder})",
        hint="stop that collector first, or give this one its own `log` folder"))


def serve(config: EventsConfig, host: str | None = None, port: int | None = None) -> None:
    """Run the collector until SIGINT or SIGTERM (uvicorn finishes the requests in flight, and
    the log writer syncs what they wrote, before it exits)."""
    import uvicorn

    from threadline_events.collector import create_app

    for secret in [*config.write_keys.values(), *(h.secret for h in _webhooks(config))]:
        register_secret(secret)  # masked in every log line, like ${VAR} values
    settings = config.collector
    host = host or settings.host
    port = settings.port if port is None else port
    with log_lock(config.log):
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of a socket that says
        # so, and without it every answer waits ~40 ms for the client's delayed ACK (Nagle)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"the collector cannot listen on {host}:{port}: {exc.strerror}",
                              field="collector.port", hint="pick another port (--port, or collector.port)") from None
        sock.listen(1024)
        app = create_app(config)
        server = uvicorn.Server(uvicorn.Config(
            app, access_log=False, log_config=None, lifespan="on", server_header=False,
            limit_concurrency=settings.max_connections, timeout_graceful_shutdown=10,
        ))
        bound = sock.getsockname()[1]
        routes = [f"/v1/* (streams {', '.join(config.write_keys)})"] if config.write_keys else []
        routes += [f"/webhooks/{name}" + ("/<secret>" if name == "mailchimp" else "") for name in _webhook_names(config)]
        log.info("collecting on http://%s:%s into %s: %s", host, bound, config.log, "; ".join(routes))
        server.run(sockets=[sock])


def _webhooks(config: EventsConfig) -> list:  # type: ignore[type-arg]
    return [h for h in (config.webhooks.shopify, config.webhooks.klaviyo, config.webhooks.mailchimp) if h is not None]


def _webhook_names(config: EventsConfig) -> list[str]:
    return [n for n in ("shopify", "klaviyo", "mailchimp") if getattr(config.webhooks, n) is not None]
