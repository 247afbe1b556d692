"""LinkedIn's Marketing API DMP segments and OAuth token endpoint on loopback
(`threadline sandbox linkedin_audiences`).

What it implements, as LinkedIn documents it (URLs in the README):

    POST /oauth/v2/accessToken                    form: grant_type=refresh_token, refresh_token, client_id,
                                                  client_secret → {access_token, expires_in, refresh_token, ...}
    GET  /rest/dmpSegments/{id}                   the segment
    GET  /rest/dmpSegments?q=account&account=urn:li:sponsoredAccount:{id}&start=&count=
                                                  {elements: [...], paging: {start, count, total}}
    POST /rest/dmpSegments                        {name, sourcePlatform, account, accessPolicy, type, destinations}
                                                  → 201, the new id in the x-restli-id header
    POST /rest/dmpSegments/{id}/users             X-RestLi-Method: BATCH_CREATE,
                                                  {elements: [{action: ADD|REMOVE, userIds: [{idType, idValue}],
                                                  firstName?, lastName?, country?}]}
                                                  → 200 {elements: [{status: 201} | {status: 400, message, error}]}

- Every /rest call needs `Authorization: Bearer`, `LinkedIn-Version: YYYYMM` (missing → 400
  VERSION_MISSING; outside `active_versions` → 426 NONEXISTENT_VERSION) and
  `X-Restli-Protocol-Version: 2.0.0`. Token errors are 401 with LinkedIn's service error codes:
  65600 INVALID_ACCESS_TOKEN, 65601 REVOKED_ACCESS_TOKEN, 65602 EXPIRED_ACCESS_TOKEN.
- Access tokens come from the refresh-token flow (client id and secret in the form body); an
  unknown client is 401 invalid_client, a refused refresh token 400 invalid_grant.
  `expire_tokens()` expires every token issued so far; `revoke_credentials()` also refuses the
  refresh token.
- The users endpoint takes at most `MAX_BATCH_ELEMENTS` elements (more → 400), at most
  `rate_limit` calls per member per window (default 600 a minute, LinkedIn's documented limit;
  beyond → 429 TOO_MANY_REQUESTS), and answers each element on its own: a malformed element (or
  one `reject()` marked) gets status 400 with a message while the rest are applied. A segment
  accepts users only `ready_after` seconds after it was created (LinkedIn: "wait 5 seconds");
  before that the users call is 404.
- The member authorizing may use ad account `AD_ACCOUNT_ID`; `OTHER_AD_ACCOUNT_ID` exists but
  the member has no role on it (403). Members are kept per segment as email hashes:
  `segment_hashes(segment_id)` reads them back.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from typing import Any, ClassVar
from urllib.parse import parse_qs

from threadline.sandbox import Reply, Sandbox, SandboxRequest
from threadline.secrets import register_secret

HEX = {"SHA256_EMAIL": re.compile(r"^[0-9a-f]{64}$"), "SHA512_EMAIL": re.compile(r"^[0-9a-f]{128}$")}
ID_TYPES = frozenset({"SHA256_EMAIL", "SHA512_EMAIL", "GOOGLE_AID"})
SEGMENT_PATH = re.compile(r"^/rest/dmpSegments/(?P<id>\d+)(?P<users>/users)?$")
# The Marketing versions LinkedIn serves on 2026-12-06 (its migrations page: each is sunset about a year
# after release; 202511 was sunset on 2026-11-16, 202512 goes on 2026-12-15): 202512-202612.
DEFAULT_VERSIONS = tuple(f"{y}{m:02d}" for y, m in itertools.product((2025, 2026), range(1, 13)))[11:]


def error(status: int, code: str, message: str, service_code: int | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    return Reply.json(body, status, headers)


class LinkedInAudiencesSandbox(Sandbox):
    """DMP segments behind LinkedIn's documented contract (see the module docstring)."""

    name = "linkedin_audiences"
    CLIENT_ID = "78sandboxclient"
    CLIENT_SECRET = "li-sandbox-secret-5e2c9b1d7a3f"
    REFRESH_TOKEN = "AQWsandbox-refresh-token-3b8e6f2a9c1d4e7f"
    AD_ACCOUNT_ID = "512345678"
    OTHER_AD_ACCOUNT_ID = "599999999"
    SEGMENT_ID = "21000001"
    SEGMENT_NAME = "threadline demo"
    COMPANY_SEGMENT_ID = "21000002"
    MAX_BATCH_ELEMENTS: ClassVar[int] = 5000

    def __init__(self, *, seed: int = 0, port: int = 0, rate_limit: tuple[int, float] = (600, 60.0),
                 ready_after: float = 5.0, token_lifetime: int = 5_184_000,
                 active_versions: tuple[str, ...] = DEFAULT_VERSIONS) -> None:
        self.rate_limit, self.ready_after, self.token_lifetime = rate_limit, ready_after, token_lifetime
        self.active_versions = active_versions
        self._calls_lock = threading.Lock()
        super().__init__(seed=seed, port=port)

    def seed_data(self) -> None:
        for secret in (self.CLIENT_SECRET, self.REFRESH_TOKEN):
            register_secret(secret)
        self._tokens: dict[str, float] = {}  # access token → when it expires (time.time())
        self._revoked = False
        self._rejects: dict[str, str] = {}  # email hash → the message its element is refused with
        self._calls: deque[float] = deque()  # the users calls of the one member every token here acts for
        self._next_id = int(self.COMPANY_SEGMENT_ID) + 1
        self._segments: dict[str, dict[str, Any]] = {
            self.SEGMENT_ID: self._new_segment(self.SEGMENT_ID, self.SEGMENT_NAME, "USER", ready_at=0.0),
            self.COMPANY_SEGMENT_ID: self._new_segment(self.COMPANY_SEGMENT_ID, "threadline accounts", "COMPANY",
                                                       ready_at=0.0),
        }

    def _new_segment(self, segment_id: str, name: str, kind: str, *, ready_at: float,
                     account: str | None = None, source: str = "THREADLINE") -> dict[str, Any]:
        return {"id": int(segment_id), "name": name, "type": kind, "accessPolicy": "PRIVATE",
                "account": account or f"urn:li:sponsoredAccount:{self.AD_ACCOUNT_ID}", "sourcePlatform": source,
                "destinations": [{"destination": "LINKEDIN", "status": "BUILDING"}],
                "_ready_at": ready_at, "_hashes": set()}

    def secrets(self) -> list[str]:
        return [self.CLIENT_SECRET, self.REFRESH_TOKEN, *self._tokens]

    # ------------------------------------------------------------------ what tests use

    def segment_hashes(self, segment_id: str) -> set[str]:
        """The SHA256_EMAIL values the segment holds now."""
        with self._lock:
            return set(self._segments[segment_id]["_hashes"])

    def segment_names(self) -> dict[str, str]:
        with self._lock:
            return {str(s["id"]): s["name"] for s in self._segments.values()}

    def reject(self, email_hash: str, message: str = "The idValue of userIds[0] is not a valid hashed email") -> str:
        """Refuse the element carrying this SHA256_EMAIL with status 400 and `message`."""
        with self._lock:
            self._rejects[email_hash] = message
        return message

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def control_expire_tokens(self, body: dict[str, Any]) -> dict[str, Any]:
        self.expire_tokens()
        return {"expired": True}

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, req: SandboxRequest) -> Reply:
        if req.path == "/oauth/v2/accessToken" and req.method == "POST":
            return self._token(req)
        if not req.path.startswith("/rest/"):
            return error(404, "NOT_FOUND", f"No resource found at {req.path}")
        refused = self._refusal(req)
        if refused is not None:
            return refused
        if req.path == "/rest/dmpSegments":
            if req.method == "GET" and req.param("q") == "account":
                return self._find(req)
            if req.method == "POST":
                return self._create(req)
        match = SEGMENT_PATH.match(req.path)
        if match and req.method == "GET" and not match.group("users"):
            return self._get(match.group("id"))
        if match and req.method == "POST" and match.group("users"):
            return self._users(req, match.group("id"))
        return error(404, "NOT_FOUND", f"No resource found for {req.method} {req.path}")

    def _token(self, req: SandboxRequest) -> Reply:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            return Reply.json({"error": "unsupported_grant_type", "error_description": "grant_type must be "
                               "refresh_token or authorization_code"}, 400)
        if form.get("client_id") != self.CLIENT_ID or form.get("client_secret") != self.CLIENT_SECRET:
            return Reply.json({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
        with self._lock:
            if self._revoked or form.get("refresh_token") != self.REFRESH_TOKEN:
                return Reply.json({"error": "invalid_grant", "error_description": "The provided authorization grant "
                                   "or refresh token is invalid, expired or revoked"}, 400)
            token = f"AQVsandbox{len(self._tokens) + 1:04d}x{int(time.time() * 1000) % 10**9:09d}"
            self._tokens[token] = time.time() + self.token_lifetime
        register_secret(token)
        return Reply.json({"access_token": token, "expires_in": self.token_lifetime,
                           "refresh_token": self.REFRESH_TOKEN, "refresh_token_expires_in": 31_536_000})

    def _refusal(self, req: SandboxRequest) -> Reply | None:
        given = req.headers.get("authorization", "")
        token = given[7:] if given.startswith("Bearer ") else ""
        with self._lock:
            expires = self._tokens.get(token)
            revoked = self._revoked
        if expires is None:
            return error(401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600)
        if revoked:
            return error(401, "REVOKED_ACCESS_TOKEN", "The token used in the request has been revoked by the user",
                         65601)
        if time.time() >= expires:
            return error(401, "EXPIRED_ACCESS_TOKEN", "The token used in the request has expired", 65602)
        version = req.headers.get("linkedin-version")
        if not version:
            return error(400, "VERSION_MISSING", "A version must be present. Please specify a version by adding "
                         "the LinkedIn-Version header.")
        if version not in self.active_versions:
            return error(426, "NONEXISTENT_VERSION", f"Requested version {version} is not active")
        if req.headers.get("x-restli-protocol-version") != "2.0.0":
            return error(400, "ILLEGAL_ARGUMENT", "This resource requires the header X-Restli-Protocol-Version: 2.0.0")
        return None

    # ------------------------------------------------------------------ segments

    def _visible(self, segment: dict[str, Any]) -> bool:
        return segment["account"] == f"urn:li:sponsoredAccount:{self.AD_ACCOUNT_ID}"

    @staticmethod
    def _public(segment: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in segment.items() if not k.startswith("_")}
        out["destinations"] = [{**d, "audienceSize": len(segment["_hashes"])} for d in segment["destinations"]]
        return out

    def _get(self, segment_id: str) -> Reply:
        with self._lock:
            segment = self._segments.get(segment_id)
            if segment is None:
                return error(404, "NOT_FOUND", f"DmpSegment {segment_id} does not exist")
            if not self._visible(segment):
                return error(403, "ACCESS_DENIED", f"Not enough permissions to access dmpSegment {segment_id}")
            return Reply.json(self._public(segment))

    def _find(self, req: SandboxRequest) -> Reply:
        account = req.param("account", "") or ""
        if account != f"urn:li:sponsoredAccount:{self.AD_ACCOUNT_ID}":
            return error(403, "ACCESS_DENIED", f"Not enough permissions to access dmpSegments of {account}")
        start, count = req.int_param("start", 0), req.int_param("count", 10)
        with self._lock:
            found = [self._public(s) for s in self._segments.values() if s["account"] == account]
        return Reply.json({"elements": found[start:start + count],
                           "paging": {"start": start, "count": count, "total": len(found)}})

    def _create(self, req: SandboxRequest) -> Reply:
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            return error(400, "ILLEGAL_ARGUMENT", "The request body is not valid JSON")
        missing = [k for k in ("name", "sourcePlatform", "account", "accessPolicy", "type", "destinations")
                   if not body.get(k)]
        if missing:
            return error(400, "FIELD_VALUE_MISSING", f"Field(s) {missing} are required")
        if body["account"] != f"urn:li:sponsoredAccount:{self.AD_ACCOUNT_ID}":
            return error(403, "ACCESS_DENIED", f"Not enough permissions to create dmpSegments in {body['account']}")
        if body["type"] not in ("USER", "COMPANY"):
            return error(400, "INVALID_VALUE", f"type {body['type']!r} is not USER or COMPANY")
        with self._lock:
            segment_id = str(self._next_id)
            self._next_id += 1
            self._segments[segment_id] = self._new_segment(
                segment_id, str(body["name"]), body["type"], ready_at=time.time() + self.ready_after,
                account=body["account"], source=str(body["sourcePlatform"]))
        return Reply(201, b"", {"x-restli-id": segment_id, "x-linkedin-id": segment_id})

    # ------------------------------------------------------------------ users

    def _throttled(self) -> bool:
        calls, window = self.rate_limit
        now = time.monotonic()
        with self._calls_lock:
            recent = self._calls
            while recent and now - recent[0] >= window:
                recent.popleft()
            if len(recent) >= calls:
                return True
            recent.append(now)
            return False

    def _users(self, req: SandboxRequest, segment_id: str) -> Reply:
        if (req.headers.get("x-restli-method") or "").upper() != "BATCH_CREATE":
            return error(400, "ILLEGAL_ARGUMENT", "Adding users to a DMP segment is a batch create: send "
                         "X-RestLi-Method: BATCH_CREATE with {\"elements\": [...]}")
        with self._lock:
            segment = self._segments.get(segment_id)
            if segment is None or time.time() < segment["_ready_at"]:
                return error(404, "NOT_FOUND", f"DmpSegment {segment_id} does not exist")
            if not self._visible(segment):
                return error(403, "ACCESS_DENIED", f"Not enough permissions to access dmpSegment {segment_id}")
            if segment["type"] != "USER":
                return error(400, "INVALID_VALUE", f"DmpSegment {segment_id} is a {segment['type']} segment; "
                             "users can only be added to USER segments")
        if self._throttled():
            return error(429, "TOO_MANY_REQUESTS", "Resource level throttle MEMBER MINUTE limit for calls to "
                         "this resource is reached", 101)
        try:
            elements = json.loads(req.body or b"{}").get("elements")
        except (ValueError, AttributeError):
            return error(400, "ILLEGAL_ARGUMENT", "The request body must be a JSON object with elements")
        if not isinstance(elements, list) or not elements:
            return error(400, "FIELD_VALUE_MISSING", "elements: required, a non-empty list")
        if len(elements) > self.MAX_BATCH_ELEMENTS:
            return error(400, "INVALID_VALUE", f"Batch size {len(elements)} exceeds the maximum of "
                         f"{self.MAX_BATCH_ELEMENTS} elements per request")
        answers = []
        with self._lock:
            for element in elements:
                problem = self._element_problem(element)
                if problem is None:
                    hashes = {u["idValue"] for u in element.get("userIds", []) if u.get("idType") == "SHA256_EMAIL"}
                    if element["action"] == "ADD":
                        segment["_hashes"] |= hashes
                    else:
                        segment["_hashes"] -= hashes
                    answers.append({"status": 201})
                else:
                    answers.append({"status": 400, "message": problem,
                                    "error": {"status": 400, "code": "INVALID_VALUE", "message": problem}})
        return Reply.json({"elements": answers})

    def _element_problem(self, element: Any) -> str | None:
        """Why LinkedIn would refuse this element, or None."""
        if not isinstance(element, dict) or element.get("action") not in ("ADD", "REMOVE"):
            return "action must be ADD or REMOVE"
        ids = element.get("userIds") or []
        if not isinstance(ids, list):
            return "userIds must be a list"
        for i, user_id in enumerate(ids):
            kind, value = (user_id or {}).get("idType"), (user_id or {}).get("idValue")
            if kind not in ID_TYPES:
                return f"userIds[{i}].idType must be one of {sorted(ID_TYPES)}"
            if not isinstance(value, str) or (kind in HEX and not HEX[kind].match(value)):
                return f"userIds[{i}].idValue is not a valid {kind} value"
            if kind == "SHA256_EMAIL" and value in self._rejects:
                return self._rejects[value]
        if not ids and not (element.get("firstName") and element.get("lastName")):
            return "an element needs userIds, or firstName and lastName"
        country = element.get("country")
        if country is not None and not re.fullmatch(r"[A-Z]{2}", str(country)):
            return "country must be an ISO 3166-1 alpha-2 code in upper case"
        return None
