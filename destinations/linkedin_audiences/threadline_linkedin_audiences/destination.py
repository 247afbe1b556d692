"""The `linkedin_audiences` activation destination: audience members to a LinkedIn DMP segment
(contact targeting).

    members ──prepare (one DuckDB SELECT)──► member_id, email_sha256 [, first_name, last_name, country]
            ──add/remove──► POST /rest/dmpSegments/{id}/users  (X-RestLi-Method: BATCH_CREATE)
                            {elements: [{action: ADD|REMOVE, userIds: [{idType: SHA256_EMAIL, idValue}]}]}

LinkedIn answers each element on its own ({status: 201} or {status: 400, message}); refused
elements become per-row rejections with LinkedIn's message. The users API adds and removes,
it has no replace, so this destination pushes diffs only. LinkedIn matches users by email
here: a member without one is rejected before sending.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from threadline.activation import prepare_members
from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    AudienceWriter,
    ConfigError,
    FatalError,
    PushMode,
    PushReport,
    PushResult,
    RowRejection,
)

from threadline_linkedin_audiences.api import NAME, LinkedInApi
from threadline_linkedin_audiences.config import LinkedInAudiencesConfig

MAX_BATCH_ROWS = 5000  # elements per BATCH_CREATE call (see the README for the source)
NO_EMAIL = "no email to match on (LinkedIn matches these members by SHA256_EMAIL)"
NAME_FIELDS = (("first_name", "firstName"), ("last_name", "lastName"), ("country", "country"))


def json_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each value as a JSON string literal (null stays null): control characters dropped,
    backslashes and quotes escaped. Only names travel in the clear, so only they need this."""
    text = pc.replace_substring_regex(column, r"[\x00-\x1f]", "")
    text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', text, '"', "")


def elements_body(rows: pa.Table, action: str, *, names: bool) -> bytes:
    """The users call's JSON, built column-wise by Arrow; element i is row i."""
    element = pc.binary_join_element_wise(
        '{"action":"' + action + '","userIds":[{"idType":"SHA256_EMAIL","idValue":"', rows.column("email_sha256"),
        '"}]', "")
    if names:
        for column, key in NAME_FIELDS:
            part = pc.binary_join_element_wise(f',"{key}":', json_string(rows.column(column)), "")
            element = pc.binary_join_element_wise(element, pc.fill_null(part, ""), "")
    element = pc.binary_join_element_wise(element, "}", "").combine_chunks()
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(element)], pa.int32()), element), ",")[0]
    return ('{"elements":[' + joined.as_py() + "]}").encode()


@dataclass
class LinkedInSegmentWriter(AudienceWriter):
    """One push: removes then adds, each element applied (or refused) by LinkedIn as the call returns."""

    api: LinkedInApi
    config: LinkedInAudiencesConfig
    target: AudienceTarget
    report: PushReport = field(default_factory=PushReport)
    _segment_id: str | None = None

    def segment_id(self) -> str:
        """The configured segment, or the one named segment_name (created on the first push)."""
        if self._segment_id is None:
            if self.config.segment_id:
                self._segment_id = self.config.segment_id
            else:
                name = self.config.segment_name or ""
                found = self.api.segment_named(name)
                self._segment_id = found or self.api.create_segment(name)
                self.report.details["created_segment"] = found is None
                if found is None:
                    time.sleep(self.config.created_segment_wait)  # LinkedIn: a new segment takes users after ~5 s
            self.report.details.update(segment_id=self._segment_id, ad_account_id=self.config.ad_account_id)
        return self._segment_id

    def add(self, rows: pa.Table) -> PushResult:
        return self._send("ADD", rows)

    def remove(self, rows: pa.Table) -> PushResult:
        return self._send("REMOVE", rows)

    def _send(self, action: str, rows: pa.Table) -> PushResult:
        if rows.num_rows > MAX_BATCH_ROWS:
            raise ValueError(f"{NAME}: {rows.num_rows} rows in one call; LinkedIn takes at most {MAX_BATCH_ROWS}")
        segment_id = self.segment_id()
        has_email = pc.is_valid(rows.column("email_sha256"))
        sendable = rows.filter(has_email)
        rejected = [RowRejection(m, NO_EMAIL) for m in rows.filter(pc.invert(has_email)).column("member_id").to_pylist()]
        if sendable.num_rows:
            answer = self.api.call(
                "POST", f"/dmpSegments/{segment_id}/users", stream=f"segment {segment_id} ({action})",
                body=elements_body(sendable, action, names=self.config.send_names),
                headers={"X-RestLi-Method": "BATCH_CREATE"})
            rejected += self._refused(answer.body.get("elements"), sendable, segment_id)
            self.report.details["requests"] = self.report.details.get("requests", 0) + 1
        result = PushResult(accepted=rows.num_rows - len(rejected), rejected=rejected)
        self.report.sent += rows.num_rows
        self.report.accepted += result.accepted
        self.report.rejected += len(rejected)
        return result

    @staticmethod
    def _refused(statuses: Any, sent: pa.Table, segment_id: str) -> list[RowRejection]:
        """Rows whose element LinkedIn answered with a non-2xx status, with LinkedIn's message."""
        if not isinstance(statuses, list) or len(statuses) != sent.num_rows:
            raise FatalError(f"LinkedIn answered {len(statuses) if isinstance(statuses, list) else 'no'} element "
                             f"statuses for {sent.num_rows} elements", where=f"{NAME} / segment {segment_id}",
                             hint="the call may have been applied in part; run the push again (adds and removes "
                                  "are idempotent)")
        refused = [i for i, answer in enumerate(statuses) if not 200 <= int(answer.get("status", 0)) < 300]
        if not refused:
            return []
        member_ids = sent.column("member_id").take(pa.array(refused)).to_pylist()
        return [RowRejection(member_id, _reason(statuses[i])) for member_id, i in zip(member_ids, refused)]

    def finish(self) -> PushReport:
        self.api.close()
        return self.report

    def abort(self) -> None:
        self.api.close()


def _reason(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    message = answer.get("message") or (error.get("message") if isinstance(error, dict) else None)
    return f"LinkedIn {answer.get('status')}: {message or 'refused without a message'}"


class LinkedInAudiences(AudienceDestination[LinkedInAudiencesConfig]):
    """A LinkedIn DMP (contact targeting) segment, kept in step by ADD and REMOVE elements."""

    name = NAME
    spec = LinkedInAudiencesConfig
    channel = "advertising"
    max_batch_rows = MAX_BATCH_ROWS
    min_members = 300  # LinkedIn serves a matched audience only from 300 matched members
    modes = (PushMode.DIFF,)  # the users API adds and removes; there is no replace
    applies_each_batch = True
    plain_columns = ("first_name", "last_name")  # only with send_names: LinkedIn takes names unhashed

    def check(self, config: LinkedInAudiencesConfig) -> None:
        api = LinkedInApi(config)
        where = f"{NAME} / check"
        try:
            if config.segment_id:
                segment = api.segment(config.segment_id)
                if segment is None:
                    raise ConfigError(f"DMP segment {config.segment_id} does not exist", field="segment_id", where=where,
                                      hint="copy the id from Campaign Manager → Audiences, or set segment_name")
                if segment.get("account") != config.account_urn:
                    raise ConfigError(f"DMP segment {config.segment_id} belongs to {segment.get('account')}, not to "
                                      f"ad_account_id {config.ad_account_id}", field="ad_account_id", where=where,
                                      hint="set ad_account_id to the segment's account, or pick that account's segment")
                if segment.get("type") != "USER":
                    raise ConfigError(f"DMP segment {config.segment_id} is a {segment.get('type')} segment; members "
                                      "go to USER segments", field="segment_id", where=where,
                                      hint="pick a contact (USER) segment")
            elif api.segment_named(config.segment_name or "") is None and not config.source_platform:
                raise ConfigError(f"no USER segment named {config.segment_name!r} in ad account {config.ad_account_id}, "
                                  "and creating one needs source_platform", field="source_platform", where=where,
                                  hint="set source_platform to the value LinkedIn assigned your integration, or "
                                       "create the segment in Campaign Manager and set segment_id")
        finally:
            api.close()

    def prepare(self, config: LinkedInAudiencesConfig, members: pa.Table) -> pa.Table:
        # LinkedIn: SHA256_EMAIL of the trimmed, lower-cased address. Names (opt-in) travel as
        # they are, trimmed; country as ISO alpha-2 in upper case.
        names = (", blank_to_null(trim(first_name)) AS first_name, blank_to_null(trim(last_name)) AS last_name, "
                 "blank_to_null(upper(trim(country))) AS country") if config.send_names else ""
        return prepare_members(members, f"SELECT member_id, hashed(email_norm(email)) AS email_sha256{names} FROM members")

    def open_audience(self, config: LinkedInAudiencesConfig, target: AudienceTarget) -> AudienceWriter:
        if target.mode not in self.modes:
            raise ConfigError(f"LinkedIn DMP segments take diffs only, not a {target.mode.value} push", field="mode",
                              where=f"{NAME} / {target.activation}",
                              hint="the users API has ADD and REMOVE, no replace: use mode: diff for this activation")
        return LinkedInSegmentWriter(LinkedInApi(config), config, target)

