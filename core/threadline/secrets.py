"""Secrets never appear in logs, errors, reports or state.

Every value taken from the environment through `${VAR}` in a job file is registered here,
and so is any credential a connector builds (a refreshed OAuth token, say). `redact` replaces
each registered value in a text; the CLI's log handler and error printer run everything
through it, so a secret that slips into a message is masked rather than printed.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_LENGTH = 4  # shorter values ("1", "yes") would mask ordinary words
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: object) -> None:
    """Remember `value` as secret, so `redact` masks it from now on."""
    text = str(value) if value is not None else ""
    if len(text) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(text)


def redact(text: object) -> str:
    """`text` with every registered secret replaced by ***."""
    out = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the formatted message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
