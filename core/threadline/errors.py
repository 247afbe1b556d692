"""The errors threadline raises on purpose, classified so the engine knows what to do with each.

A leaf module (no Arrow, no pydantic): the CLI and plugin discovery need these before anything
heavy is imported. `threadline.contracts` re-exports them, so plugins import them from there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class ThreadlineError(Exception):
    """Base of every error threadline raises on purpose (as opposed to a bug)."""

    hint: str = ""

    def __init__(
        self, message: str, *, hint: str = "", where: str = "", status: int | None = None, method: str = "",
        url: str = "",
    ) -> None:
        self.message = message
        self.where = where
        # The HTTP request that failed, when one did: its status (None when no answer came),
        # method and URL (secrets masked). Code deciding what an error means reads these.
        self.status, self.method, self.url = status, method, url
        if hint:
            self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  → {self.hint}" if self.hint else text


class ConfigError(ThreadlineError):
    """Something the user must fix: a config field, a credential, a job file.

    `field` names the config field (dotted path) when there is one.
    """

    def __init__(self, message: str, *, field: str = "", **kw: Any) -> None:
        self.field = field
        super().__init__(message, **kw)


class TransientError(ThreadlineError):
    """A failure that may go away on retry: a timeout, a 503, a dropped connection."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class FatalError(ThreadlineError):
    """A failure that stops the stream: the message names connector, stream and request."""


class RateLimitStop(TransientError):
    """The vendor asked for a wait longer than the run may take. Raise it after the last
    Checkpoint: the engine records the stream as *paused* (not failed), its state is already
    saved, and the next sync after `resume_after` carries on from there."""

    def __init__(self, message: str, *, resume_after: datetime, **kw: Any) -> None:
        self.resume_after = resume_after
        super().__init__(message, **kw)
