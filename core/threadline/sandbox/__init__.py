"""Sandboxes: vendor APIs on loopback, so HTTP connectors are tested without the internet.

    from threadline.sandbox import Sandbox, Reply, SandboxRequest, route, Fault

`Sandbox` is the base (a real HTTP server on 127.0.0.1, free port, seeded data, fault
injection, request recording, control endpoints under /_sandbox/); see
`threadline.sandbox.server` for how to write one and `threadline.sandbox.faults` for the
faults. `CustomersSandbox` is a ready-made paginated customers API (the `rest` plugin's
sandbox), handy as an example and for the kit's own tests.

A sandbox in another process is driven with `RemoteSandbox(base_url)`, which has the same
`inject` / `requests` / `reset` methods over the control endpoints.

The vendor sandboxes draw their customers from one shared population,
`threadline.sandbox.people`, so the same people show up in several vendors, as in real data.
"""

from threadline.sandbox.customers import CustomersSandbox
from threadline.sandbox.faults import Fault, FaultKind
from threadline.sandbox.recording import RecordedRequest
from threadline.sandbox.remote import RemoteSandbox
from threadline.sandbox.server import Reply, Sandbox, SandboxError, SandboxRequest, route

__all__ = [
    "CustomersSandbox", "Fault", "FaultKind", "RecordedRequest", "RemoteSandbox", "Reply", "Sandbox",
    "SandboxError", "SandboxRequest", "route",
]
