"""The `meta_audiences` destination: members of a profile-store audience into a Meta
customer-file Custom Audience.

    diff    removes: DELETE /{audience_id}/users   adds: POST /{audience_id}/users
    mirror  POST /{audience_id}/usersreplace, one replace session across every batch

Each operation is one upload *session* (`session_id`, `batch_seq` from 1, `estimated_num_total`,
`last_batch_flag`). The batch that completes the declared total carries `last_batch_flag`;
when the pushed rows fall short of it (or the push fails), `finish()` / `abort()` close the
session by sending its last batch again with the flag — adding, removing or replacing the same
rows twice changes nothing, so a session is always closed without an empty batch Meta might
refuse. Meta answers each batch with `num_invalid_entries` and `invalid_entry_samples`
(`{"<row as comma-joined values>": "<reason>"}`), which become per-member rejections.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    AudienceWriter,
    ConfigError,
    PushMode,
    PushReport,
    PushResult,
    RowRejection,
    ThreadlineError,
)

from threadline_meta_audiences import normalize
from threadline_meta_audiences.config import MetaAudiencesConfig
from threadline_meta_audiences.graph import DESTINATION, make_client, parse_answer

log = logging.getLogger("threadline.meta_audiences")

AUDIENCE_FIELDS = "id,name,subtype,operation_status,approximate_count_lower_bound,approximate_count_upper_bound"


class MetaAudiences(AudienceDestination[MetaAudiencesConfig]):
    """Meta Custom Audiences (Marketing API): hashed multi-key rows, 10,000 a request."""

    name = DESTINATION
    spec = MetaAudiencesConfig
    channel = "advertising"
    max_batch_rows = 10_000  # Meta: "only a maximum of 10000 at a time"
    min_members = 100  # Meta: an audience of fewer than 100 people cannot be used
    modes = (PushMode.DIFF, PushMode.MIRROR)
    applies_each_batch = True  # a diff's batches apply as they are answered (a mirror's at the end)

    def check(self, config: MetaAudiencesConfig) -> None:
        audience = read_audience(config)
        if audience.get("subtype") not in (None, "CUSTOM"):
            raise ConfigError(
                f"audience {config.audience_id} is a {audience['subtype']} audience; members can only be uploaded to "
                "a customer-file (CUSTOM) audience", field="audience_id", where=DESTINATION,
                hint="create a Custom Audience from a customer list in Ads Manager and use its id")

    def prepare(self, config: MetaAudiencesConfig, members: pa.Table) -> pa.Table:
        return normalize.prepare(config, members)

    def open_audience(self, config: MetaAudiencesConfig, target: AudienceTarget) -> AudienceWriter:
        return MetaAudienceWriter(config, target)


def read_audience(config: MetaAudiencesConfig) -> dict[str, Any]:
    client, _ = make_client(config, "check")
    try:
        where = f"{DESTINATION} / audience {config.audience_id}"
        body = client.request("GET", f"/{config.audience_id}", params={"fields": AUDIENCE_FIELDS},
                              stream=f"audience {config.audience_id}", parse=parse_answer(where))
        return body or {}
    finally:
        client.close()


@dataclass
class UploadSession:
    """One Meta upload session: an operation (method + edge) over one or more batches."""

    method: str
    edge: str  # "users" or "usersreplace"
    total: int  # estimated_num_total, from the push's declared counts
    session_id: int = field(default_factory=lambda: secrets.randbits(62))
    batch_seq: int = 0
    sent: int = 0
    closed: bool = False
    last_data: str = ""  # the last batch's `data` JSON, sent again to close the session

    def describe(self) -> dict[str, Any]:
        return {"edge": self.edge, "method": self.method, "session_id": str(self.session_id),
                "batches": self.batch_seq, "rows": self.sent, "closed": self.closed}


class MetaAudienceWriter(AudienceWriter):
    """One push: a remove session, then an add (diff) or replace (mirror) session."""

    def __init__(self, config: MetaAudiencesConfig, target: AudienceTarget) -> None:
        self.config, self.target = config, target
        self.keys = normalize.schema_keys(config)
        self.where = f"{DESTINATION} / audience {config.audience_id}"
        self.client, self.auth = make_client(config, f"audience {config.audience_id}")
        self.parse = parse_answer(self.where)
        self.duck = duckdb.connect()
        self.sessions: dict[str, UploadSession] = {}
        self.sent = self.accepted = self.rejected = self.unattributed = 0
        self.released = False

    # ------------------------------------------------------------------ the contract

    def remove(self, rows: pa.Table) -> PushResult:
        return self._send(self._session("remove", "DELETE", "users", self.target.removes), rows)

    def add(self, rows: pa.Table) -> PushResult:
        self._close("remove")  # every removal is confirmed before the first add
        if self.target.mode is PushMode.MIRROR:
            return self._send(self._session("replace", "POST", "usersreplace", self.target.adds), rows)
        return self._send(self._session("add", "POST", "users", self.target.adds), rows)

    def finish(self) -> PushReport:
        for name in list(self.sessions):
            self._close(name)
        estimate = self._match_estimate()
        self._release()
        return PushReport(
            sent=self.sent, accepted=self.accepted, rejected=self.rejected, match_estimate=estimate,
            details={"audience_id": self.config.audience_id, "sessions": [s.describe() for s in self.sessions.values()],
                     "token_renewals": self.auth.renewals, "rejections_without_row": self.unattributed},
        )

    def abort(self) -> None:
        """Close open sessions so none is left dangling. A mirror's replace then applies what it
        received so far; the next push mirrors in full again (the ledger moves only on success)."""
        if self.released:
            return
        try:
            for name in list(self.sessions):
                try:
                    self._close(name)
                except ThreadlineError as exc:
                    log.warning("%s: could not close the %s session after a failed push: %s", self.where, name,
                                exc.message)
        finally:
            self._release()

    # ------------------------------------------------------------------ sessions

    def _session(self, name: str, method: str, edge: str, total: int) -> UploadSession:
        session = self.sessions.get(name)
        if session is None or session.closed:
            session = self.sessions[name] = UploadSession(method, edge, total)
        return session

    def _close(self, name: str) -> None:
        session = self.sessions.get(name)
        if session is None or session.closed or not session.batch_seq:
            return
        self._post(session, session.last_data, last=True)
        session.closed = True

    def _send(self, session: UploadSession, rows: pa.Table) -> PushResult:
        if not rows.num_rows:
            return PushResult()
        data = self._data_json(rows)
        last = session.sent + rows.num_rows >= session.total > 0
        answer = self._post(session, data, last=last)
        session.sent += rows.num_rows
        session.last_data, session.closed = data, last
        return self._result(rows, answer)

    def _post(self, session: UploadSession, data: str, *, last: bool) -> dict[str, Any]:
        session.batch_seq += 1
        meta_session = {"session_id": session.session_id, "batch_seq": session.batch_seq,
                        "last_batch_flag": last, "estimated_num_total": max(session.total, session.sent)}
        # The payload goes in the body, a DELETE's too: the Graph API reads either, but 10,000 rows
        # do not fit in a URL (facebook_business's remove_users sends them in the query string).
        body = ('{"payload":{"schema":' + json.dumps(self.keys) + ',"data":' + data + '},"session":'
                + json.dumps(meta_session) + "}")
        answer = self.client.request(
            session.method, f"/{self.config.audience_id}/{session.edge}", data=body.encode(),
            headers={"Content-Type": "application/json"}, stream=f"audience {self.config.audience_id}",
            parse=self.parse,
        )
        return answer or {}

    # ------------------------------------------------------------------ rows in, results out

    def _data_json(self, rows: pa.Table) -> str:
        """`[["<hash>", "", ...], ...]` built by DuckDB (escaping included), "" for no value."""
        self.duck.register("batch", rows.select(self.keys))
        try:
            cells = ", ".join(f"coalesce(\"{key}\", '')" for key in self.keys)
            column = self.duck.sql(f"SELECT to_json([{cells}])::VARCHAR FROM batch").to_arrow_table().column(0)
        finally:
            self.duck.unregister("batch")
        return "[" + ",".join(column.to_pylist()) + "]"

    def _result(self, rows: pa.Table, answer: dict[str, Any]) -> PushResult:
        invalid = int(answer.get("num_invalid_entries") or 0)
        samples = answer.get("invalid_entry_samples") or {}
        rejected: list[RowRejection] = []
        if invalid and isinstance(samples, dict) and samples:
            filled = [pc.fill_null(rows.column(key), "") for key in self.keys]
            row_keys = pc.binary_join_element_wise(*filled, ",")
            hit = pc.is_in(row_keys, value_set=pa.array(list(samples), pa.string()))
            for member_id, row_key in zip(pc.filter(rows.column("member_id"), hit).to_pylist(),
                                          pc.filter(row_keys, hit).to_pylist()):
                rejected.append(RowRejection(member_id, f"Meta: {samples[row_key]}"))
        missing = max(0, invalid - len(rejected))
        self.unattributed += missing
        self.sent += rows.num_rows
        self.rejected += len(rejected) + missing
        self.accepted += rows.num_rows - len(rejected) - missing
        return PushResult(accepted=rows.num_rows - len(rejected) - missing, rejected=rejected)

    def _match_estimate(self) -> int | None:
        """Meta's approximate audience size after the push (its lower bound), when it gives one."""
        try:
            audience = self.client.request("GET", f"/{self.config.audience_id}", params={"fields": AUDIENCE_FIELDS},
                                           stream=f"audience {self.config.audience_id}", parse=self.parse) or {}
        except ThreadlineError as exc:
            log.warning("%s: pushed, but could not read the audience's size: %s", self.where, exc.message)
            return None
        lower = audience.get("approximate_count_lower_bound")
        return int(lower) if isinstance(lower, int) and lower >= 0 else None

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.client.close()
            self.duck.close()
