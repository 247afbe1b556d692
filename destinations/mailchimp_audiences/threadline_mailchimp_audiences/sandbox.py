"""The Mailchimp sandbox of `threadline-mailchimp`, with the write side that audiences use
(`threadline sandbox mailchimp_audiences`). Everything the read side serves is still served,
so one sandbox feeds the `mailchimp` source and takes the `mailchimp_audiences` pushes.

Added, as Mailchimp documents it (Marketing API 3.0, "Organize contacts with tags" and
"List segments"):

    GET  /3.0/lists/{list_id}                                   the audience, 404 when unknown
    GET  /3.0/lists/{list_id}/tag-search?name=                  {"tags": [{"id", "name"}], "total_items"}
    POST /3.0/lists/{list_id}/segments                          {"name", "static_segment": []} creates a tag
    GET  /3.0/lists/{list_id}/segments/{segment_id}             {"id", "name", "member_count", "type", ...}
    GET  /3.0/lists/{list_id}/segments/{segment_id}/members?count=&offset=
    POST /3.0/lists/{list_id}/segments/{segment_id}             batch: {"members_to_add": [...], "members_to_remove": [...]}
                                  → {"members_added", "members_removed", "errors": [{"email_addresses", "error"}],
                                     "total_added", "total_removed", "error_count"}
    GET  /3.0/lists/{list_id}/segments?type=saved|static|fuzzy&count=&offset=   {"segments": [...], "total_items"}
    POST /3.0/lists/{list_id}/members/{subscriber_hash}/tags    {"tags": [{"name", "status": "active"|"inactive"}]} → 204
    DELETE /3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}
                                  → 204; 404 when the contact is not in the segment ("Remove list member from segment")

Enforced:
- at most 500 addresses in `members_to_add` and in `members_to_remove`: 400 "Invalid Resource"
  "Maximum allowed member items exceeded, please provide at most 500 items in members_to_add
  field or members_to_remove field" (Mailchimp's text, as users have reported it);
- only static segments (tags are static segments) take members: a saved (condition-based)
  segment answers 400 "A Static Segment with an id of N does not exist for this list";
- addresses that are not contacts of the audience are not added: they come back in `errors`
  with `NOT_ON_LIST` (the docs say such addresses are "ignored"; the exact error text is this
  sandbox's, unverified);
- tags are static segments: adding a contact to one shows it in the member's `tags` (and moves
  `last_changed`), so the `mailchimp` source reads pushed tags back;
- `throttle(n)`: the next n requests answer 429 "Too Many Requests" as Mailchimp does past
  its 10 simultaneous connections per key (a problem+json body, no Retry-After header).

`contacts` (constructor) puts these addresses on the newsletter audience as subscribed
contacts, so tests and demos push people Mailchimp already holds; static segment
`STATIC_SEGMENT_ID` ("Spring catalogue") and saved segment `SAVED_SEGMENT_ID` exist on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar

from threadline.sandbox import Reply, SandboxError, SandboxRequest
from threadline_mailchimp.sandbox import _EPOCH, MailchimpSandbox, links, problem, stamp, subscriber_hash

BATCH_LIMIT = 500
NOT_ON_LIST = "Email address is not a contact of this audience and was not added"
SEGMENT_LIMIT_DETAIL = ("Maximum allowed member items exceeded, please provide at most 500 items in members_to_add "
                        "field or members_to_remove field")
THROTTLED_DETAIL = "You have exceeded the limit of 10 simultaneous connections."


class MailchimpAudiencesSandbox(MailchimpSandbox):
    """The Mailchimp sandbox plus tags and static segments (see the module docstring)."""

    name = "mailchimp_audiences"
    STATIC_SEGMENT_ID = 2001
    SAVED_SEGMENT_ID = 2002

    def __init__(self, *, seed: int = 0, port: int = 0, people: int = 2000, contacts: Iterable[str] = ()) -> None:
        self.contacts = [c.strip().lower() for c in contacts]
        self._throttled = 0
        super().__init__(seed=seed, port=port, people=people)

    # ------------------------------------------------------------------ data

    @property
    def newsletter(self) -> str:
        return self.list_ids[0]

    def seed_data(self) -> None:
        super().seed_data()
        self._throttled = 0
        self._segments: dict[str, dict[int, dict[str, Any]]] = {lid: {} for lid in self._lists}
        for lid, members in self._members.items():  # tags already on contacts are static segments
            for h, member in members.items():
                for tag in member["tags"]:
                    self._segment(lid, tag["id"], tag["name"])["members"].add(h)
        when = self._tick()
        for email in self.contacts:
            member = self._make_member(self._rng, self.newsletter, email, "", "", when)
            member.update(status="subscribed", tags=[], tags_count=0)
            self._put(member)
        self._segment(self.newsletter, self.STATIC_SEGMENT_ID, "Spring catalogue")
        self._segment(self.newsletter, self.SAVED_SEGMENT_ID, "Opened in the last 30 days", kind="saved")

    def _segment(self, list_id: str, segment_id: int, name: str, kind: str = "static") -> dict[str, Any]:
        created = stamp(_EPOCH - timedelta(days=30))
        return self._segments[list_id].setdefault(segment_id, {
            "id": segment_id, "name": name, "type": kind, "created_at": created, "updated_at": created,
            "list_id": list_id, "members": set()})

    # ------------------------------------------------------------------ what tests use

    def segment_emails(self, list_id: str, segment_id: int) -> set[str]:
        """Addresses (lower-case) of every contact in a segment or tag."""
        with self._lock:
            members = self._members[list_id]
            return {members[h]["email_address"].lower() for h in self._segments[list_id][segment_id]["members"]}

    def segment_hashes(self, list_id: str, segment_id: int) -> set[str]:
        with self._lock:
            return set(self._segments[list_id][segment_id]["members"])

    def tag_id(self, list_id: str, name: str) -> int | None:
        with self._lock:
            return next((s["id"] for s in self._segments[list_id].values() if s["name"] == name), None)

    def archive(self, list_id: str, email: str) -> None:
        """The contact leaves the audience (archived): pushes of it are refused from now on."""
        with self._lock:
            self._cache.clear()
            h = subscriber_hash(email)
            self._members[list_id].pop(h, None)
            for segment in self._segments[list_id].values():
                segment["members"].discard(h)

    def throttle(self, times: int) -> None:
        """The next `times` requests answer 429 as Mailchimp does past 10 simultaneous connections."""
        with self._lock:
            self._throttled = times

    def control_throttle(self, body: dict[str, Any]) -> dict[str, Any]:
        self.throttle(int(body.get("times", 1)))
        return {"throttled": self._throttled}

    # ------------------------------------------------------------------ the API

    _WRITE_ROUTES: ClassVar[list[tuple[str, re.Pattern[str], str]]] = [
        ("GET", re.compile(r"^/3\.0/lists/([^/]+)/?$"), "_get_list"),
        ("GET", re.compile(r"^/3\.0/lists/([^/]+)/tag-search/?$"), "_tag_search"),
        ("POST", re.compile(r"^/3\.0/lists/([^/]+)/segments/?$"), "_create_segment"),
        ("GET", re.compile(r"^/3\.0/lists/([^/]+)/segments/?$"), "_list_segments"),
        ("POST", re.compile(r"^/3\.0/lists/([^/]+)/members/([0-9a-f]{32})/tags/?$"), "_tag_member"),
        ("GET", re.compile(r"^/3\.0/lists/([^/]+)/segments/(\d+)/?$"), "_get_segment"),
        ("GET", re.compile(r"^/3\.0/lists/([^/]+)/segments/(\d+)/members/?$"), "_get_segment_members"),
        ("POST", re.compile(r"^/3\.0/lists/([^/]+)/segments/(\d+)/?$"), "_batch_segment"),
        ("DELETE", re.compile(r"^/3\.0/lists/([^/]+)/segments/(\d+)/members/([0-9a-f]{32})/?$"), "_remove_from_segment"),
    ]

    def _dispatch(self, req: SandboxRequest) -> Reply:
        with self._lock:
            if self._throttled > 0:
                self._throttled -= 1
                return problem(429, "Too Many Requests", THROTTLED_DETAIL)
        for method, pattern, handler in self._WRITE_ROUTES:
            match = pattern.match(req.path)
            if match and req.method == method:
                refused = self._authenticate(req)
                if refused is not None:
                    return refused
                try:
                    with self._lock:
                        return getattr(self, handler)(req, *match.groups())
                except SandboxError as exc:
                    return problem(exc.status, "Invalid Resource", exc.error)
        return super()._dispatch(req)

    def _list_or_404(self, list_id: str) -> Reply | None:
        if list_id not in self._lists:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        return None

    def _segment_or_404(self, list_id: str, segment_id: str) -> dict[str, Any] | Reply:
        missing = self._list_or_404(list_id)
        if missing is not None:
            return missing
        segment = self._segments[list_id].get(int(segment_id))
        if segment is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        return segment

    def _segment_view(self, segment: dict[str, Any], req: SandboxRequest) -> dict[str, Any]:
        view = {k: v for k, v in segment.items() if k != "members"}
        view["member_count"] = len(segment["members"])
        if segment["type"] == "saved":
            view["options"] = {"match": "all", "conditions": [{"field": "aim", "op": "open", "value": "any"}]}
        href = f"/3.0/lists/{segment['list_id']}/segments/{segment['id']}"
        view["_links"] = links(req.base_url, ("self", "GET", href), ("update", "PATCH", href), ("delete", "DELETE", href),
                               ("members", "GET", f"{href}/members"))
        return view

    def _list_segments(self, req: SandboxRequest, list_id: str) -> Reply:
        """List segments: tags are static segments; `type` keeps one kind (saved, static, fuzzy)."""
        missing = self._list_or_404(list_id)
        if missing is not None:
            return missing
        kind = req.param("type")
        if kind not in (None, "", "saved", "static", "fuzzy"):
            raise SandboxError(400, f"type: {kind!r} is not one of saved, static, fuzzy")
        count, offset = self._window(req)
        rows = [s for s in self._segments[list_id].values() if not kind or s["type"] == kind]
        href = f"/3.0/lists/{list_id}/segments"
        return self.answer(req, {"segments": [self._segment_view(s, req) for s in rows[offset:offset + count]],
                                 "list_id": list_id, "total_items": len(rows),
                                 "_links": links(req.base_url, ("self", "GET", href), ("create", "POST", href))})

    def _tag_member(self, req: SandboxRequest, list_id: str, member_hash: str) -> Reply:
        """Add or remove tags on one contact by name (`status` active or inactive); an unknown
        name becomes a new tag. Answers 204, as Mailchimp does."""
        missing = self._list_or_404(list_id)
        if missing is not None:
            return missing
        member = self._members[list_id].get(member_hash)
        if member is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        tags = req.json().get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tags):
            raise SandboxError(400, "tags: must be an array of {name, status}")
        for tag in tags:
            if tag.get("status") not in ("active", "inactive"):
                raise SandboxError(400, f"tags.status: {tag.get('status')!r} is not one of active, inactive")
            segment = next((s for s in self._segments[list_id].values() if s["name"] == tag["name"]), None)
            if segment is None and tag["status"] == "active":
                new_id = max([3000, *(s for lid in self._segments for s in self._segments[lid])]) + 1
                segment = self._segment(list_id, new_id, tag["name"])
            if segment is not None and segment["type"] == "static":
                self._apply(list_id, segment, [member["email_address"]], add=tag["status"] == "active")
        return Reply(204, b"", {})

    def _get_list(self, req: SandboxRequest, list_id: str) -> Reply:
        return self._list_or_404(list_id) or self.answer(req, self._list_view(self._lists[list_id]))

    def _tag_search(self, req: SandboxRequest, list_id: str) -> Reply:
        missing = self._list_or_404(list_id)
        if missing is not None:
            return missing
        wanted = (req.param("name") or "").lower()
        tags = [{"id": s["id"], "name": s["name"]} for s in self._segments[list_id].values()
                if s["type"] == "static" and wanted in s["name"].lower()]
        return self.answer(req, {"tags": tags, "total_items": len(tags)})

    def _create_segment(self, req: SandboxRequest, list_id: str) -> Reply:
        missing = self._list_or_404(list_id)
        if missing is not None:
            return missing
        body = req.json()
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SandboxError(400, "name: This value should not be blank.")
        if ("static_segment" in body) == ("options" in body):
            raise SandboxError(400, 'Must provide either an "options" field or a "static_segment" field')
        if any(s["name"] == name for s in self._segments[list_id].values()):
            raise SandboxError(400, f"A segment or tag named {name!r} already exists")  # (unverified text)
        new_id = max([3000, *(s for lid in self._segments for s in self._segments[lid])]) + 1
        segment = self._segment(list_id, new_id, name, "static" if "static_segment" in body else "saved")
        segment["created_at"] = segment["updated_at"] = stamp(self._tick())
        if segment["type"] == "static":
            self._apply(list_id, segment, body.get("static_segment") or [], add=True)
        return self.answer(req, self._segment_view(segment, req))

    def _get_segment(self, req: SandboxRequest, list_id: str, segment_id: str) -> Reply:
        segment = self._segment_or_404(list_id, segment_id)
        return segment if isinstance(segment, Reply) else self.answer(req, self._segment_view(segment, req))

    def _get_segment_members(self, req: SandboxRequest, list_id: str, segment_id: str) -> Reply:
        segment = self._segment_or_404(list_id, segment_id)
        if isinstance(segment, Reply):
            return segment
        count, offset = self._window(req)
        rows = [self._members[list_id][h] for h in sorted(segment["members"])]
        page = [self._member_view(req, m) for m in rows[offset:offset + count]]
        return self.answer(req, {"members": page, "total_items": len(rows),
                                 "_links": links(req.base_url, ("self", "GET", req.path), ("parent", "GET", req.path.rsplit("/", 1)[0]))})

    def _batch_segment(self, req: SandboxRequest, list_id: str, segment_id: str) -> Reply:
        segment = self._segment_or_404(list_id, segment_id)
        if isinstance(segment, Reply):
            return segment
        body = req.json()
        adds, removes = body.get("members_to_add") or [], body.get("members_to_remove") or []
        if not isinstance(adds, list) or not isinstance(removes, list) or not all(
                isinstance(e, str) for e in [*adds, *removes]):
            raise SandboxError(400, "members_to_add and members_to_remove must be arrays of email addresses")
        if len(adds) > BATCH_LIMIT or len(removes) > BATCH_LIMIT:
            raise SandboxError(400, SEGMENT_LIMIT_DETAIL)
        if segment["type"] != "static":
            raise SandboxError(400, f"A Static Segment with an id of {segment_id} does not exist for this list")
        added, add_errors = self._apply(list_id, segment, adds, add=True)
        removed, remove_errors = self._apply(list_id, segment, removes, add=False)
        errors = [{"email_addresses": missed, "error": NOT_ON_LIST} for missed in (add_errors, remove_errors) if missed]
        return self.answer(req, {
            "members_added": added, "members_removed": removed, "errors": errors,
            "total_added": len(added), "total_removed": len(removed), "error_count": sum(len(e) for e in (add_errors, remove_errors)),
        })

    def _remove_from_segment(self, req: SandboxRequest, list_id: str, segment_id: str, member_hash: str) -> Reply:
        segment = self._segment_or_404(list_id, segment_id)
        if isinstance(segment, Reply):
            return segment
        if segment["type"] != "static":
            raise SandboxError(400, f"A Static Segment with an id of {segment_id} does not exist for this list")
        if member_hash not in segment["members"]:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        self._apply(list_id, segment, [self._members[list_id][member_hash]["email_address"]], add=False)
        return Reply(204, b"", {})

    def _apply(self, list_id: str, segment: dict[str, Any], emails: list[str], *, add: bool) -> tuple[list[Any], list[str]]:
        """Add or remove contacts by address; addresses that are not contacts come back apart."""
        done, missed = [], []
        members = self._members[list_id]
        tag = {"id": segment["id"], "name": segment["name"]}
        when = stamp(self._tick()) if emails else None
        for email in emails:
            h = subscriber_hash(email.strip())
            member = members.get(h)
            if member is None:
                missed.append(email)
                continue
            if add:
                segment["members"].add(h)
                if tag not in member["tags"]:
                    member["tags"].append(tag)
            else:
                segment["members"].discard(h)
                member["tags"] = [t for t in member["tags"] if t["id"] != segment["id"]]
            member.update(tags_count=len(member["tags"]), last_changed=when)
            done.append(json.loads(json.dumps(member)))
        if emails:
            segment["updated_at"] = when
            self._cache.clear()  # the read side serves members pre-serialised
        return done, missed
