"""The `mailchimp_audiences` destination: a profile-store audience as a Mailchimp tag or static
segment on one Mailchimp audience (list).

Mailchimp keeps tags as static segments, so both targets go through one documented endpoint,
`POST /lists/{list_id}/segments/{segment_id}` with `members_to_add` / `members_to_remove`
(at most 500 addresses each): one request per 500 members instead of one per member. A tag is
found by name (`tag-search`) and created if it does not exist; a static segment is named by id.

Consent belongs to the Mailchimp audience: a push never subscribes anyone nor adds a contact.
An address that is not a contact of the audience is not tagged, and the member is reported as
rejected with Mailchimp's reason. The client, the key's data centre and the error wording come
from the `mailchimp` source (threadline-mailchimp), so read and write behave alike.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, model_validator
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
from threadline.http import HttpClient
from threadline.http.source import checking
from threadline_mailchimp.client import MailchimpCredentials, mailchimp_client

BATCH_LIMIT = 500  # members_to_add / members_to_remove per request (Mailchimp's maximum)
PAGE_LIMIT = 1000  # segment members per page when a mirror reads the segment back
NO_EMAIL = "no email address (Mailchimp contacts are keyed by email)"


class MailchimpAudiencesConfig(MailchimpCredentials):
    base_url: str | None = Field(None, description="Override of https://<dc>.api.mailchimp.com/3.0 (the sandbox's URL + /3.0).")
    list_id: str = Field(description="The Mailchimp audience (list) whose contacts are tagged, as in GET /lists.")
    target: Literal["tag", "static_segment"] = Field("tag", description="Push as a tag (found or created by name) or "
                                                                        "into an existing static segment.")
    tag: str | None = Field(None, min_length=1, max_length=100,
                            description="The tag's name (target tag); default: the audience's name.")
    segment_id: int | None = Field(None, description="The static segment's id (target static_segment).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(300.0, gt=0, description="Longest a push waits out 429s and retries for one request.")

    @model_validator(mode="after")
    def _target_named(self) -> MailchimpAudiencesConfig:
        if self.target == "static_segment" and self.segment_id is None:
            raise ValueError("segment_id is required when target is static_segment")
        return self


class MailchimpAudiences(AudienceDestination[MailchimpAudiencesConfig]):
    """Audiences as tags or static segments of a Mailchimp audience (see the module docstring)."""

    name = "mailchimp_audiences"
    spec = MailchimpAudiencesConfig
    channel = "email"
    max_batch_rows = BATCH_LIMIT
    min_members = 0  # a tag with one contact is still a tag
    modes = (PushMode.DIFF, PushMode.MIRROR)
    applies_each_batch = True  # each batch request is applied when it returns
    plain_columns = ("email",)  # Mailchimp adds contacts by address
    ledger_omitted = ("email",)  # and removes them by subscriber hash: the push ledger keeps no address

    def client(self, config: MailchimpAudiencesConfig) -> HttpClient:
        return mailchimp_client(config, self.name)  # the source's key, data centre, retries and error rules

    def check(self, config: MailchimpAudiencesConfig) -> None:
        with checking(self.client(config)) as client:
            try:
                client.request("GET", "/ping")
            except FatalError as exc:
                raise ConfigError(f"the API root answered an error: {exc.message}", field="base_url", where=exc.where,
                                  hint="base_url must be the API root, ending in /3.0 (leave it unset for Mailchimp's own)") from None
            with _not_found(config, "list_id"):
                client.request("GET", f"/lists/{config.list_id}", params={"fields": "id,name"})
            if config.target == "static_segment":
                with _not_found(config, "segment_id"):
                    segment = _json(client.request("GET", f"/lists/{config.list_id}/segments/{config.segment_id}"))
                if segment.get("type") != "static":
                    raise ConfigError(
                        f"segment {config.segment_id} ({segment.get('name')!r}) of audience {config.list_id!r} is a "
                        f"{segment.get('type')} segment: its members follow its conditions and cannot be pushed",
                        field="segment_id", where=self.name,
                        hint="create a static segment (or use target: tag) and give its id")

    def prepare(self, config: MailchimpAudiencesConfig, members: pa.Table) -> pa.Table:
        # Mailchimp's subscriber hash is the MD5 of the lower-cased address; the mirror compares by it
        return prepare_members(members, """
            SELECT member_id, email_norm(email) AS email, md5(email_norm(email)) AS subscriber_hash
            FROM members""")

    def open_audience(self, config: MailchimpAudiencesConfig, target: AudienceTarget) -> AudienceWriter:
        client = self.client(config)
        try:
            with _not_found(config, "list_id"):
                segment_id, label = self._segment(config, client, target)
        except BaseException:
            client.close()
            raise
        return MailchimpAudienceWriter(config, target, client, segment_id, label)

    def _segment(self, config: MailchimpAudiencesConfig, client: HttpClient, target: AudienceTarget) -> tuple[int, str]:
        """The segment id to push into: the static segment, or the tag found or created by name."""
        if config.target == "static_segment":
            assert config.segment_id is not None
            return config.segment_id, f"static segment {config.segment_id}"
        name = config.tag or target.audience
        found = _json(client.request("GET", f"/lists/{config.list_id}/tag-search", params={"name": name}))
        for tag in found.get("tags") or []:
            if str(tag.get("name", "")).lower() == name.lower():
                return int(tag["id"]), f"tag {name!r}"
        created = _json(client.request("POST", f"/lists/{config.list_id}/segments", json={"name": name, "static_segment": []}))
        return int(created["id"]), f"tag {name!r}"


class MailchimpAudienceWriter(AudienceWriter):
    """One push into one tag or static segment."""

    def __init__(self, config: MailchimpAudiencesConfig, target: AudienceTarget, client: HttpClient,
                 segment_id: int, label: str) -> None:
        self.config, self.target, self.client = config, target, client
        self.segment_id, self.label = segment_id, label
        self.path = f"/lists/{config.list_id}/segments/{segment_id}"
        self.report = PushReport(details={"list_id": config.list_id, "segment_id": segment_id, "target": label})
        self.kept: set[str] = set()  # subscriber hashes this mirror push put in the segment
        self.addresses: dict[str, str] | None = None  # hash -> address of the segment, once read for removals

    def add(self, rows: pa.Table) -> PushResult:
        result = self._tally(rows, self._send("members_to_add", rows))
        if self.target.mode is PushMode.MIRROR:
            refused = {r.member_id for r in result.rejected}
            self.kept.update(h for m, h in zip(rows.column("member_id").to_pylist(), rows.column("subscriber_hash").to_pylist())
                             if h and m not in refused)
        return result

    def remove(self, rows: pa.Table) -> PushResult:
        """Removals come from the push ledger, which keeps subscriber hashes, not addresses:
        each member is taken out of the segment by hash, or, when there are more removals than
        pages of the segment to read, the segment is read once (hash → address) and the
        addresses are removed 500 a request."""
        hashes = [h for h in rows.column("subscriber_hash").to_pylist() if h]
        with self._explained():
            read = self.addresses is not None or len(hashes) > self._segment_pages()
            done = self._remove_read(hashes) if read else self._remove_each(hashes)
        # A contact Mailchimp no longer holds (or without an address) is in no tag: the removal
        # is done, not pending.
        gone = rows.num_rows - done
        if gone:
            self.report.details["removes_not_on_list"] = self.report.details.get("removes_not_on_list", 0) + gone
        return self._tally(rows, PushResult(accepted=rows.num_rows))

    def finish(self) -> PushReport:
        try:
            with self._explained():
                if self.target.mode is PushMode.MIRROR:
                    self.report.details["mirror_removed"] = self._remove_others()
                segment = _json(self.client.request("GET", self.path, params={"fields": "id,name,member_count"}))
            # what Mailchimp itself counts in the tag: the truth whatever the per-request answers said
            self.report.match_estimate = segment.get("member_count")
            return self.report
        finally:
            self.client.close()

    def abort(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ requests

    def _send(self, field: str, rows: pa.Table) -> PushResult:
        ids = rows.column("member_id").to_pylist()
        emails = rows.column("email").to_pylist()
        result = PushResult(rejected=[RowRejection(m, NO_EMAIL) for m, e in zip(ids, emails) if not e])
        by_email: dict[str, list[str]] = defaultdict(list)
        for member_id, email in zip(ids, emails):
            if email:
                by_email[email].append(member_id)
        addresses = list(by_email)
        with self._explained():
            for start in range(0, len(addresses), BATCH_LIMIT):
                chunk = addresses[start:start + BATCH_LIMIT]
                answer = _json(self.client.request("POST", self.path, json={field: chunk}))
                refused = _refusals(answer, by_email)
                result.rejected += refused
                result.accepted += sum(len(by_email[e]) for e in chunk) - len(refused)
        return result

    def _segment_pages(self) -> int:
        segment = _json(self.client.request("GET", self.path, params={"fields": "member_count"}))
        return int(segment.get("member_count") or 0) // PAGE_LIMIT + 1

    def _remove_each(self, hashes: list[str]) -> int:
        """DELETE /lists/{list}/segments/{segment}/members/{subscriber_hash}, one by one; a 404
        is a contact already out of it. Returns how many were taken out."""
        done = 0
        for h in hashes:
            try:
                self.client.request("DELETE", f"{self.path}/members/{h}")
                done += 1
            except FatalError as exc:
                if exc.status != 404:
                    raise
        return done

    def _remove_read(self, hashes: list[str]) -> int:
        """Read the segment (once a push) for the addresses of these hashes, then remove them in
        batches. Addresses are held in memory for this push only."""
        if self.addresses is None:
            self.addresses = {}
            offset = 0
            while True:
                page = _json(self.client.request("GET", f"{self.path}/members", params={
                    "count": PAGE_LIMIT, "offset": offset, "fields": "members.id,members.email_address,total_items"}))
                members = page.get("members") or []
                self.addresses.update((m["id"], m["email_address"]) for m in members if m.get("id"))
                offset += len(members)
                if not members or offset >= int(page.get("total_items") or 0):
                    break
        found = [self.addresses.pop(h) for h in hashes if h in self.addresses]
        for start in range(0, len(found), BATCH_LIMIT):
            self.client.request("POST", self.path, json={"members_to_remove": found[start:start + BATCH_LIMIT]})
        return len(found)

    def _tally(self, rows: pa.Table, result: PushResult) -> PushResult:
        self.report.sent += rows.num_rows
        self.report.accepted += result.accepted
        self.report.rejected += len(result.rejected)
        return result

    def _remove_others(self) -> int:
        """Mirror: take out of the segment every contact this push did not put in it."""
        others: list[str] = []
        offset = 0
        while True:
            page = _json(self.client.request("GET", f"{self.path}/members", params={
                "count": PAGE_LIMIT, "offset": offset, "fields": "members.id,members.email_address,total_items"}))
            members = page.get("members") or []
            others += [m["email_address"] for m in members if m.get("id") not in self.kept]
            offset += len(members)
            if not members or offset >= int(page.get("total_items") or 0):
                break
        for start in range(0, len(others), BATCH_LIMIT):
            self.client.request("POST", self.path, json={"members_to_remove": others[start:start + BATCH_LIMIT]})
        return len(others)

    @contextmanager
    def _explained(self) -> Iterator[None]:
        with _not_found(self.config, "", self.label):
            yield


def _refusals(answer: dict[str, Any], by_email: dict[str, list[str]]) -> list[RowRejection]:
    """Mailchimp's `errors` ({email_addresses, error}) as rejections; the reason never quotes an address."""
    refused = []
    for error in answer.get("errors") or []:
        reason = f"not changed by Mailchimp: {_scrub(str(error.get('error') or 'no reason given'))}"
        for address in error.get("email_addresses") or []:
            for member_id in by_email.get(str(address).strip().lower(), []):
                refused.append(RowRejection(member_id, reason))
    return refused


_ADDRESS = re.compile(r"\S+@\S+")


def _scrub(text: str) -> str:
    return _ADDRESS.sub("<address>", text)


def _json(answer: Any) -> dict[str, Any]:
    """The JSON body of a request the client answered (an ignored status gives {})."""
    if answer is None:
        return {}
    body = answer.json()
    return body if isinstance(body, dict) else {}


@contextmanager
def _not_found(config: MailchimpAudiencesConfig, field: str, label: str = "") -> Iterator[None]:
    """A 404 under /lists/{id} is a deleted audience or segment: say which, and on which field."""
    try:
        yield
    except FatalError as exc:
        if exc.status != 404:
            raise
        what = {"list_id": f"audience (list) {config.list_id!r}", "segment_id": f"segment {config.segment_id}"}.get(
            field, f"audience {config.list_id!r} or its {label or 'segment'}")
        message = f"{what} was not found — Mailchimp answered 404; it was deleted or the id is wrong. Request: {exc.message}"
        hint = "check the id in Mailchimp (Audience → Settings → Audience name and defaults shows the audience id)"
        if field:
            raise ConfigError(message, field=field, where=exc.where, hint=hint) from None
        raise FatalError(message, where=exc.where, hint=hint) from None
