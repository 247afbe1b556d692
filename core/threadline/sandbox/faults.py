"""Faults a sandbox can inject into its responses, on request.

A `Fault` says what goes wrong (`kind`), for which requests (`path` prefix, `method`), after
how many matching requests it starts (`after`) and how many times it fires (`times`). Faults
queue up: each request is checked against them in injection order and the first one that
matches fires.

Kinds (the `FaultKind` values):

    status          answer `status` (default 503) with a JSON error body
    rate_limit      answer 429 with `Retry-After: retry_after` (and any `headers`)
    slow            wait `delay` seconds, then answer normally
    timeout         wait `delay` seconds (longer than the client's read timeout), then drop
    drop            close the connection without answering
    malformed_json  answer 200 with a body that is not valid JSON (truncated mid-record)
    garbage         answer 200, Content-Type JSON, with bytes that are no JSON at all
    html            answer 200 with an HTML page (a login wall, a proxy error page)
    expired_token   answer 401 as if the access token had expired
    repeat_page     answer with the previous response to the same path again (same records,
                    same next-page token): a paginator that trusts it would loop forever
    empty_page      answer the page with its records emptied (the first list in the body),
                    totals, next tokens and headers kept: the API "still says more remain"
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class FaultKind(str, enum.Enum):
    STATUS = "status"
    RATE_LIMIT = "rate_limit"
    SLOW = "slow"
    TIMEOUT = "timeout"
    DROP = "drop"
    MALFORMED_JSON = "malformed_json"
    HTML = "html"
    EXPIRED_TOKEN = "expired_token"
    REPEAT_PAGE = "repeat_page"
    GARBAGE = "garbage"
    EMPTY_PAGE = "empty_page"


@dataclass
class Fault:
    """One fault to inject. `times=0` means every matching request from now on."""

    kind: FaultKind
    times: int = 1
    after: int = 0  # let this many matching requests through first
    path: str = ""  # only requests whose path starts with this ("" = any, control paths never)
    method: str = ""  # only this HTTP method ("" = any)
    status: int = 503
    retry_after: float | None = 1
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    fired: int = 0  # how many times it has fired so far

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        if self.kind is FaultKind.RATE_LIMIT:
            self.status = 429

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return path.startswith(self.path)

    @property
    def exhausted(self) -> bool:
        return self.times > 0 and self.fired >= self.times

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "fired"}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**known)
