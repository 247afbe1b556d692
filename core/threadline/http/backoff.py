"""How long to wait before trying again: exponential back-off with jitter, or what the server asked."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Mapping

# Headers vendors use to say when a rate-limit window resets: epoch seconds (or ms) or a delay.
RESET_HEADERS = (
    "x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset", "x-ratelimit-reset-after",
    "x-rate-limit-reset-after", "rate-limit-reset",
)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits. Tests shrink `backoff_base` so they run fast; vendors keep the defaults.

    The wait before retry n (1-based) is `backoff_base * backoff_factor**(n-1)`, capped at
    `max_backoff`, with "full jitter" (a random share of it) so that many clients do not retry
    in step. A server's Retry-After or rate-limit reset header replaces that computed wait.
    No request is retried after `max_retry_time` seconds of retrying in total, and a server
    asking for a longer wait than is left is not waited for.
    """

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_factor: float = 2.0
    max_backoff: float = 60.0
    max_retry_time: float = 300.0
    jitter: bool = True

    def backoff(self, retry_number: int) -> float:
        """The computed wait before retry `retry_number` (1 for the first retry)."""
        wait = min(self.max_backoff, self.backoff_base * self.backoff_factor ** max(0, retry_number - 1))
        # Jitter in [wait/2, wait]: never zero, so a burst of retries still spreads out.
        return wait * (0.5 + random.random() / 2) if self.jitter else wait


def server_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (Retry-After, then vendor reset headers), or None."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        wait = _seconds_or_date(value.strip(), now)
        if wait is not None:
            return max(0.0, wait)
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in RESET_HEADERS:
        if name in lowered:
            wait = _reset_value(lowered[name].strip(), now)
            if wait is not None:
                return max(0.0, wait)
    return None


def _seconds_or_date(value: str, now: float) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError):
        return None


def _reset_value(value: str, now: float) -> float | None:
    """A reset header is epoch seconds, epoch milliseconds, or a delay in seconds."""
    try:
        number = float(value)
    except ValueError:
        return _seconds_or_date(value, now)
    if number > 1e12:  # epoch milliseconds
        return number / 1000 - now
    if number > 1e9:  # epoch seconds
        return number - now
    return number
