"""Meta's Graph API for Custom Audiences on loopback, for tests and demos
(`threadline sandbox meta_audiences`).

What it implements, as the Marketing API documents it (see README.md for the sources):

    GET    /{v}/{audience_id}?fields=...          id, name, subtype, operation_status, approximate counts
    POST   /{v}/{audience_id}/users               add members          payload={schema, data}, session={...}
    DELETE /{v}/{audience_id}/users               remove members       (payload in the body or the query string)
    POST   /{v}/{audience_id}/usersreplace        replace members      (session required)
    GET    /{v}/oauth/access_token                grant_type=fb_exchange_token → a fresh access token

- Parameters come from the query string and the body (JSON, or form-encoded with JSON-valued
  `payload` and `session`), as the Graph API reads them: facebook_business sends a DELETE's
  parameters in the query string and a POST's as a form. A path may end in `/` (the SDK's
  `api_get` asks for `/{v}/{id}/`).
- Versions: `v25.0` to `v27.0`, the Marketing API versions Meta serves on 2026-12-06; an older one
  answers (#2635) "You are calling a deprecated version of the Ads API".
- Auth: `Authorization: Bearer|OAuth <token>` or an `access_token` parameter; an unknown token
  answers 190, an expired one 190/463, a revoked one 190/460; a token without ads_management
  294; writes to an audience shared from another business 200. `appsecret_proof` (HMAC-SHA256
  of the token with the app secret) is checked when sent, and required when the sandbox is
  started with `require_appsecret_proof=True`.
- Payload: `schema` is one key or a list of keys; `data` holds positional rows (a flat list for
  one key). A row that is not a list of strings as long as the schema fails the whole request
  with (#100) "Data is missing or does not match schema"; more than 10,000 rows too. Each value
  of a hashed key must be "" or 64 lower-case hex characters (SHA-256); MADID a device id;
  EXTERN_ID any text. Rows with a bad value, no value at all, or a value on the refusal list
  (`refuse()`) are counted in `num_invalid_entries` and listed in `invalid_entry_samples` as
  `{"<the row's values joined by commas>": "<reason>"}` (at most INVALID_SAMPLES of them).
- Sessions `{session_id, batch_seq, last_batch_flag, estimated_num_total}`: a batch repeated in
  its session (a retry) is answered again without being applied twice; a new batch after the
  last one is refused. usersreplace applies its rows when the batch with `last_batch_flag`
  arrives: the audience becomes exactly those rows. While a replace session is open, adds,
  removes and other replaces of that audience are refused (100); a replace session that
  receives nothing for `replace_timeout` seconds lapses with the audience unchanged (the 90
  minutes used by default are this sandbox's assumption, not a documented Meta figure).
- Members: a person is identified by EMAIL, else PHONE, else EXTERN_ID, else MADID; a removal
  takes out everyone sharing one of those values with the row.
- Throttling: every answer carries `X-Business-Use-Case-Usage`; `inject_graph_error(80003, ...)`
  (or 4, 17, 613) answers with Meta's throttling error and `estimated_time_to_regain_access`;
  `inject_graph_error(1 | 2)` with Meta's transient errors. The base class's faults (503, 429,
  dropped connections) work too.

Tests expire the token in use with `expire_access_tokens()`, revoke every token with
`revoke_credentials()`, refuse a value with `refuse(key, value, reason)`, and read members back
with `audience_hashes()` / `members()`. Each is also a control endpoint
(`POST /_sandbox/<name>`) for a sandbox running in another process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

from threadline.sandbox import Reply, Sandbox, SandboxRequest

HASHED_KEYS = frozenset({"EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST", "ZIP",
                         "COUNTRY", "EMAIL_SHA256", "PHONE_SHA256"})
PLAIN_KEYS = frozenset({"EXTERN_ID", "MADID", "MOBILE_ADVERTISER_ID"})
MULTI_KEYS = frozenset({"EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST",
                        "ZIP", "MADID", "COUNTRY"})
ALIASES = {"EMAIL_SHA256": "EMAIL", "PHONE_SHA256": "PHONE", "MOBILE_ADVERTISER_ID": "MADID"}
STRONG_KEYS = ("EMAIL", "PHONE", "EXTERN_ID", "MADID")  # what identifies a person, in this order
HEX_DIGITS = "0123456789abcdef"
_MADID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_VERSION = r"v\d+\.0"
MISMATCH = "(#100) Data is missing or does not match schema"

# Meta's own wording and HTTP status for the errors the sandbox answers with.
GRAPH_ERRORS: dict[int, tuple[int, str, str]] = {
    1: (500, "OAuthException", "An unknown error occurred"),
    2: (503, "OAuthException", "An unexpected error has occurred. Please retry your request later."),
    4: (400, "OAuthException", "(#4) Application request limit reached"),
    17: (400, "OAuthException", "(#17) User request limit reached"),
    613: (400, "OAuthException", "(#613) Calls to this api have exceeded the rate limit."),
    80003: (400, "OAuthException", "(#80003) There have been too many calls to this ad-account. Wait a bit and "
                                   "try again. For more info, please refer to "
                                   "https://developers.facebook.com/docs/graph-api/overview/rate-limiting."),
    100: (400, "GraphMethodException", "(#100) Invalid parameter"),
    190: (400, "OAuthException", "Invalid OAuth access token - Cannot parse access token"),
    200: (403, "OAuthException", "(#200) Permissions error"),
    294: (403, "OAuthException", "(#294) Managing advertisements requires the extended permission ads_management "
                                 "and an application that is whitelisted to access the Ads API"),
}
TRANSIENT = frozenset({1, 2, 4, 17, 613, 80003})


class GraphError(Exception):
    """Raised inside the sandbox to answer with a Graph API error body."""

    def __init__(self, code: int, message: str | None = None, *, subcode: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        status, kind, default = GRAPH_ERRORS.get(code, (400, "OAuthException", f"(#{code}) Error"))
        super().__init__(message or default)
        self.code, self.subcode, self.status, self.kind = code, subcode, status, kind
        self.message = message or default
        self.headers = headers or {}

    def reply(self) -> Reply:
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.code in TRANSIENT:
            error["is_transient"] = True
        error["fbtrace_id"] = uuid.uuid4().hex[:11]
        headers = dict(self.headers)
        if self.code in (104, 190):
            headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{self.message}"'
        return Reply.json({"error": error}, self.status, headers)


@dataclass
class Token:
    business: str
    scopes: frozenset[str] = frozenset({"ads_management", "ads_read"})
    state: str = "valid"  # valid | expired | revoked


@dataclass
class Audience:
    id: str
    name: str
    business: str
    subtype: str = "CUSTOM"
    shared_with: frozenset[str] = frozenset()  # businesses that may read (not edit) it
    members: dict[Any, dict[str, str]] = field(default_factory=dict)  # identity → {key: value}
    index: dict[tuple[str, str], set[Any]] = field(default_factory=dict)  # (key, value) → identities

    def put(self, row: dict[str, str]) -> None:
        identity = identity_of(row)
        old = self.members.get(identity)
        if old is not None:
            self._unindex(identity, old)
        self.members[identity] = row
        for key in STRONG_KEYS:
            if row.get(key):
                self.index.setdefault((key, row[key]), set()).add(identity)

    def take_out(self, row: dict[str, str]) -> int:
        found = {i for key in STRONG_KEYS if row.get(key) for i in self.index.get((key, row[key]), ())}
        if not any(row.get(key) for key in STRONG_KEYS):
            found = {identity_of(row)} & set(self.members)
        for identity in found:
            self._unindex(identity, self.members.pop(identity))
        return len(found)

    def replace(self, rows: list[dict[str, str]]) -> None:
        self.members.clear()
        self.index.clear()
        for row in rows:
            self.put(row)

    def _unindex(self, identity: Any, row: dict[str, str]) -> None:
        for key in STRONG_KEYS:
            holders = self.index.get((key, row.get(key, "")))
            if holders is not None:
                holders.discard(identity)


@dataclass
class UploadSession:
    kind: str  # add | remove | replace
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)  # batch_seq → its answer
    closed: bool = False
    touched: float = field(default_factory=time.monotonic)
    pending: list[dict[str, str]] = field(default_factory=list)  # a replace's rows until it ends


def identity_of(row: dict[str, str]) -> Any:
    for key in STRONG_KEYS:
        if row.get(key):
            return (key, row[key])
    return tuple(sorted((k, v) for k, v in row.items() if v))


class MetaSandbox(Sandbox):
    """Custom Audiences behind Meta's documented Graph API (see the module docstring)."""

    name = "meta_audiences"
    API_VERSION = "v27.0"
    # Marketing API versions served on 2026-12-06: v25.0 (expires 2027-02-23) to v27.0; older
    # ones answer Meta's (#2635) deprecated-version error.
    OLDEST_VERSION = 25
    BUSINESS_ID = "100200300400500"
    OTHER_BUSINESS_ID = "900800700600500"
    APP_ID = "1357913579135791"
    APP_SECRET = "sandbox-app-secret-5f3c2a1b0e9d8c7b"
    ACCESS_TOKEN = "EAAsandboxSystemUserToken0001"  # the business's system-user token
    EXCHANGE_TOKEN = "EAAsandboxLongLivedToken0002"  # long-lived, for fb_exchange_token
    NO_ADS_TOKEN = "EAAsandboxNoAdsManagement0003"  # lacks ads_management → 294
    AUDIENCE_ID = "23851234567890001"  # a customer-file audience of the business
    SHARED_AUDIENCE_ID = "23851234567890002"  # shared by another business: readable, not editable → 200
    WEBSITE_AUDIENCE_ID = "23851234567890003"  # a website audience: no uploads
    MAX_ROWS = 10_000
    INVALID_SAMPLES = 100  # how many invalid rows an answer lists (this sandbox's choice)
    CALLS_PER_HOUR = 10_000  # the nominal budget the usage header's call_count is a share of

    _ROUTES: ClassVar[list[tuple[str, re.Pattern[str], str]]] = [
        ("GET", re.compile(rf"^/{_VERSION}/oauth/access_token$"), "_exchange_token"),
        ("GET", re.compile(rf"^/{_VERSION}/(\d+)$"), "_read_audience"),
        ("POST", re.compile(rf"^/{_VERSION}/(\d+)/users$"), "_add_users"),
        ("DELETE", re.compile(rf"^/{_VERSION}/(\d+)/users$"), "_remove_users"),
        ("POST", re.compile(rf"^/{_VERSION}/(\d+)/usersreplace$"), "_replace_users"),
    ]

    def __init__(self, *, seed: int = 0, port: int = 0, require_appsecret_proof: bool = False,
                 replace_timeout: float = 5400.0) -> None:
        self.require_appsecret_proof = require_appsecret_proof
        self.replace_timeout = replace_timeout
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        self.tokens: dict[str, Token] = {
            self.ACCESS_TOKEN: Token(self.BUSINESS_ID),
            self.EXCHANGE_TOKEN: Token(self.BUSINESS_ID),
            self.NO_ADS_TOKEN: Token(self.BUSINESS_ID, scopes=frozenset({"ads_read"})),
        }
        self.audiences: dict[str, Audience] = {
            self.AUDIENCE_ID: Audience(self.AUDIENCE_ID, "Loyal customers", self.BUSINESS_ID),
            self.SHARED_AUDIENCE_ID: Audience(self.SHARED_AUDIENCE_ID, "Partner list", self.OTHER_BUSINESS_ID,
                                              shared_with=frozenset({self.BUSINESS_ID})),
            self.WEBSITE_AUDIENCE_ID: Audience(self.WEBSITE_AUDIENCE_ID, "Site visitors", self.BUSINESS_ID,
                                               subtype="WEBSITE"),
        }
        self.sessions: dict[tuple[str, int], UploadSession] = {}
        self.refused: dict[tuple[str, str], str] = {}
        self.graph_faults: list[dict[str, Any]] = []
        self.exchanges = 0
        self.calls = 0
        self.last_business = self.BUSINESS_ID

    def secrets(self) -> list[str]:
        return [self.APP_SECRET, *self.tokens]

    # ------------------------------------------------------------------ what tests do

    def audience_hashes(self, audience_id: str | None = None) -> set[str]:
        """The EMAIL values (hashes) of everyone in the audience."""
        with self._lock:
            members = self.audiences[audience_id or self.AUDIENCE_ID].members.values()
            return {m["EMAIL"] for m in members if m.get("EMAIL")}

    def members(self, audience_id: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [dict(m) for m in self.audiences[audience_id or self.AUDIENCE_ID].members.values()]

    def open_sessions(self) -> list[tuple[str, int, str]]:
        """(audience id, session id, kind) of every session that has not ended."""
        with self._lock:
            return [(aid, sid, s.kind) for (aid, sid), s in self.sessions.items() if not s.closed]

    def expire_access_tokens(self) -> None:
        """Every valid token but the long-lived exchange token expires now (190/463 from here on)."""
        with self._lock:
            for value, token in self.tokens.items():
                if token.state == "valid" and value != self.EXCHANGE_TOKEN:
                    token.state = "expired"

    def revoke_credentials(self) -> None:
        """Every token, the exchange token included, is invalidated (190/460)."""
        with self._lock:
            for token in self.tokens.values():
                token.state = "revoked"

    def refuse(self, key: str, value: str, reason: str = "") -> str:
        """Rows whose `key` holds `value` are counted invalid with `reason`; returns the reason."""
        reason = reason or f"Invalid entry for {key}"
        with self._lock:
            self.refused[(key, value)] = reason
        return reason

    def inject_graph_error(self, code: int, *, times: int = 1, subcode: int | None = None,
                           regain_minutes: int = 0, message: str | None = None) -> None:
        """The next `times` calls to an audience answer with Graph error `code` (throttling codes
        carry `estimated_time_to_regain_access: regain_minutes` in X-Business-Use-Case-Usage)."""
        with self._lock:
            self.graph_faults.append({"code": code, "times": times, "subcode": subcode,
                                      "regain_minutes": regain_minutes, "message": message})

    def control_expire(self, body: dict[str, Any]) -> dict[str, Any]:
        self.expire_access_tokens()
        return {"expired": True}

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    def control_refuse(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"reason": self.refuse(str(body["key"]), str(body["value"]), str(body.get("reason") or ""))}

    def control_graph_error(self, body: dict[str, Any]) -> dict[str, Any]:
        self.inject_graph_error(int(body["code"]), times=int(body.get("times", 1)), subcode=body.get("subcode"),
                                regain_minutes=int(body.get("regain_minutes", 0)), message=body.get("message"))
        return {"queued": body}

    def control_members(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"emails": sorted(self.audience_hashes(body.get("audience_id")))}

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, req: SandboxRequest) -> Reply:
        """Graph paths carry ids, so routes are patterns; errors are Graph error bodies."""
        path = req.path.rstrip("/") or "/"  # the Graph API routes /{v}/{id}/ as /{v}/{id}
        version = re.match(r"^/v(\d+)\.0/", path + "/")
        if version and int(version[1]) < self.OLDEST_VERSION and not path.endswith("/oauth/access_token"):
            return GraphError(2635, f"(#2635) You are calling a deprecated version of the Ads API. Please update "
                                    f"to the latest version: {self.API_VERSION}.").reply()
        for method, pattern, handler in self._ROUTES:
            match = pattern.match(path)
            if match and method == req.method:
                try:
                    if handler != "_exchange_token":
                        self._take_graph_fault()
                    reply = getattr(self, handler)(req, *match.groups())
                except GraphError as exc:
                    reply = exc.reply()
                reply.headers.setdefault("X-Business-Use-Case-Usage", self._usage(0))
                return reply
        if any(pattern.match(path) for _, pattern, _ in self._ROUTES):
            return GraphError(100, f"(#100) Unsupported {req.method.lower()} request.").reply()
        return GraphError(2500, "(#2500) Unknown path components: " + req.path).reply()

    def _take_graph_fault(self) -> None:
        with self._lock:
            self.calls += 1
            if not self.graph_faults:
                return
            fault = self.graph_faults[0]
            fault["times"] -= 1
            if fault["times"] <= 0:
                self.graph_faults.pop(0)
        headers = {}
        if fault["code"] in (4, 17, 613, 80003):
            headers["X-Business-Use-Case-Usage"] = self._usage(fault["regain_minutes"], full=True)
        raise GraphError(fault["code"], fault["message"], subcode=fault["subcode"], headers=headers)

    def _usage(self, regain_minutes: int, full: bool = False) -> str:
        share = 100 if full else min(100, self.calls * 100 // self.CALLS_PER_HOUR)
        return json.dumps({self.last_business: [{
            "type": "custom_audience", "call_count": share, "total_cputime": share // 2, "total_time": share // 2,
            "estimated_time_to_regain_access": regain_minutes}]})

    # ------------------------------------------------------------------ auth

    def _params(self, req: SandboxRequest) -> dict[str, Any]:
        """Query and body parameters (JSON, or form-encoded with JSON-valued fields)."""
        params: dict[str, Any] = {k: _json_valued(k, v[0]) for k, v in req.query.items()}
        if not req.body:
            return params
        if "json" in req.headers.get("content-type", ""):
            try:
                body = json.loads(req.body)
            except ValueError:
                raise GraphError(100, "(#100) The request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise GraphError(100, "(#100) The request body must be a JSON object")
            return {**params, **body}
        for key, values in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items():
            params[key] = _json_valued(key, values[0])
        return params

    def _token(self, req: SandboxRequest, params: dict[str, Any]) -> Token:
        auth = req.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        value = value.strip() if scheme.lower() in ("bearer", "oauth") else str(params.get("access_token") or "")
        if not value:
            raise GraphError(104, "An access token is required to request this resource.")
        with self._lock:
            token = self.tokens.get(value)
        if token is None:
            raise GraphError(190)
        if token.state == "expired":
            raise GraphError(190, "Error validating access token: Session has expired on Monday, 01-Jan-24 "
                                  "00:00:00 PST. The current time is later.", subcode=463)
        if token.state == "revoked":
            raise GraphError(190, "Error validating access token: The session has been invalidated because the "
                                  "user changed their password or Facebook has changed the session for security "
                                  "reasons.", subcode=460)
        proof = params.get("appsecret_proof")
        if proof is not None:
            expected = hmac.new(self.APP_SECRET.encode(), value.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(str(proof), expected):
                raise GraphError(100, "Invalid appsecret_proof provided in the API argument")
        elif self.require_appsecret_proof:
            raise GraphError(100, "API calls from the server require an appsecret_proof argument")
        return token

    def _audience(self, audience_id: str, token: Token, *, write: bool) -> Audience:
        audience = self.audiences.get(audience_id)
        readable = audience is not None and (audience.business == token.business or token.business in audience.shared_with)
        if audience is None or not readable:
            raise GraphError(100, f"Unsupported get request. Object with ID '{audience_id}' does not exist, cannot "
                                  "be loaded due to missing permissions, or does not support this operation. Please "
                                  "read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                             subcode=33)
        self.last_business = audience.business
        if write:
            if "ads_management" not in token.scopes:
                raise GraphError(294)
            if audience.business != token.business:
                raise GraphError(200, "(#200) The user does not have permission to edit this audience: it is shared "
                                      "with your business, not owned by it")
            if audience.subtype != "CUSTOM":
                raise GraphError(100, f"(#100) Users can only be uploaded to a customer-file custom audience; this "
                                      f"audience's subtype is {audience.subtype}")
        return audience

    # ------------------------------------------------------------------ routes

    def _exchange_token(self, req: SandboxRequest) -> Reply:
        params = self._params(req)
        if params.get("grant_type") != "fb_exchange_token":
            raise GraphError(100, "(#100) grant_type must be fb_exchange_token")
        if params.get("client_id") != self.APP_ID:
            raise GraphError(101, "Error validating application. Invalid application ID.")
        if params.get("client_secret") != self.APP_SECRET:
            raise GraphError(1, "Error validating client secret.")
        with self._lock:
            seed = self.tokens.get(str(params.get("fb_exchange_token") or ""))
            if seed is None or seed.state != "valid":
                raise GraphError(190, "Error validating access token: the token to exchange is not valid", subcode=463
                                 if seed is not None and seed.state == "expired" else None)
            self.exchanges += 1
            fresh = f"EAAsandboxRenewed{self.exchanges:04d}{uuid.uuid4().hex[:12]}"
            self.tokens[fresh] = Token(seed.business, seed.scopes)
        return Reply.json({"access_token": fresh, "token_type": "bearer", "expires_in": 5183944})

    def _read_audience(self, req: SandboxRequest, audience_id: str) -> Reply:
        params = self._params(req)
        token = self._token(req, params)
        with self._lock:
            audience = self._audience(audience_id, token, write=False)
            count = len(audience.members)
        view = {
            "id": audience.id, "name": audience.name, "subtype": audience.subtype,
            "operation_status": {"code": 200, "description": "Normal"},
            "approximate_count_lower_bound": count, "approximate_count_upper_bound": count,
        }
        wanted = [f for f in str(params.get("fields") or "id").split(",") if f]
        return Reply.json({k: view[k] for k in wanted if k in view} | {"id": audience.id})

    def _add_users(self, req: SandboxRequest, audience_id: str) -> Reply:
        return self._upload(req, audience_id, "add")

    def _remove_users(self, req: SandboxRequest, audience_id: str) -> Reply:
        return self._upload(req, audience_id, "remove")

    def _replace_users(self, req: SandboxRequest, audience_id: str) -> Reply:
        return self._upload(req, audience_id, "replace")

    def _upload(self, req: SandboxRequest, audience_id: str, kind: str) -> Reply:
        params = self._params(req)
        token = self._token(req, params)
        schema, data = self._payload(params)
        session_spec = self._session_spec(params, required=kind == "replace")
        rows, invalid = self._check_rows(schema, data)
        with self._lock:
            audience = self._audience(audience_id, token, write=True)
            self._lapse_idle_replaces()
            session = self._session(audience_id, kind, session_spec)
            if session is not None and session_spec["batch_seq"] in session.answers:
                return Reply.json(session.answers[session_spec["batch_seq"]])  # a retried batch
            if session is not None and session.closed:
                raise GraphError(100, f"(#100) Upload session {session_spec['session_id']} has ended: its last batch "
                                      "was received")
            if kind == "add":
                for row in rows:
                    audience.put(row)
            elif kind == "remove":
                for row in rows:
                    audience.take_out(row)
            else:
                session.pending.extend(rows)
            answer = {
                "audience_id": audience_id,
                "session_id": str(session_spec["session_id"]) if session_spec else str(uuid.uuid4().int >> 65),
                "num_received": len(data), "num_invalid_entries": len(invalid),
                "invalid_entry_samples": dict(list(invalid.items())[: self.INVALID_SAMPLES]),
            }
            if session is not None:
                session.answers[session_spec["batch_seq"]] = answer
                session.touched = time.monotonic()
                if session_spec["last_batch_flag"]:
                    session.closed = True
                    if kind == "replace":
                        audience.replace(session.pending)
                        session.pending = []
        return Reply.json(answer)

    # ------------------------------------------------------------------ payload and sessions

    def _payload(self, params: dict[str, Any]) -> tuple[list[str], list[Any]]:
        payload = params.get("payload")
        if payload is None:
            raise GraphError(100, "(#100) The parameter payload is required")
        if not isinstance(payload, dict):
            raise GraphError(100, "(#100) param payload must be a JSON object with schema and data")
        schema, data = payload.get("schema"), payload.get("data")
        keys = [schema] if isinstance(schema, str) else schema
        allowed = HASHED_KEYS | PLAIN_KEYS if isinstance(schema, str) else MULTI_KEYS
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k in allowed for k in keys) \
                or len(set(keys)) != len(keys):
            raise GraphError(100, f"(#100) Invalid schema {json.dumps(schema)[:200]}: use one of "
                                  f"{', '.join(sorted(allowed))}, each at most once")
        if not isinstance(data, list) or not data:
            raise GraphError(100, MISMATCH)
        if len(data) > self.MAX_ROWS:
            raise GraphError(100, f"(#100) Too many users in one request: {len(data)}; at most {self.MAX_ROWS}")
        if isinstance(schema, str):
            data = [[value] for value in data]
        for row in data:
            if not isinstance(row, list) or len(row) != len(keys) or not all(isinstance(v, str) for v in row):
                raise GraphError(100, MISMATCH)
        return [ALIASES.get(k, k) for k in keys], data

    def _check_rows(self, keys: list[str], data: list[list[str]]) -> tuple[list[dict[str, str]], dict[str, str]]:
        """Valid rows as {key: value}, and the invalid ones as {joined row: reason}."""
        hashed = [k in HASHED_KEYS for k in keys]
        with self._lock:
            refused = dict(self.refused)
        rows, invalid = [], {}
        for values in data:
            reason = None
            if not any(values):
                reason = "No identifier: every value in the row is empty"
            for key, value, must_hash in zip(keys, values, hashed):
                if reason or not value:
                    continue
                if must_hash and (len(value) != 64 or value.strip(HEX_DIGITS)):  # SHA-256 as lower-case hex
                    reason = f"Invalid {key}: not a SHA-256 hash (64 lower-case hex characters)"
                elif key == "MADID" and not _MADID.fullmatch(value):
                    reason = "Invalid MADID: not a mobile advertiser id"
                elif (key, value) in refused:
                    reason = refused[(key, value)]
            if reason:
                invalid[",".join(values)] = reason
            else:
                rows.append({k: v for k, v in zip(keys, values) if v})
        return rows, invalid

    @staticmethod
    def _session_spec(params: dict[str, Any], *, required: bool) -> dict[str, Any] | None:
        spec = params.get("session")
        if spec is None:
            if required:
                raise GraphError(100, "(#100) The parameter session is required")
            return None
        try:
            parsed = {"session_id": int(spec["session_id"]), "batch_seq": int(spec["batch_seq"]),
                      "last_batch_flag": bool(spec.get("last_batch_flag", False)),
                      "estimated_num_total": int(spec.get("estimated_num_total") or 0)}
        except (TypeError, KeyError, ValueError):
            raise GraphError(100, "(#100) param session must be {session_id, batch_seq, last_batch_flag, "
                                  "estimated_num_total} with integer ids") from None
        if parsed["batch_seq"] < 1 or parsed["session_id"] < 1:
            raise GraphError(100, "(#100) session_id and batch_seq must be positive integers (batch_seq from 1)")
        return parsed

    def _session(self, audience_id: str, kind: str, spec: dict[str, Any] | None) -> UploadSession | None:
        replacing = [sid for (aid, sid), s in self.sessions.items()
                     if aid == audience_id and s.kind == "replace" and not s.closed]
        if spec is None:
            if replacing:
                raise GraphError(100, f"(#100) The audience is being replaced (session {replacing[0]}): wait for "
                                      "the replace session to end")
            return None
        key = (audience_id, spec["session_id"])
        session = self.sessions.get(key)
        if session is None:
            if replacing:
                raise GraphError(100, f"(#100) The audience is being replaced (session {replacing[0]}): wait for "
                                      "the replace session to end")
            session = self.sessions[key] = UploadSession(kind)
        elif session.kind != kind:
            raise GraphError(100, f"(#100) Upload session {spec['session_id']} belongs to another operation "
                                  f"({session.kind})")
        return session

    def _lapse_idle_replaces(self) -> None:
        now = time.monotonic()
        for session in self.sessions.values():
            if session.kind == "replace" and not session.closed and now - session.touched > self.replace_timeout:
                session.closed, session.pending = True, []


def _json_valued(key: str, value: str) -> Any:
    """`payload` and `session` are JSON objects wherever they come from (query or form)."""
    if key not in ("payload", "session"):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise GraphError(100, f"(#100) param {key} must be a JSON object") from None
