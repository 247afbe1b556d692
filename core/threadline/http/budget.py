"""A request budget: at most `calls` requests in any `per_seconds` window, per connector."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RequestBudget:
    """A sliding-window limit. `acquire()` blocks until a request may go, and returns how
    long it waited (so the caller can say so in its progress output)."""

    calls: int
    per_seconds: float
    _sent: deque[float] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.calls < 1 or self.per_seconds <= 0:
            raise ValueError(f"a request budget needs calls >= 1 and per_seconds > 0, got {self.calls}/{self.per_seconds}s")

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.per_seconds:
                    self._sent.popleft()
                if len(self._sent) < self.calls:
                    self._sent.append(now)
                    return waited
                wait = self.per_seconds - (now - self._sent[0])
            sleep(wait)
            waited += wait


@dataclass
class BothBudgets:
    """Two budgets at once (a general limit and an endpoint's own): a request waits for both."""

    first: RequestBudget | BothBudgets
    second: RequestBudget

    @property
    def calls(self) -> int:
        return self.second.calls

    @property
    def per_seconds(self) -> float:
        return self.second.per_seconds

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        return self.first.acquire(sleep) + self.second.acquire(sleep)
