"""The lookup API (Starlette): one table of endpoints, each an action of the audit log.

Every call to /v1 goes the same way, in this order, and is then written to the audit log
whatever its outcome (who, action, the person's keyed hash, the reason, the status):

1. the token (`Authorization: Bearer tlk_...`): missing, malformed, unknown or revoked is one
   and the same 401, whose body says nothing about which;
2. the rate limit of that token (or, without a valid token, of the caller's address): 429
   with `Retry-After`;
3. the role (`access.PERMISSIONS`): 403;
4. the input: a person only by one exact identifier (`access.exact_identifier`), else 403;
   a lookup or erasure without a reason: 400;
5. the work, on the store (one call at a time: DuckDB has one connection per process).

No answer repeats what was sent, so nothing sent — an identifier, an attack — is reflected.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from threadline_profiles import api
from threadline_profiles.audiences import membership
from threadline_profiles.audit import log as audit
from threadline_profiles.engines.base import lit, quote
from threadline_profiles.serve import access
from threadline_profiles.serve.ratelimit import Rate, RateLimiter
from threadline_profiles.serve.tokens import ApiToken, authenticate, revoke_token
from threadline_profiles.store import ProfileStore
from threadline_profiles.traits import compute
from threadline_profiles.traits.types import BOOLEAN, INTEGER, LIST, NUMBER, TEXT

logger = logging.getLogger("threadline.profiles.serve")

MAX_BODY = 4096
LOOKUP_FIELDS = {"email", "phone", "profile_id", "region", "reason"}
MAX_EXPORT = 10_000


class Refused(Exception):
    """An answer other than success; `message` is fixed text, never a value from the request."""

    def __init__(self, status: int, code: str, message: str, *, subject: audit.Subject = audit.Subject(),
                 reason: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.subject, self.reason, self.headers = subject, reason, headers or {}


@dataclass
class Call:
    token: ApiToken
    body: dict[str, Any]
    path: dict[str, Any]
    query: dict[str, str]


@dataclass
class Answer:
    payload: Any
    result: str  # for the audit log: outcome and counts, no values
    status: int = 200
    subject: audit.Subject = field(default_factory=audit.Subject)
    reason: str = ""


UNAUTHORIZED = Refused(401, "unauthorized", "a valid API token is required (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": "Bearer"})
NOT_EXACT = ("a person is looked up by one exact, complete email, phone or profile id: "
             "no wildcards, prefixes or partial values")


# ------------------------------------------------------------------------------ endpoints


def _person_and_reason(store: ProfileStore, body: dict[str, Any]) -> tuple[access.Identifier, audit.Subject, str]:
    identifier = access.exact_identifier(body)
    if identifier is None or set(body) - LOOKUP_FIELDS:  # `email_prefix`, `match: prefix` and the like too
        raise Refused(403, "not_an_exact_identifier", NOT_EXACT)
    subject = audit.person(store, **identifier.as_lookup())
    reason = body.get("reason")
    if not isinstance(reason, str) or len(reason.strip()) < 3:
        raise Refused(400, "reason_required", "say why (\"reason\": a ticket number or request), for the audit log",
                      subject=subject)
    return identifier, subject, reason


def lookup(store: ProfileStore, call: Call) -> Answer:
    identifier, subject, reason = _person_and_reason(store, call.body)
    found = api.find(store, **identifier.as_lookup())
    if not found:
        raise Refused(404, "not_found", "no profile holds that identifier", subject=subject, reason=reason)
    view = access.support_view if call.token.role == "support" else access.admin_view
    return Answer({"profile": view(found[0]), "other_profiles_holding_it": len(found) - 1},
                  f"ok: 1 profile{f' ({len(found) - 1} more hold it)' if len(found) > 1 else ''}", subject=subject,
                  reason=reason)


def erasure(store: ProfileStore, call: Call) -> Answer:
    identifier, subject, reason = _person_and_reason(store, call.body)
    result = api.forget(store, **identifier.as_lookup())
    if not result.found:
        raise Refused(404, "not_found", "no profile holds that identifier; nothing was changed", subject=subject,
                      reason=reason)
    counts = {"profiles": result.profiles, "records": result.records, "tombstones": result.tombstones,
              "removals_queued": result.pending_removals, "forget_audit_id": result.audit_id}
    return Answer({"erased": counts}, f"ok: {result.profiles} profile(s), {result.records} record(s), "
                  f"{result.tombstones} tombstone(s)", subject=subject, reason=reason)


def _audience(store: ProfileStore, call: Call) -> str:
    name = call.path["name"]
    if name not in store.config.audiences:
        raise Refused(404, "unknown_audience", "no audience of that name (GET /v1/audiences lists them)")
    return name


def _bounded(call: Call, name: str, default: int, top: int) -> int:
    text = call.query.get(name, str(default))
    if not text.isdigit() or int(text) > top:
        raise Refused(400, "bad_parameter", f"{name} is a whole number from 0 to {top}")
    return int(text)


def sizes(store: ProfileStore, call: Call) -> Answer:
    latest = membership.latest_sizes(store)
    rows = [{"audience": name, "where": spec.where, "size": latest.get(name, {}).get("size"),
             "status": latest.get(name, {}).get("status", "not evaluated yet")} for name, spec in store.config.audiences.items()]
    return Answer({"audiences": rows}, f"ok: {len(rows)} audiences")


def preview(store: ProfileStore, call: Call) -> Answer:
    name = _audience(store, call)
    result = membership.preview(store, name, _bounded(call, "sample", 5, access.MAX_SAMPLE)).to_dict()
    for row in result.get("sample", []):  # identifiers masked: email by `preview`, the profile id here
        row["profile_id"] = access.mask_profile_id(row.get("profile_id") or "")
    return Answer(result, f"ok: size {result.get('size')}, {len(result.get('sample', []))} shown masked",
                  subject=audit.named("audience", name))


def export(store: ProfileStore, call: Call) -> Answer:
    name = _audience(store, call)
    latest = membership._latest(store)
    ids = membership.members_at(store, name, latest[1]) if latest else []
    offset, limit = _bounded(call, "offset", 0, 10**9), _bounded(call, "limit", 1000, MAX_EXPORT)
    page = ids[offset:offset + limit]
    members = []
    if page:
        in_ids = ", ".join(lit(i) for i in page)
        golden: dict[str, dict[str, str]] = {}
        for r in store.engine.rows(f"SELECT profile_id, field, value FROM tl_golden WHERE field IN ('email', 'phone') "
                                   f"AND profile_id IN ({in_ids})"):
            golden.setdefault(r["profile_id"], {})[r["field"]] = r["value"]
        members = [{"profile_id": i, "email": golden.get(i, {}).get("email"), "phone": golden.get(i, {}).get("phone")}
                   for i in page]
    return Answer({"audience": name, "build_id": latest[1] if latest else None, "size": len(ids), "offset": offset,
                   "members": members}, f"ok: {len(members)} of {len(ids)} members exported",
                  subject=audit.named("audience", name))


def traits(store: ProfileStore, call: Call) -> Answer:
    """Per trait: how many profiles have it; numbers as count and mean; categories as counts
    of values held by at least MIN_GROUP profiles (the rest pooled). Golden-record fields
    (names, emails) are not traits a marketer reads."""
    engine = store.engine
    if not engine.table_exists("tl_traits"):
        return Answer({"profiles": 0, "traits": []}, "ok: no traits yet")
    info = compute.catalog(store.config)
    total = int(engine.scalar("SELECT COUNT(*) FROM tl_traits") or 0)
    out = []
    for name in engine.table_columns("tl_traits"):
        trait = info.get(name)
        if name == "profile_id" or trait is None or trait.origin == "profile":
            continue
        col = quote(name)
        entry: dict[str, Any] = {"trait": name, "type": trait.type}
        if trait.type in (INTEGER, NUMBER):
            row = engine.rows(f"SELECT COUNT({col}) AS have, AVG(CAST({col} AS DOUBLE)) AS mean FROM tl_traits")[0]
            entry.update(profiles=int(row["have"]), mean=round(float(row["mean"]), 4) if row["mean"] is not None else None)
        elif trait.type in (TEXT, BOOLEAN):
            groups = engine.rows(f"SELECT CAST({col} AS VARCHAR) AS v, COUNT(*) AS n FROM tl_traits WHERE {col} IS NOT NULL "
                                 f"GROUP BY 1 HAVING COUNT(*) >= {access.MIN_GROUP} ORDER BY n DESC, v LIMIT 20")
            have = int(engine.scalar(f"SELECT COUNT({col}) FROM tl_traits") or 0)
            shown = {r["v"]: int(r["n"]) for r in groups}
            entry.update(profiles=have, values=shown, other=have - sum(shown.values()))
        elif trait.type != LIST:
            entry.update(profiles=int(engine.scalar(f"SELECT COUNT({col}) FROM tl_traits") or 0))
        else:
            continue
        if entry["profiles"] < access.MIN_GROUP:
            entry = {"trait": name, "type": trait.type, "profiles": f"fewer than {access.MIN_GROUP}"}
        out.append(entry)
    return Answer({"profiles": total, "min_group": access.MIN_GROUP, "traits": out}, f"ok: {len(out)} traits")


def audit_entries(store: ProfileStore, call: Call) -> Answer:
    action = call.query.get("action")
    if action is not None and action not in audit.ACTIONS:
        raise Refused(400, "bad_parameter", f"action is one of {', '.join(audit.ACTIONS)}")
    found = audit.entries(store, action=action, limit=_bounded(call, "limit", 100, 1000) or None)
    return Answer({"entries": [e.to_dict() for e in found]}, f"ok: {len(found)} entries")


def revoke(store: ProfileStore, call: Call) -> Answer:
    token_id = call.path["token_id"]
    if not re.fullmatch(r"(tok_)?[0-9a-f]{8}", token_id):
        raise Refused(404, "unknown_token", "no token of that id")
    record = revoke_token(store, token_id)
    if record is None:
        raise Refused(404, "unknown_token", "no token of that id")
    return Answer({"revoked": record.who, "role": record.role}, "revoked", subject=audit.named("token", record.who))


def no_such_endpoint(store: ProfileStore, call: Call) -> Answer:
    raise Refused(404, "no_such_endpoint", "no such endpoint (GET /openapi.json lists them)")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    action: str  # the audit log's action, and the permission (access.PERMISSIONS)
    run: Callable[[ProfileStore, Call], Answer]
    summary: str
    body: dict[str, Any] | None = None  # the JSON body's schema (OpenAPI)
    query: tuple[str, ...] = ()


PERSON = {"type": "object", "required": ["reason"], "properties": {
    "email": {"type": "string", "example": "ana@example.com"}, "phone": {"type": "string", "example": "+14155550100"},
    "profile_id": {"type": "string", "example": "p0123456789abcde"}, "region": {"type": "string", "example": "US"},
    "reason": {"type": "string", "example": "ticket 4711: customer asked what we hold"}}}

ENDPOINTS = [
    Endpoint("POST", "/v1/lookup", "lookup", lookup,
             "One profile by one exact email, phone or profile id, with a reason. Support sees it masked.", PERSON),
    Endpoint("GET", "/v1/audiences", "sizes", sizes, "Every audience with its size at the last build."),
    Endpoint("GET", "/v1/audiences/{name}/preview", "preview", preview,
             "An audience evaluated now: size, why profiles were left out, overlap, a masked sample.", query=("sample",)),
    Endpoint("GET", "/v1/audiences/{name}/export", "export", export,
             "An audience's members at the last build, with email and phone.", query=("offset", "limit")),
    Endpoint("GET", "/v1/traits", "traits", traits,
             f"Aggregate traits: counts, means, and values held by at least {access.MIN_GROUP} profiles."),
    Endpoint("POST", "/v1/erasure", "erasure", erasure,
             "Erase a person (right to erasure): records deleted, identifiers tombstoned, store rebuilt.", PERSON),
    Endpoint("GET", "/v1/audit", "audit", audit_entries, "The newest audit log entries.", query=("action", "limit")),
    Endpoint("DELETE", "/v1/tokens/{token_id}", "token", revoke, "Revoke an API token: its next call is refused."),
]


# ------------------------------------------------------------------------------ the app


class LookupServer:
    def __init__(self, store: ProfileStore, rate: Rate) -> None:
        self.store = store
        self.rate = rate
        self.per_token = RateLimiter(rate)
        self.per_address = RateLimiter(rate)  # calls without a valid token, so guessing is as slow as using

    async def handle(self, request: Request, endpoint: Endpoint) -> Response:
        who, subject, reason = "anonymous", audit.Subject(), ""
        try:
            presented = request.headers.get("authorization", "")
            token = await run_in_threadpool(authenticate, self.store, presented[7:].strip()) \
                if presented[:7].lower() == "bearer " else None
            if token is not None:
                who = token.who
            wait = self.per_token.allow(token.token_id) if token else \
                self.per_address.allow(request.client.host if request.client else "?")
            if wait:
                raise Refused(429, "rate_limited", f"at most {self.rate} calls; try again later",
                              headers={"Retry-After": str(max(1, round(wait)))})
            if token is None:
                raise UNAUTHORIZED
            if token.role not in access.PERMISSIONS[endpoint.action]:
                raise Refused(403, "forbidden", f"the {token.role} role may not do this ({endpoint.action})")
            body = await self._body(request) if endpoint.method == "POST" else {}
            call = Call(token, body, dict(request.path_params), dict(request.query_params))
            answer = await run_in_threadpool(self._run, endpoint, call)
            subject, reason = answer.subject, answer.reason
            status, payload, result, headers = answer.status, answer.payload, answer.result, {}
        except Refused as refused:
            subject, reason = refused.subject, refused.reason or reason
            status, headers = refused.status, refused.headers
            payload = {"error": refused.code, "message": refused.message}
            result = f"refused {refused.status}: {refused.code}"
        except Exception as exc:  # a bug or the store failing: say nothing of it but that it happened
            logger.error("%s %s failed: %s", endpoint.method, endpoint.path, type(exc).__name__)
            status, headers, result = 500, {}, f"failed: {type(exc).__name__}"
            payload = {"error": "internal", "message": "the server could not answer; the call is in the audit log"}
        await run_in_threadpool(self._record, who, endpoint.action, subject, reason, result)
        return JSONResponse(payload, status_code=status, headers=headers)

    def _run(self, endpoint: Endpoint, call: Call) -> Answer:
        with self.store.lock:
            return endpoint.run(self.store, call)

    def _record(self, who: str, action: str, subject: audit.Subject, reason: str, result: str) -> None:
        audit.record(self.store, who=who, action=action, subject=subject, reason=reason, result=result)

    async def _body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise Refused(413, "too_large", f"the body is at most {MAX_BODY} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise Refused(413, "too_large", f"the body is at most {MAX_BODY} bytes")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise Refused(400, "bad_json", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "bad_json", "the body is a JSON object")
        return body


def _route(server: LookupServer, endpoint: Endpoint) -> Route:
    async def handler(request: Request) -> Response:
        return await server.handle(request, endpoint)

    roles = ", ".join(sorted(access.PERMISSIONS[endpoint.action]))
    spec: dict[str, Any] = {"summary": endpoint.summary, "description": f"Roles: {roles}. Audited as `{endpoint.action}`.",
                            "responses": {str(s): {"description": d} for s, d in RESPONSES.items()}}
    if endpoint.body:
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": endpoint.body}}}
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
              for p in re.findall(r"{(\w+)}", endpoint.path)]
    params += [{"name": q, "in": "query", "schema": {"type": "string" if q == "action" else "integer"}} for q in endpoint.query]
    if params:
        spec["parameters"] = params
    handler.__doc__ = endpoint.summary + "\n---\n" + json.dumps(spec)  # SchemaGenerator reads the part after ---
    return Route(endpoint.path, handler, methods=[endpoint.method], name=endpoint.action)


RESPONSES = {200: "the answer", 400: "malformed input, or a reason missing", 401: "no valid token",
             403: "the role may not do this, or the identifier is not exact", 404: "nobody or nothing of that name",
             429: "rate limited (Retry-After)"}


def create_app(store: ProfileStore, rate: Rate) -> Starlette:
    server = LookupServer(store, rate)
    schemas = SchemaGenerator({
        "openapi": "3.0.0",
        "info": {"title": "threadline profile lookup API", "version": "1",
                 "description": "Roles: support (one person, masked), marketer (aggregates), admin (everything). "
                                "Every call is in the audit log (`threadline audit`)."},
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
    })

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(schemas.get_schema(routes=app.routes))

    async def docs(request: Request) -> Response:
        return HTMLResponse(render_docs(schemas.get_schema(routes=app.routes)))

    routes = [_route(server, e) for e in ENDPOINTS]
    probe = Endpoint("GET", "/{rest:path}", "probe", no_such_endpoint, "")

    async def unknown(request: Request) -> Response:  # a path no endpoint has is audited too: probes show
        return await server.handle(request, probe)

    routes += [Route("/health", health, include_in_schema=False), Route("/openapi.json", openapi, include_in_schema=False),
               Route("/docs", docs, include_in_schema=False),
               Route("/{rest:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)]
    app = Starlette(routes=routes)
    return app


def render_docs(schema: dict[str, Any]) -> str:
    """The OpenAPI document as a page, without loading anything from elsewhere."""
    rows = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            fields = ", ".join(body.get("properties", {}))
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            rows.append(f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td><td>{html.escape(op.get('summary', ''))}"
                        f"<br><small>{html.escape(op.get('description', ''))}"
                        f"{' Body: ' + html.escape(fields) if fields else ''}{' Parameters: ' + html.escape(params) if params else ''}"
                        "</small></td></tr>")
    info = schema.get("info", {})
    return (f"<!doctype html><title>{html.escape(info.get('title', ''))}</title><h1>{html.escape(info.get('title', ''))}</h1>"
            f"<p>{html.escape(info.get('description', ''))} Send <code>Authorization: Bearer &lt;token&gt;</code>. "
            f"Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p><table border=1 cellpadding=6>{''.join(rows)}</table>")
