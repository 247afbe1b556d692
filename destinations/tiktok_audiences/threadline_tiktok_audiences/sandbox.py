"""TikTok's Business API v1.3 audience segment endpoints on loopback (`threadline sandbox tiktok_audiences`).

What it implements, as TikTok documents it (URLs in the README):

    POST /open_api/v1.3/segment/audience/       {advertiser_id, custom_audience_name, action: "create"}
                                                → data {audience_id}
    POST /open_api/v1.3/segment/mapping/        {advertiser_ids, action: "add"|"delete", id_schema, batch_data}
    GET  /open_api/v1.3/dmp/custom_audience/get/?advertiser_id=&custom_audience_ids=["..."]
                                                → data {list: [{audience_id, name, cover_num, ...}]}
    GET  /open_api/v1.3/dmp/custom_audience/list/?advertiser_id=&page=&page_size=
                                                → data {list: [...], page_info: {page, page_size, total_number, total_page}}

- Every answer is HTTP 200 with `{code, message, request_id, data}`; `code` 0 is success and
  errors are non-zero codes in the same envelope, as the real API does:
  40001 no permission for the advertiser, 40002 parameter error (the whole request is refused,
  nothing is applied), 40100 QPS limit, 40104 access token missing, 40105 access token wrong
  or revoked, 51021 too many requests, 50000 system error.
- Auth is the `Access-Token` header (a long-term token: TikTok's advertiser tokens do not
  expire; `revoke_credentials()` makes the seeded one refused with 40105).
- `batch_data` is a list of rows; row i holds one entry per `id_schema` position, either `{}`
  or `{"id": <hash>, "audience_ids": [...]}`. `*_SHA256` ids must be 64 lower-case hex
  characters; at most `MAX_BATCH_ROWS` rows per request; every audience must belong to one of
  `advertiser_ids`; a row with no identifier at all is refused.
- Members are kept per audience as (id type, hash) pairs: `audience_hashes()` reads them back.
  `throttle(n)` answers the next n requests with 40100 (or another code); `qps` enforces a
  per-second limit the same way.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from typing import Any, ClassVar

from threadline.sandbox import Reply, Sandbox, SandboxRequest, route
from threadline.secrets import register_secret

API = "/open_api/v1.3"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MD5 = re.compile(r"^[0-9a-f]{32}$")
ID_TYPES = frozenset({"EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "GAID_SHA256", "AAID_SHA256",
                      "IDFA_MD5", "GAID_MD5", "AAID_MD5"})

MESSAGES = {
    40001: "No permission to operate advertiser {advertiser}.",
    40100: "App reaches the QPS limit. Please try again later.",
    40104: "Access token is null, please check it.",
    40105: "Access token is incorrect or has been revoked.",
    50000: "System error. Please try again later.",
    51021: "Too many requests. Please retry in some time.",
}


class ParamError(Exception):
    """A 40002 answer: the request's parameters are wrong; nothing was applied."""


class TikTokAudiencesSandbox(Sandbox):
    """TikTok audience segments behind the documented envelope (see the module docstring)."""

    name = "tiktok_audiences"
    TOKEN = "tt-sandbox-7d1f0c2a9e4b4f6e8a3c5b7d9e1f2a4c"
    ADVERTISER_ID = "7012345678901234567"
    OTHER_ADVERTISER_ID = "7099999999999999999"  # exists, but the token may not operate it
    AUDIENCE_ID = "176000000000000001"
    AUDIENCE_NAME = "threadline demo"
    MAX_BATCH_ROWS: ClassVar[int] = 10_000

    def __init__(self, *, seed: int = 0, port: int = 0, qps: int | None = None) -> None:
        self.qps = qps
        self._qps_lock = threading.Lock()
        super().__init__(seed=seed, port=port)

    def seed_data(self) -> None:
        register_secret(self.TOKEN)
        self._revoked = False
        self._throttled: list[int] = []  # codes to answer the next requests with
        self._recent: deque[float] = deque()
        self._next_id = int(self.AUDIENCE_ID) + 1
        self._audiences: dict[str, dict[str, Any]] = {
            self.AUDIENCE_ID: {"name": self.AUDIENCE_NAME, "advertiser_id": self.ADVERTISER_ID, "ids": set(),
                               "create_time": "2026-01-05 09:00:00"},
        }

    def secrets(self) -> list[str]:
        return [self.TOKEN]

    # ------------------------------------------------------------------ what tests use

    def audience_hashes(self, audience_id: str, id_type: str = "EMAIL_SHA256") -> set[str]:
        """The hashes of `id_type` the audience holds now."""
        with self._lock:
            return {h for kind, h in self._audiences[audience_id]["ids"] if kind == id_type}

    def audience_ids(self, advertiser_id: str | None = None) -> dict[str, str]:
        """Audience id → name, for one advertiser (default: the seeded one)."""
        wanted = advertiser_id or self.ADVERTISER_ID
        with self._lock:
            return {i: a["name"] for i, a in self._audiences.items() if a["advertiser_id"] == wanted}

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def throttle(self, times: int, code: int = 40100) -> None:
        """Answer the next `times` requests with `code` (HTTP 200, as TikTok does)."""
        with self._lock:
            self._throttled.extend([code] * times)

    def control_throttle(self, body: dict[str, Any]) -> dict[str, Any]:
        self.throttle(int(body.get("times", 1)), int(body.get("code", 40100)))
        return {"throttled": True}

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ envelope and auth

    def _answer(self, code: int = 0, message: str = "OK", data: Any = None) -> Reply:
        request_id = time.strftime("%Y%m%d%H%M%S") + f"{int(time.monotonic_ns()) % 16**12:012X}"
        return Reply.json({"code": code, "message": message, "request_id": request_id, "data": data or {}})

    def _refusal(self, req: SandboxRequest, advertisers: list[str]) -> Reply | None:
        """The envelope refusing this request (token, advertiser, throttling), or None."""
        token = req.headers.get("access-token")
        with self._lock:
            if not token:
                return self._answer(40104, MESSAGES[40104])
            if token != self.TOKEN or self._revoked:
                return self._answer(40105, MESSAGES[40105])
            for advertiser in advertisers:
                if advertiser != self.ADVERTISER_ID:
                    return self._answer(40001, MESSAGES[40001].format(advertiser=advertiser))
            if self._throttled:
                code = self._throttled.pop(0)
                return self._answer(code, MESSAGES.get(code, "Too many requests."))
        if self.qps is not None and not self._within_qps():
            return self._answer(40100, MESSAGES[40100])
        return None

    def _within_qps(self) -> bool:
        with self._qps_lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= (self.qps or 0):
                return False
            self._recent.append(now)
            return True

    @staticmethod
    def _body(req: SandboxRequest) -> dict[str, Any]:
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            raise ParamError("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ParamError("The request body must be a JSON object.")
        return body

    # ------------------------------------------------------------------ routes

    @route("POST", f"{API}/segment/audience/")
    def create_audience(self, req: SandboxRequest) -> Reply:
        try:
            body = self._body(req)
            refused = self._refusal(req, [str(body.get("advertiser_id", ""))])
            if refused is not None:
                return refused
            name = body.get("custom_audience_name")
            if body.get("action") != "create":
                raise ParamError("action: must be 'create' on this endpoint.")
            if not isinstance(name, str) or not name.strip() or len(name) > 128:
                raise ParamError("custom_audience_name: required, at most 128 characters.")
        except ParamError as exc:
            return self._answer(40002, str(exc))
        with self._lock:
            audience_id = str(self._next_id)
            self._next_id += 1
            self._audiences[audience_id] = {"name": name, "advertiser_id": self.ADVERTISER_ID, "ids": set(),
                                            "create_time": time.strftime("%Y-%m-%d %H:%M:%S")}
        return self._answer(data={"audience_id": audience_id})

    @route("GET", f"{API}/dmp/custom_audience/get/")
    def get_audiences(self, req: SandboxRequest) -> Reply:
        advertiser = req.param("advertiser_id", "") or ""
        refused = self._refusal(req, [advertiser])
        if refused is not None:
            return refused
        try:
            wanted = json.loads(req.param("custom_audience_ids") or "[]")
        except ValueError:
            return self._answer(40002, "custom_audience_ids: must be a JSON array of audience ids.")
        with self._lock:
            found = [self._describe(i) for i in wanted if i in self._audiences
                     and self._audiences[i]["advertiser_id"] == advertiser]
        return self._answer(data={"list": found})

    @route("GET", f"{API}/dmp/custom_audience/list/")
    def list_audiences(self, req: SandboxRequest) -> Reply:
        advertiser = req.param("advertiser_id", "") or ""
        refused = self._refusal(req, [advertiser])
        if refused is not None:
            return refused
        page, size = req.int_param("page", 1), req.int_param("page_size", 10)
        if page < 1 or not 1 <= size <= 100:
            return self._answer(40002, "page must be >= 1 and page_size between 1 and 100.")
        with self._lock:
            ids = [i for i, a in self._audiences.items() if a["advertiser_id"] == advertiser]
            chunk = [self._describe(i) for i in ids[(page - 1) * size: page * size]]
        total_page = max(1, -(-len(ids) // size))
        return self._answer(data={"list": chunk, "page_info": {"page": page, "page_size": size,
                                                              "total_number": len(ids), "total_page": total_page}})

    @route("POST", f"{API}/segment/mapping/")
    def mapping(self, req: SandboxRequest) -> Reply:
        try:
            body = self._body(req)
            advertisers = body.get("advertiser_ids")
            if not isinstance(advertisers, list) or not advertisers or not all(isinstance(a, str) for a in advertisers):
                raise ParamError("advertiser_ids: required, a non-empty list of advertiser ids.")
            refused = self._refusal(req, advertisers)
            if refused is not None:
                return refused
            changes = self._validate_mapping(body, set(advertisers))
        except ParamError as exc:
            return self._answer(40002, str(exc))
        with self._lock:
            for audience_id, pairs in changes.items():
                held = self._audiences[audience_id]["ids"]
                if body["action"] == "add":
                    held |= pairs
                else:
                    held -= pairs
        return self._answer()

    # ------------------------------------------------------------------ validation

    def _validate_mapping(self, body: dict[str, Any], advertisers: set[str]) -> dict[str, set[tuple[str, str]]]:
        """Every (id type, hash) per audience the request adds or deletes; ParamError if any part is wrong."""
        if body.get("action") not in ("add", "delete"):
            raise ParamError("action: must be 'add' or 'delete'.")
        schema = body.get("id_schema")
        if not isinstance(schema, list) or not schema or len(set(schema)) != len(schema) \
                or not all(s in ID_TYPES for s in schema):
            raise ParamError(f"id_schema: a non-empty list of distinct id types from {sorted(ID_TYPES)}.")
        rows = body.get("batch_data")
        if not isinstance(rows, list) or not rows:
            raise ParamError("batch_data: required, a non-empty list.")
        if len(rows) > self.MAX_BATCH_ROWS:
            raise ParamError(f"batch_data: at most {self.MAX_BATCH_ROWS} rows per request, got {len(rows)}.")
        changes: dict[str, set[tuple[str, str]]] = {}
        with self._lock:
            known = {i for i, a in self._audiences.items() if a["advertiser_id"] in advertisers}
        for r, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(schema):
                raise ParamError(f"batch_data[{r}]: must hold one entry per id_schema item ({len(schema)}).")
            if not any(row):
                raise ParamError(f"batch_data[{r}]: has no identifier.")
            for c, entry in enumerate(row):
                if not entry:
                    continue
                kind, value, audiences = schema[c], entry.get("id"), entry.get("audience_ids")
                pattern = SHA256 if kind.endswith("SHA256") else MD5
                if not isinstance(value, str) or not pattern.match(value):
                    raise ParamError(f"batch_data[{r}][{c}].id: not a lower-case hex {kind.split('_')[-1]} hash.")
                if not isinstance(audiences, list) or not audiences:
                    raise ParamError(f"batch_data[{r}][{c}].audience_ids: required, a non-empty list.")
                for audience_id in audiences:
                    if audience_id not in known:
                        raise ParamError(f"audience_ids: audience {audience_id} does not exist or does not "
                                         f"belong to advertiser_ids {sorted(advertisers)}.")
                    changes.setdefault(audience_id, set()).add((kind, value))
        return changes

    def _describe(self, audience_id: str) -> dict[str, Any]:
        audience = self._audiences[audience_id]
        emails = sum(1 for kind, _ in audience["ids"] if kind == "EMAIL_SHA256")
        return {"audience_id": audience_id, "name": audience["name"], "audience_type": "Partner Audience",
                "cover_num": emails, "is_valid": True, "is_expired": False, "create_time": audience["create_time"]}
