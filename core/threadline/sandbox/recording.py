"""What a sandbox remembers about each request it received, so tests can assert on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from threadline.secrets import redact_secrets

# Headers whose whole value is a credential, masked even when the value was never registered.
SENSITIVE_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the sandbox saw it. Header names are lower-cased; secrets are masked."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str
    time: float  # time.time() when the request arrived
    fault: str = ""  # the fault kind injected into the answer, if any
    status: int = -1  # the status answered (0: connection dropped; -1: not answered yet)
    extra: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        """The first value of query parameter `name`, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Lower-case names; credentials masked (scheme kept: `Bearer ***`), other secrets masked."""
    out = {}
    for name, value in headers.items():
        key = name.lower()
        if key in SENSITIVE_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} ***" if rest else "***"
        out[key] = redact_secrets(value)
    return out
