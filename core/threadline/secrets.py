"""Secrets never appear in logs, errors, reports or state (nor personal data: see `personal`).

Every value taken from the environment through `${VAR}` in a job file is registered here,
and so is any credential a connector builds (a refreshed OAuth token, say). `redact` replaces
each registered value in a text; the CLI's log handler and error printer run everything
through it, so a secret that slips into a message is masked rather than printed.
"""

from __future__ import annotations

import logging
import threading

from threadline.personal import scrub_personal_data

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
    """`text` with every registered secret replaced by ***, and emails and phone numbers
    masked (`personal.scrub_personal_data`): for logs, errors, reports and state."""
    return scrub_personal_data(redact_secrets(text))


def redact_secrets(text: object) -> str:
    """`text` with every registered secret replaced by *** and nothing else changed: for a
    sandbox's record of what a connector sent, which tests read for the members it holds."""
    out = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets and personal data in the formatted message, its
    arguments, its structured `fields` (JSON logs) and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:  # a handler would format the exception itself, unmasked
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg = redact(message)
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True
