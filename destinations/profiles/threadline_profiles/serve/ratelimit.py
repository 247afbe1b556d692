"""A sliding-window rate limit per caller, bounded in memory.

At most `limit` calls in any `per_seconds` window: each caller keeps the times of its last
`limit` calls (a deque of that length), and callers beyond `max_callers` drop the least
recently seen. Memory is at most `max_callers * limit` floats whatever the traffic.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True)
class Rate:
    limit: int
    per_seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`60/minute`, `5/second`, `1000/hour`."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*", text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"a rate limit reads like 60/minute (N per second|minute|hour|day), not {text!r}")
        return cls(int(match.group(1)), UNITS[match.group(2)])

    def __str__(self) -> str:
        unit = next(u for u, s in UNITS.items() if s == self.per_seconds)
        return f"{self.limit}/{unit}"


class RateLimiter:
    def __init__(self, rate: Rate, max_callers: int = 10_000) -> None:
        self.rate = rate
        self.max_callers = max_callers
        self._calls: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, caller: str) -> float:
        """0 when the call may go ahead (and counts it); else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            calls = self._calls.get(caller)
            if calls is None:
                calls = self._calls[caller] = deque(maxlen=self.rate.limit)
                while len(self._calls) > self.max_callers:
                    self._calls.popitem(last=False)
            self._calls.move_to_end(caller)
            if len(calls) == self.rate.limit and now - calls[0] < self.rate.per_seconds:
                return self.rate.per_seconds - (now - calls[0])
            calls.append(now)
            return 0.0
