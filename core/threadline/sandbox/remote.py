"""Drive a sandbox running in another process (e.g. `threadline sandbox rest`) over HTTP."""

from __future__ import annotations

from typing import Any

import requests

from threadline.sandbox.faults import Fault, FaultKind
from threadline.sandbox.recording import RecordedRequest
from threadline.sandbox.server import CONTROL_PREFIX


class RemoteSandbox:
    """The control side of a sandbox at `base_url`: inject faults, read recorded requests."""

    def __init__(self, base_url: str, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, action: str, body: Any = None) -> Any:
        response = requests.request(
            method, f"{self.base_url}{CONTROL_PREFIX}{action}", json=body, timeout=self._timeout,
        )
        response.raise_for_status()
        return response.json()

    def inject(self, fault: Fault | FaultKind | str, **options: Any) -> None:
        """Queue a fault, e.g. `inject("status", status=503, times=2)`."""
        if not isinstance(fault, Fault):
            fault = Fault(kind=FaultKind(fault), **options)
        self._call("POST", "faults", fault.to_dict())

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    @property
    def requests(self) -> list[RecordedRequest]:
        return [RecordedRequest(**r) for r in self._call("GET", "requests")]

    def reset(self) -> None:
        self._call("POST", "reset")

    def control(self, action: str, body: dict[str, Any]) -> Any:
        """Call a sandbox-specific control, e.g. `control("customers", {"add": 3})`."""
        return self._call("POST", action, body)
