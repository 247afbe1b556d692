"""The `tiktok_audiences` activation destination: audience members to a TikTok custom audience.

    members ──prepare (one DuckDB SELECT)──► member_id, email_sha256, phone_sha256
            ──add/remove──► POST /open_api/v1.3/segment/mapping/ {action: add|delete, id_schema, batch_data}

TikTok's mapping endpoint adds and deletes identifiers; it has no replace, so this destination
only pushes diffs (`modes = (DIFF,)`). Each call is applied when it returns (code 0) and the
whole call is refused otherwise, so the runner's ledger can follow every call. A member with
neither an email nor a phone cannot be matched and is reported as rejected without being sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator
from threadline.activation import prepare_members
from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    AudienceWriter,
    ConfigError,
    PushMode,
    PushReport,
    PushResult,
    RowRejection,
    Spec,
)
from threadline.http import DEFAULT_ACTIONS, Action, ApiKeyAuth, HttpClient, RetryPolicy

from threadline_tiktok_audiences.codes import TikTokBusy, classify_response

NAME = "tiktok_audiences"
API = "/open_api/v1.3"
MAPPING_PATH = f"{API}/segment/mapping/"
CREATE_PATH = f"{API}/segment/audience/"
GET_PATH = f"{API}/dmp/custom_audience/get/"
LIST_PATH = f"{API}/dmp/custom_audience/list/"
MAX_BATCH_ROWS = 10_000  # rows of batch_data per mapping request (see the README for the source)
NO_IDENTIFIER = "no email or phone to match on (TikTok matches members by EMAIL_SHA256 / PHONE_SHA256)"

ACTIONS = DEFAULT_ACTIONS.override({TikTokBusy: Action.RETRY})


class TikTokAudiencesConfig(Spec):
    access_token: str = Field(description="The advertiser's long-term access token (TikTok Business API, sent as the "
                                          "Access-Token header). Use ${TIKTOK_ACCESS_TOKEN}.")
    advertiser_id: str = Field(min_length=1, description="The ad account (advertiser) id the audience belongs to.")
    audience_id: str | None = Field(None, description="The custom audience to push to (Audience Manager → audience "
                                                      "details). Set this or audience_name.")
    audience_name: str | None = Field(None, max_length=128,
                                      description="Push to the advertiser's audience with this name, creating it on "
                                                  "the first push if there is none. Set this or audience_id.")
    send_phone: bool = Field(True, description="Also send PHONE_SHA256 (the E.164 digits, hashed) next to EMAIL_SHA256.")
    base_url: str = Field("https://business-api.tiktok.com", description="API root (the sandbox's URL in tests).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry of a throttled or failed call; "
                                                       "doubles on each retry.")
    max_retry_time: float = Field(300.0, gt=0, description="Longest one call is retried before the push stops "
                                                           "with a transient error (resumable).")

    @model_validator(mode="after")
    def _one_audience(self) -> TikTokAudiencesConfig:
        if not (self.audience_id or self.audience_name):
            raise ValueError("set audience_id (an existing audience) or audience_name (found or created by name)")
        return self

    @property
    def id_schema(self) -> list[str]:
        return ["EMAIL_SHA256", "PHONE_SHA256"] if self.send_phone else ["EMAIL_SHA256"]


class TikTokApi:
    """The few audience endpoints, through the HTTP kit (retries, throttling, classified errors)."""

    def __init__(self, config: TikTokAudiencesConfig) -> None:
        self.config = config
        self.client = HttpClient(
            config.base_url, auth=ApiKeyAuth(config.access_token, name="Access-Token", field="access_token"),
            actions=ACTIONS, retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_retry_time),
            headers={"Content-Type": "application/json"}, connector=NAME,
        )

    def call(self, method: str, path: str, *, stream: str, params: dict[str, Any] | None = None,
             body: bytes | None = None) -> dict[str, Any]:
        where = f"{NAME} / {stream}"
        return self.client.request(method, path, params=params, data=body, stream=stream,
                                   parse=classify_response(where)) or {}

    def audience(self, audience_id: str) -> dict[str, Any] | None:
        data = self.call("GET", GET_PATH, stream="check", params={
            "advertiser_id": self.config.advertiser_id, "custom_audience_ids": json.dumps([audience_id])})
        return next((a for a in data.get("list", []) if str(a.get("audience_id")) == audience_id), None)

    def audience_named(self, name: str) -> str | None:
        """The id of the advertiser's audience called `name`, or None."""
        page, pages = 1, 1
        while page <= pages:
            data = self.call("GET", LIST_PATH, stream="audiences", params={
                "advertiser_id": self.config.advertiser_id, "page": page, "page_size": 100})
            for audience in data.get("list", []):
                if audience.get("name") == name:
                    return str(audience["audience_id"])
            pages = int((data.get("page_info") or {}).get("total_page") or 1)
            page += 1
        return None

    def create_audience(self, name: str) -> str:
        body = json.dumps({"advertiser_id": self.config.advertiser_id, "custom_audience_name": name,
                           "action": "create"}).encode()
        return str(self.call("POST", CREATE_PATH, stream=f"create audience {name!r}", body=body)["audience_id"])

    def close(self) -> None:
        self.client.close()


def mapping_body(rows: pa.Table, *, advertiser_id: str, audience_id: str, action: str, id_schema: list[str]) -> bytes:
    """The mapping request's JSON, built column-wise by Arrow (hashes are hex: nothing to escape).
    Row i of batch_data holds one entry per id_schema item: {"id", "audience_ids"} or {}."""
    audience_ids = json.dumps([audience_id])
    entries = []
    for kind in id_schema:
        column = rows.column(f"{kind.split('_')[0].lower()}_sha256")
        filled = pc.binary_join_element_wise('{"id":"', column, '","audience_ids":' + audience_ids + "}", "")
        entries.append(pc.if_else(pc.is_null(column), "{}", filled))
    parts = ["["] + [x for e in entries for x in (e, ",")][:-1] + ["]"]
    batch = pc.binary_join_element_wise(*parts, "").combine_chunks()
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(batch)], pa.int32()), batch), ",")[0].as_py()
    head = json.dumps({"advertiser_ids": [advertiser_id], "action": action, "id_schema": id_schema})[:-1]
    return f'{head},"batch_data":[{joined}]}}'.encode()


@dataclass
class TikTokAudienceWriter(AudienceWriter):
    """One push: removes then adds, each call applied by TikTok as it returns."""

    api: TikTokApi
    config: TikTokAudiencesConfig
    target: AudienceTarget
    report: PushReport = field(default_factory=PushReport)
    _audience_id: str | None = None

    def audience_id(self) -> str:
        """The configured audience, or the one named audience_name (created on the first push)."""
        if self._audience_id is None:
            if self.config.audience_id:
                self._audience_id = self.config.audience_id
            else:
                name = self.config.audience_name or ""
                found = self.api.audience_named(name)
                self._audience_id = found or self.api.create_audience(name)
                self.report.details["created_audience"] = found is None
            self.report.details.update(audience_id=self._audience_id, advertiser_id=self.config.advertiser_id)
        return self._audience_id

    def add(self, rows: pa.Table) -> PushResult:
        return self._map("add", rows)

    def remove(self, rows: pa.Table) -> PushResult:
        return self._map("delete", rows)

    def _map(self, action: str, rows: pa.Table) -> PushResult:
        if rows.num_rows > MAX_BATCH_ROWS:
            raise ValueError(f"{NAME}: {rows.num_rows} rows in one call; TikTok takes at most {MAX_BATCH_ROWS}")
        audience_id = self.audience_id()
        columns = [f"{kind.split('_')[0].lower()}_sha256" for kind in self.config.id_schema]
        matchable = pc.is_valid(rows.column(columns[0]))
        for name in columns[1:]:
            matchable = pc.or_(matchable, pc.is_valid(rows.column(name)))
        sendable = rows.filter(matchable)
        unmatchable = rows.filter(pc.invert(matchable)).column("member_id").to_pylist()
        if sendable.num_rows:
            body = mapping_body(sendable, advertiser_id=self.config.advertiser_id, audience_id=audience_id,
                                action=action, id_schema=self.config.id_schema)
            self.api.call("POST", MAPPING_PATH, stream=f"audience {audience_id} ({action})", body=body)
            self.report.details["requests"] = self.report.details.get("requests", 0) + 1
        result = PushResult(accepted=sendable.num_rows, rejected=[RowRejection(m, NO_IDENTIFIER) for m in unmatchable])
        self.report.sent += rows.num_rows
        self.report.accepted += result.accepted
        self.report.rejected += len(result.rejected)
        return result

    def finish(self) -> PushReport:
        self.api.close()
        return self.report

    def abort(self) -> None:
        self.api.close()


class TikTokAudiences(AudienceDestination[TikTokAudiencesConfig]):
    """A TikTok custom (partner) audience, kept in step by adds and deletes of hashed identifiers."""

    name = NAME
    spec = TikTokAudiencesConfig
    channel = "advertising"
    max_batch_rows = MAX_BATCH_ROWS
    min_members = 1000  # TikTok needs 1,000 matched users before an ad group can target the audience
    modes = (PushMode.DIFF,)  # the mapping API has add and delete, no replace
    applies_each_batch = True
    plain_columns = ()

    def check(self, config: TikTokAudiencesConfig) -> None:
        api = TikTokApi(config)
        try:
            if config.audience_id:
                if api.audience(config.audience_id) is None:
                    raise ConfigError(
                        f"audience {config.audience_id} is not a custom audience of advertiser {config.advertiser_id}",
                        field="audience_id", where=f"{NAME} / check",
                        hint="copy the id from TikTok Ads Manager → Audiences, or set audience_name instead to "
                             "have the audience found (or created) by name")
            else:
                api.audience_named(config.audience_name or "")  # proves the token and the advertiser
        finally:
            api.close()

    def prepare(self, config: TikTokAudiencesConfig, members: pa.Table) -> pa.Table:
        # TikTok: email trimmed and lower-cased; phone as its E.164 digits without '+' (the
        # form TikTok's own hashed example uses, see the README); both SHA-256, lower hex.
        phone = ", hashed(digits(phone)) AS phone_sha256" if config.send_phone else ""
        return prepare_members(members, f"SELECT member_id, hashed(email_norm(email)) AS email_sha256{phone} FROM members")

    def open_audience(self, config: TikTokAudiencesConfig, target: AudienceTarget) -> AudienceWriter:
        if target.mode not in self.modes:
            raise ConfigError(f"TikTok audiences take diffs only, not a {target.mode.value} push",
                              field="mode", where=f"{NAME} / {target.activation}",
                              hint="TikTok's mapping API has no replace: use mode: diff for this activation")
        return TikTokAudienceWriter(TikTokApi(config), config, target)
