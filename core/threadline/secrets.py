"""Secrets never appear in logs, errors, reports or state (nor personal data: see `personal`).

The job loader registers here the value of every field that is a secret — its name says so
(`token`, `api_key`, `password`, `client_secret`, ...; see `looks_secret`), or it comes from an
environment variable whose name does (`${APP_KEY}`) — and the password of any URL given with
one. Connectors register the credentials they build (a refreshed OAuth token, say). Other
values, such as a `base_url` from `${HUBSPOT_URL}`, stay readable in messages. `redact`
replaces each registered value in a text; the CLI's log handler and error printer run
everything through it, so a secret that slips into a message is masked rather than printed.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

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


_SECRET_WORDS = {"password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "key", "apikey",
                 "credential", "credentials", "auth", "authorization", "bearer", "dsn", "signature", "private",
                 "cookie"}
# names ending in these describe where or how a secret goes, not the secret: token_url, token_param
_NOT_SECRET_TAILS = {"url", "uri", "endpoint", "host", "path", "file", "field", "fields", "param", "parameter",
                     "header", "name", "id", "type", "prefix", "location", "in", "format", "mode", "style", "kind"}
_NOT_SECRET_KEYS = {"primary", "foreign", "partition", "sort", "cursor", "dedupe", "dedup", "join", "match",
                    "unique", "idempotency", "group", "merge", "natural", "business"}


def looks_secret(name: str) -> bool:
    """Whether a config field or environment variable named `name` holds a secret:
    `token`, `api_key`, `APP_KEY`, `client_secret`, `DB_PASSWORD` do; `token_url`,
    `primary_key`, `base_url` do not."""
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]
    if not words or words[-1] in _NOT_SECRET_TAILS:
        return False
    for i, word in enumerate(words):
        if word == "key" and i > 0 and words[i - 1] in _NOT_SECRET_KEYS:
            continue
        if word in _SECRET_WORDS:
            return True
    return False


def register_url_password(value: str) -> None:
    """Register the password of a URL written with one (`postgres://user:pw@host/db`)."""
    try:
        password = urlsplit(value).password if "://" in value and "@" in value else None
    except ValueError:
        return
    if password:
        register_secret(password)


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
