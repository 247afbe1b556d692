"""The base of every vendor sandbox: a real HTTP server on 127.0.0.1 with fault injection.

A vendor sandbox subclasses `Sandbox`, seeds its data in `seed_data()` (deterministic from
`self.seed`) and declares its endpoints with `@route`::

    class CrmSandbox(Sandbox):
        name = "crm"

        def seed_data(self):
            self.contacts = [{"id": i, "email": f"c{i}@example.com"} for i in range(1, 101)]

        @route("GET", "/contacts")
        def list_contacts(self, req: SandboxRequest) -> Reply:
            self.require_bearer(req, "sandbox-token")
            return Reply.json({"data": self.contacts})

    with CrmSandbox(seed=1) as crm:          # started on a free port, stopped on exit
        crm.inject("rate_limit", retry_after=1, times=3)
        ... point the connector at crm.base_url ...
        assert crm.requests[0].headers["authorization"] == "Bearer ***"

Control endpoints (so a sandbox running in another process, e.g. `threadline sandbox rest`,
can be driven over HTTP; they are never faulted nor recorded):

    POST   /_sandbox/faults     body: a Fault as JSON (or a list of them)   → injects
    DELETE /_sandbox/faults                                                 → clears faults
    GET    /_sandbox/requests                                               → recorded requests
    POST   /_sandbox/reset                                                  → reseed, clear all
    POST   /_sandbox/<action>   body: JSON                                  → self.control_<action>(body)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from threadline.http.client import SENSITIVE_PARAMS
from threadline.sandbox.faults import Fault, FaultKind
from threadline.sandbox.recording import RecordedRequest, mask_headers
from threadline.secrets import redact, redact_secrets

log = logging.getLogger("threadline.sandbox")

LOOPBACK = "127.0.0.1"
CONTROL_PREFIX = "/_sandbox/"


class SandboxError(Exception):
    """Raised by a route handler to answer with an error status and JSON body."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers or {}


@dataclass
class Reply:
    """What a route answers: a status, headers and a body (bytes)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def raw_json(cls, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """An already-serialised JSON body (sandboxes cache hot pages this way)."""
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})


@dataclass(frozen=True)
class SandboxRequest:
    """A request as a route handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names, real (unmasked) values
    body: bytes
    base_url: str

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def int_param(self, name: str, default: int) -> int:
        value = self.param(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise SandboxError(400, f"query parameter {name!r} must be an integer, got {value!r}") from None

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise SandboxError(400, "request body is not valid JSON") from None


Handler = Callable[[Any, SandboxRequest], Reply]


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Declare a method of a `Sandbox` subclass as the handler of `method path` (exact path)."""

    def mark(fn: Handler) -> Handler:
        fn._sandbox_route = (method.upper(), path)  # type: ignore[attr-defined]
        return fn

    return mark


class Sandbox:
    """A vendor API on loopback: routes, seeded data, fault injection and request recording.

    Subclasses set `name`, implement `seed_data()` and declare routes with `@route`.
    Use as a context manager, or call `start()` / `stop()`.
    """

    name: ClassVar[str] = "sandbox"
    # For benches: an answer is built once and served again to the same request (method, path,
    # query, body and credentials) without running its route, so a figure measures the client,
    # not the sandbox's own JSON building. Only while the data does not change (reset() forgets).
    cache_pages: bool = False

    def __init__(self, *, seed: int = 0, port: int = 0) -> None:
        self.seed = seed
        self._port = port
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._last_reply: dict[str, Reply] = {}  # by path, for the repeat_page fault
        self._pages: dict[Any, Reply] = {}  # answers by request, when `cache_pages` is on
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._collect_routes()
        self.seed_data()

    # ------------------------------------------------------------------ for subclasses

    def seed_data(self) -> None:
        """Create the sandbox's data, deterministically from `self.seed`."""

    def secrets(self) -> list[str]:
        """Credential values this sandbox accepts; masked in recorded requests."""
        return []

    def require_bearer(self, req: SandboxRequest, *tokens: str) -> None:
        """Answer 401 unless the request carries `Authorization: Bearer <one of tokens>`."""
        given = req.headers.get("authorization", "")
        if not any(given == f"Bearer {t}" for t in tokens):
            raise SandboxError(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` (no trailing slash); the server must be started."""
        if self._server is None:
            raise RuntimeError(f"sandbox {self.name!r} is not started: use `with sandbox:` or sandbox.start()")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> Sandbox:
        """Bind 127.0.0.1 on a free port (or the one asked for) and serve in a thread."""
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer((LOOPBACK, self._port), _make_handler(self))
        self._server.daemon_threads = True
        # Replies go out as several small writes; with Nagle's algorithm against the client's
        # delayed ACK every answer stalled ~40 ms, which capped every connector's records/s.
        # Accepted sockets inherit TCP_NODELAY from the listening socket on Linux.
        self._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.name}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults and recording

    def inject(self, fault: Fault | FaultKind | str, **options: Any) -> Fault:
        """Queue a fault, e.g. `inject("rate_limit", retry_after=1, times=3)`; returns it."""
        if not isinstance(fault, Fault):
            fault = Fault(kind=FaultKind(fault), **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Faults still queued (exhausted ones are dropped)."""
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every non-control request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str = "GET") -> list[RecordedRequest]:
        """Recorded requests for exactly `path` with `method`."""
        return [r for r in self.requests if r.path == path and r.method == method]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Back to the seeded state: data reseeded, faults and recordings cleared."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._last_reply.clear()
            self._pages.clear()
            self.seed_data()

    # ------------------------------------------------------------------ dispatch

    def _collect_routes(self) -> dict[tuple[str, str], Handler]:
        routes = {}
        for klass in reversed(type(self).__mro__):
            for value in vars(klass).values():
                key = getattr(value, "_sandbox_route", None)
                if key:
                    routes[key] = value
        return routes

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.fired += 1
                if fault.exhausted:
                    self._faults.remove(fault)
                return fault
        return None

    def _reply_for(self, req: SandboxRequest) -> Reply:
        """The route's answer, or the one it gave this same request before (`cache_pages`)."""
        if not self.cache_pages:
            return self._dispatch(req)
        key = (req.method, req.path, tuple(sorted((k, tuple(v)) for k, v in req.query.items())), req.body,
               tuple(sorted(req.headers.items())))
        with self._lock:
            cached = self._pages.get(key)
        if cached is None:
            cached = self._dispatch(req)
            if cached.status == 200:
                with self._lock:
                    self._pages[key] = cached
        return cached

    def _dispatch(self, req: SandboxRequest) -> Reply:
        handler = self._routes.get((req.method, req.path))
        if handler is None:
            known = sorted(p for m, p in self._routes if m == req.method)
            return Reply.json({"error": f"no route {req.method} {req.path}", "routes": known}, 404)
        try:
            reply = handler(self, req)
        except SandboxError as exc:
            return Reply.json({"error": exc.error}, exc.status, exc.headers)
        if reply.status == 200:
            with self._lock:
                self._last_reply[req.path] = reply
        return reply

    def _control(self, req: SandboxRequest) -> Reply:
        action = req.path[len(CONTROL_PREFIX):].strip("/")
        if action == "faults" and req.method == "POST":
            data = req.json()
            items = data if isinstance(data, list) else [data]
            try:
                faults = [self.inject(Fault.from_dict(item)) for item in items]
            except (TypeError, ValueError) as exc:
                return Reply.json({"error": f"bad fault: {exc}"}, 400)
            return Reply.json({"injected": [f.to_dict() for f in faults]})
        if action == "faults" and req.method == "DELETE":
            self.clear_faults()
            return Reply.json({"cleared": True})
        if action == "faults" and req.method == "GET":
            return Reply.json([f.to_dict() for f in self.faults])
        if action == "requests" and req.method == "GET":
            return Reply.json([r.to_dict() for r in self.requests])
        if action == "reset" and req.method == "POST":
            self.reset()
            return Reply.json({"reset": True})
        handler = getattr(self, f"control_{action}", None)
        if handler is None or req.method != "POST":
            return Reply.json({"error": f"unknown control {req.method} {req.path}"}, 404)
        try:
            return Reply.json(handler(req.json()))
        except SandboxError as exc:
            return Reply.json({"error": exc.error}, exc.status)

    def _record(self, req: SandboxRequest, fault: Fault | None, arrived: float) -> int:
        masked = set(self.secrets())
        query = {
            k: ["***" if k.lower() in SENSITIVE_PARAMS or v in masked else redact_secrets(v) for v in vs]
            for k, vs in req.query.items()
        }
        body = req.body.decode("utf-8", "replace")
        for secret in masked:
            body = body.replace(secret, "***")
        recorded = RecordedRequest(
            method=req.method, path=req.path, query=query, headers=mask_headers(req.headers),
            body=redact_secrets(body), time=arrived, fault=fault.kind.value if fault else "",
        )
        with self._lock:
            self._requests.append(recorded)
            return len(self._requests) - 1

    def _set_status(self, index: int, status: int) -> None:
        with self._lock:
            if index < len(self._requests):  # cleared meanwhile: nothing to fill in
                self._requests[index] = dataclasses.replace(self._requests[index], status=status)


# ---------------------------------------------------------------------- the HTTP plumbing

_HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Please sign in</h1></body></html>"


def _make_handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like real APIs (and it matters for throughput)
        server_version = f"threadline-sandbox/{sandbox.name}"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("%s %s", sandbox.name, redact(format % args))

        def _handle(self) -> None:
            arrived = time.time()
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = SandboxRequest(
                method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()}, body=body, base_url=sandbox.base_url,
            )
            if req.path.startswith(CONTROL_PREFIX):
                self._send(sandbox._control(req))
                return
            fault = sandbox._take_fault(req.method, req.path)
            # Recorded on arrival (a slow answer is already visible), status filled in after.
            index = sandbox._record(req, fault, arrived)
            reply = self._faulted(req, fault)
            sandbox._set_status(index, 0 if reply is None else reply.status)
            if reply is None:
                self._drop()
            else:
                self._send(reply)

        def _faulted(self, req: SandboxRequest, fault: Fault | None) -> Reply | None:
            """The reply for this request, with `fault` applied; None means drop the connection."""
            if fault is None:
                return sandbox._reply_for(req)
            kind = fault.kind
            if kind in (FaultKind.SLOW, FaultKind.TIMEOUT):
                time.sleep(fault.delay)
                return None if kind is FaultKind.TIMEOUT else sandbox._dispatch(req)
            if kind is FaultKind.DROP:
                return None
            if kind is FaultKind.RATE_LIMIT:
                headers = dict(fault.headers)
                if fault.retry_after is not None:
                    headers.setdefault("Retry-After", _number(fault.retry_after))
                return Reply.json({"error": "rate limit exceeded"}, 429, headers)
            if kind is FaultKind.STATUS:
                return Reply.json({"error": f"injected {fault.status}"}, fault.status, dict(fault.headers))
            if kind is FaultKind.MALFORMED_JSON:
                return Reply(200, b'{"data": [{"id": 1, "email": "trunc', {"Content-Type": "application/json"})
            if kind is FaultKind.HTML:
                return Reply(200, _HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            if kind is FaultKind.EXPIRED_TOKEN:
                return Reply.json(
                    {"error": "invalid_token", "error_description": "the access token expired"}, 401,
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            if kind is FaultKind.GARBAGE:
                return Reply(200, b"\x00\x9c<<garbage>> {]", {"Content-Type": "application/json"})
            if kind is FaultKind.EMPTY_PAGE:
                return _emptied(sandbox._dispatch(req))
            if kind is FaultKind.REPEAT_PAGE:
                with sandbox._lock:
                    previous = sandbox._last_reply.get(req.path)
                return previous if previous is not None else sandbox._dispatch(req)
            raise AssertionError(f"unhandled fault kind {kind}")

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return _Handler


def _emptied(reply: Reply) -> Reply:
    """`reply` with the first list in its JSON body emptied, everything else as it was."""
    if reply.status != 200:
        return reply
    body = json.loads(reply.body)
    if isinstance(body, list):
        body = []
    else:
        key = next((k for k, v in body.items() if isinstance(v, list)), None)
        if key is not None:
            body[key] = []
    return Reply(200, json.dumps(body).encode(), dict(reply.headers))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
