"""The Mailchimp Marketing API 3.0 on loopback, for tests and demos (`threadline sandbox mailchimp`).

What it implements, as Mailchimp documents it:

    GET /3.0/ping                                              {"health_status": "Everything's Chimpy!"}
    GET /3.0/lists?count=&offset=                              {"lists": [...], "total_items": N}
    GET /3.0/lists/{list_id}/members?count=&offset=
        &since_last_changed=<ISO 8601>&sort_field=last_changed&sort_dir=ASC&status=
                                                               {"members": [...], "list_id", "total_items"}
    GET /3.0/lists/{list_id}/members/{subscriber_hash}/activity
                                                               {"activity": [...] (last 50), "email_id", ...}
    GET /3.0/lists/{list_id}/members/{subscriber_hash}                  one member (a hash or an address)
    GET /3.0/lists/{list_id}/members/{subscriber_hash}/tags      {"tags": [{"id", "name", "date_added"}], ...}

- Every answer honours `fields` and `exclude_fields` (comma-separated dot paths such as
  `members.email_address`). Members carry `interests`, `marketing_permissions` and `_links`,
  as the API reference shows them.
- Auth: an OAuth 2 access token (`Authorization: Bearer ACCESS_TOKEN`, as the official client
  sends it), or HTTP basic, any user name, the API key as password. A key is `<32 hex>-<dc>`; this
  sandbox is data centre `DATA_CENTER` ("us21"): a key for another data centre is refused with
  401 "API Key Invalid" and Mailchimp's "...you've attempted to access the wrong datacenter".
- `count` is at most 1000 (default 10); `since_last_changed` keeps members changed strictly
  *after* it, as documented ("changed after the set timeframe").
- Errors are `application/problem+json`: {"type", "title", "status", "detail", "instance"}.
  A deleted list answers 404 "Resource Not Found".

Seeded data: the members are people of the population shared by every vendor sandbox
(`threadline.sandbox.people`, population `2026 + seed`), so the same people are also in the
shop, the CRMs and the loyalty program. Everyone is on the newsletter with the status their
email consent has now (subscribed, unsubscribed with or without a reason, cleaned after a
bounce; double opt-in sign-ups of the last days still pending) and `last_changed` when it
last changed; buyers may also be on "Product updates" (with their work email, if they have
one, more often than not; some added by the shop integration as `transactional`), loyal customers on "VIP club"
(some typed in capitals). Activity is the newsletter's campaigns (every two weeks): sends,
opens, clicks, bounces. Some merge fields are empty, `timestamp_signup` is "" when unknown,
`last_changed` values repeat in threes. Tests change data between syncs with `unsubscribe`,
`add_members`, `update_members`, remove an audience with `delete_list`, and refuse the key with
`revoke_credentials`; faults come from the base class (`inject`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote

from threadline.sandbox import Reply, Sandbox, SandboxError, SandboxRequest
from threadline.sandbox.people import AS_OF, CAMPAIGNS, Person, format_phone, in_threes, members_of, population_seed
from threadline_mailchimp.sandbox_reports import CampaignReports, stamp

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus", ""]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton"]
_REASONS = ["N/A (Unsubscribed by an admin)", "I no longer want to receive these emails",
            "The emails are inappropriate", "I never signed up for this mailing list", None]
_TAGS = ["customer", "vip", "black-friday-2025", "lead", "wholesale"]
_ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"
_CAMPAIGNS = CAMPAIGNS["mailchimp"]

_LISTS = [("a1b2c3d4e5", "Newsletter"), ("f6a7b8c9d0", "Product updates"), ("0e1d2c3b4a", "VIP club")]
INTERESTS = ("9143cf3bd1", "3a2a927344", "f2b6ea8c1b")  # "Topics": coffee, brewing gear, events (checkboxes)
EMAIL_PERMISSION_ID = "5c1b2a3d4e"  # the audience's GDPR "Email" marketing permission


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased email address."""
    return hashlib.md5(email.lower().encode()).hexdigest()


def _homes(rng: random.Random, person: Person) -> list[tuple[str, str, str, datetime]]:
    """(list, email, status, last changed) for each audience the person is on."""
    email = person.contacts["mailchimp"].email
    status, changed = person.email_consent.status, person.email_consent.at or person.first_seen
    signed_up = person.email_consent.history[0][0] if person.email_consent.history else changed
    if status == "subscribed" and AS_OF - signed_up < timedelta(days=3) and rng.random() < 0.5:
        status = "pending"  # never clicked the confirmation link
    homes = [(_LISTS[0][0], email, status, changed)]
    if person.orders and rng.random() < 0.45:  # product updates, a third of them at work
        address = person.email_of("work") if person.email_of("work") and rng.random() < 0.6 else email
        joined = person.orders[0].at + timedelta(minutes=rng.randrange(1, 60))
        roll = rng.random()
        state = "transactional" if roll < 0.2 else "unsubscribed" if roll < 0.3 else "subscribed"
        homes.append((_LISTS[1][0], address, state, joined))
    if (person.segment == "loyal" or person.lifetime_value() > 300) and rng.random() < 0.8:
        joined = max(changed, AS_OF - timedelta(days=rng.randrange(1, 400)))
        state = "pending" if AS_OF - joined < timedelta(days=20) else "subscribed" if status == "subscribed" else status
        homes.append((_LISTS[2][0], email.upper() if rng.random() < 0.2 else email, state, joined))
    return homes


def _activity(action: str, at: datetime, campaign: str, title: str, url: str | None = None) -> dict[str, Any]:
    return {"action": action, "timestamp": stamp(at), "url": url or "", "type": "regular", "campaign_id": campaign,
            "title": title, "parent_campaign": ""}


def problem(status: int, title: str, detail: str) -> Reply:
    body = {"type": _ERRORS_DOC, "title": title, "status": status, "detail": detail, "instance": str(uuid.uuid4())}
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/problem+json; charset=utf-8"})


def links(base: str, *rels: tuple[str, str, str]) -> list[dict[str, str]]:
    """Mailchimp's HATEOAS `_links`: (rel, method, path under base) each."""
    return [{"rel": rel, "href": f"{base}{path}", "method": method, "targetSchema": "", "schema": ""}
            for rel, method, path in rels]


def _paths(text: str | None) -> list[list[str]]:
    return [p.strip().split(".") for p in (text or "").split(",") if p.strip()]


def _only(value: Any, paths: list[list[str]]) -> Any:
    """`value` with only the fields `paths` name (a list applies them to each item)."""
    if isinstance(value, list):
        return [_only(item, paths) for item in value]
    if not isinstance(value, dict) or any(not p for p in paths):
        return value
    out = {}
    for key in value:
        below = [p[1:] for p in paths if p[0] == key]
        if below:
            out[key] = _only(value[key], below)
    return out


def _without(value: Any, paths: list[list[str]]) -> Any:
    """`value` without the fields `paths` name."""
    if isinstance(value, list):
        return [_without(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        below = [p[1:] for p in paths if p[0] == key]
        if any(not b for b in below):
            continue
        out[key] = _without(item, below) if below else item
    return out


def sparse(body: Any, req: SandboxRequest) -> Any:
    """`fields` and `exclude_fields` as Mailchimp applies them: comma-separated dot paths
    (`members.email_address`), `fields` keeping only those, `exclude_fields` dropping them."""
    fields, excluded = _paths(req.param("fields")), _paths(req.param("exclude_fields"))
    if fields:
        body = _only(body, fields)
    if excluded:
        body = _without(body, excluded)
    return body


class MailchimpSandbox(CampaignReports, Sandbox):
    """Seeded audiences and members behind Mailchimp's documented API (see the module docstring)."""

    name = "mailchimp"
    DATA_CENTER = "us21"
    API_KEY = "0123456789abcdef0123456789abcdef-us21"
    WRONG_DC_KEY = "0123456789abcdef0123456789abcdef-us6"
    ACCESS_TOKEN = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # an OAuth access token for this account's data centre

    def __init__(self, *, seed: int = 0, port: int = 0, people: int = 2000) -> None:
        self.people = people
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._rng = rng
        self._revoked = False
        self._cache: dict[Any, Reply] = {}
        self._lists: dict[str, dict[str, Any]] = {
            lid: self._make_list(lid, name, n) for n, (lid, name) in enumerate(_LISTS)
        }
        self._members: dict[str, dict[str, dict[str, Any]]] = {lid: {} for lid in self._lists}
        self._activity: dict[tuple[str, str], list[dict[str, Any]]] = {}
        homes: list[tuple[str, str, Person]] = []
        for person in members_of("mailchimp", self.people, population_seed(self.seed)):
            for lid, address, status, changed in _homes(rng, person):
                member = self._make_member(rng, lid, address, person.contacts["mailchimp"].first_name,
                                           person.last_name, changed)
                self._as_person(rng, member, person, status, changed)
                self._put(member)
                homes.append((lid, member["id"], person))
        self._seed_reports(_LISTS[0][0], homes)
        members = [m for lid in self._members for m in self._members[lid].values()]
        for member, moment in zip(members, in_threes([datetime.fromisoformat(m["last_changed"]) for m in members])):
            member["last_changed"] = stamp(moment)
        self._clock = max((datetime.fromisoformat(m["last_changed"]) for m in members), default=AS_OF) + timedelta(minutes=1)

    def _as_person(self, rng: random.Random, member: dict[str, Any], person: Person, status: str,
                   changed: datetime) -> None:
        """Make a seeded member what the population says of this person."""
        lid, h = member["list_id"], member["id"]
        contact = person.contacts["mailchimp"]
        history = person.email_consent.history
        opted = history[0][0] if history else changed
        events = self._newsletter_activity(person) if lid == _LISTS[0][0] else self._list_activity(rng, person, lid)
        sent = sum(1 for _, at, _ in _CAMPAIGNS if person.email_consent.as_of(at)[0] == "subscribed") or 1
        opens = sum(1 for e in events if e["action"] == "open")
        clicks = sum(1 for e in events if e["action"] == "click")
        home = person.address
        member.update(
            status=status, last_changed=stamp(changed),
            timestamp_opt=stamp(min(opted, changed)) if status != "transactional" else "",
            timestamp_signup="" if rng.random() < 0.2 or status == "transactional" else stamp(opted - timedelta(minutes=2)),
            language="de" if home.country == "DE" else "fr" if home.region == "QC" else rng.choice(["en", "en", ""]),
            stats={"avg_open_rate": round(min(opens / sent, 1.0), 2), "avg_click_rate": round(min(clicks / sent, 1.0), 2)},
            member_rating=min(5, 1 + opens // 2 + clicks), vip=person.segment == "loyal" and rng.random() < 0.5,
            source="API - Generic" if person.orders and rng.random() < 0.5 else rng.choice(["Hosted Signup Form", "Import"]),
        )
        member["merge_fields"].update(
            FNAME="" if rng.random() < 0.05 else contact.first_name, LNAME=person.last_name,
            PHONE=format_phone(contact.phone, "international") if contact.phone else "",
            ADDRESS="" if rng.random() < 0.7 else {"addr1": home.line1, "addr2": home.line2 or "", "city": home.city,
                                                    "state": home.region, "zip": home.postal_code, "country": home.country},
        )
        member["marketing_permissions"][0]["enabled"] = status == "subscribed"
        member["location"]["country_code"] = "" if rng.random() < 0.2 else home.country
        tags = [t for t, keep in (("customer", bool(person.orders)), ("vip", person.segment == "loyal"),
                                  ("black-friday-2025", any(o.at.month == 11 and o.at.year == 2025 for o in person.orders)),
                                  ("lead", not person.orders), ("wholesale", bool(person.company) and rng.random() < 0.3)) if keep]
        member["tags"] = [{"id": 1000 + _TAGS.index(t), "name": t} for t in tags]
        member["tags_count"] = len(tags)
        member.pop("unsubscribe_reason", None)
        if status == "unsubscribed":
            reason = rng.choice(_REASONS)
            if reason is not None:  # Mailchimp leaves it out when nobody gave one
                member["unsubscribe_reason"] = reason
        self._activity[(lid, h)] = events[:50]

    @staticmethod
    def _newsletter_activity(person: Person) -> list[dict[str, Any]]:
        """The newsletter's sends (the last few campaigns), opens, clicks and bounces, newest first."""
        events = [_activity(e.action, e.at, e.campaign_id, e.subject, e.url) for e in person.email_events
                  if e.esp == "mailchimp"]
        for campaign, sent, subject in _CAMPAIGNS[-3:]:
            if person.email_consent.as_of(sent)[0] == "subscribed":
                events.append(_activity("sent", sent, campaign, subject))
        return sorted(events, key=lambda e: e["timestamp"], reverse=True)

    @staticmethod
    def _list_activity(rng: random.Random, person: Person, list_id: str) -> list[dict[str, Any]]:
        """Another audience's campaigns (monthly): sends, and opens as often as the person opens the newsletter."""
        newsletter = [e for e in person.email_events if e.esp == "mailchimp"]
        rate = min(1.0, sum(1 for e in newsletter if e.action == "open") / max(1, len(_CAMPAIGNS)))
        events = []
        for k in range(rng.randrange(0, 4)):
            sent = AS_OF - timedelta(days=30 * k + 9, hours=-15)
            campaign = f"{list_id[:4]}-{sent:%Y%m%d}"
            title = "VIP early access" if list_id == _LISTS[2][0] else "What's new in the shop"
            events.append(_activity("sent", sent, campaign, title))
            if rng.random() < rate:
                events.append(_activity("open", sent + timedelta(minutes=rng.randrange(3, 900)), campaign, title))
        return sorted(events, key=lambda e: e["timestamp"], reverse=True)

    def _make_list(self, lid: str, name: str, n: int) -> dict[str, Any]:
        return {
            "id": lid, "web_id": 100 + n, "name": name,
            "contact": {"company": "Threadline Coffee", "city": "London", "country": "GB"},
            "permission_reminder": "You signed up on our website.",
            "campaign_defaults": {"from_name": "Threadline Coffee", "from_email": "hello@example.com",
                                  "subject": "", "language": "en"},
            "date_created": stamp(_EPOCH - timedelta(days=400 - 30 * n)),
            "double_optin": n == 2, "visibility": "prv", "email_type_option": False,
            "stats": {"member_count": 0, "unsubscribe_count": 0, "cleaned_count": 0},
        }

    def _make_member(self, rng: random.Random, lid: str, email: str, first: str, last: str,
                     changed: datetime) -> dict[str, Any]:
        roll = rng.random()
        status = ("subscribed" if roll < 0.75 else "unsubscribed" if roll < 0.85 else "cleaned" if roll < 0.9
                  else "pending" if roll < 0.95 else "transactional")
        h = subscriber_hash(email)
        signup = "" if rng.random() < 0.2 else stamp(changed - timedelta(days=rng.randrange(1, 900)))
        tags = [{"id": 1000 + _TAGS.index(t), "name": t} for t in rng.sample(_TAGS, k=rng.randrange(0, 3))]
        member = {
            "id": h, "email_address": email, "unique_email_id": h[:10], "contact_id": h[::-1][:32],
            "full_name": f"{first} {last}".strip(), "web_id": int(h[:7], 16), "email_type": "html",
            "status": status,
            "merge_fields": {
                "FNAME": first, "LNAME": last,
                "PHONE": "" if rng.random() < 0.5 else f"+44 20 {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}",
                "ADDRESS": "" if rng.random() < 0.7 else {
                    "addr1": "1 Main St", "addr2": "", "city": "London", "state": "", "zip": "N1 9GU", "country": "GB"},
            },
            "stats": {"avg_open_rate": round(rng.random(), 2), "avg_click_rate": round(rng.random() / 3, 2)},
            "ip_signup": "", "timestamp_signup": signup,
            "ip_opt": f"198.51.100.{rng.randrange(1, 255)}", "timestamp_opt": stamp(changed - timedelta(days=1)),
            "member_rating": rng.randrange(1, 6), "last_changed": stamp(changed), "language": rng.choice(["en", "fr", ""]),
            "vip": rng.random() < 0.05, "email_client": "",
            "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": rng.choice(["GB", "FR", ""]),
                         "timezone": ""},
            "source": rng.choice(["API - Generic", "Hosted Signup Form", "Import"]),
            "tags_count": len(tags), "tags": tags, "list_id": lid,
            "consents_to_one_to_one_messaging": True,
            # groups the contact picked on the sign-up form; the audience's GDPR permission
            "interests": {iid: int(h[n], 16) % 3 == 0 for n, iid in enumerate(INTERESTS)},
            "marketing_permissions": [{"marketing_permission_id": EMAIL_PERMISSION_ID, "text": "Email",
                                       "enabled": status == "subscribed"}],
            "last_note": None, "sms_phone_number": "", "sms_subscription_status": "", "sms_subscription_last_updated": "",
        }
        if status == "unsubscribed":
            member["unsubscribe_reason"] = rng.choice(_REASONS)
            if member["unsubscribe_reason"] is None:
                del member["unsubscribe_reason"]  # Mailchimp leaves it out when nobody gave one
        events = []
        for k in range(rng.randrange(0, 4)):
            events.append({
                "action": rng.choice(["open", "click", "bounce", "sent"]),
                "timestamp": stamp(changed - timedelta(hours=k + 1)),
                "url": "https://example.com/offer" if k % 2 else "",
                "type": "regular", "campaign_id": f"c{rng.randrange(100, 120)}", "title": "Monthly news",
                "parent_campaign": "",
            })
        self._activity[(lid, h)] = events
        return member

    def _put(self, member: dict[str, Any]) -> None:
        self._members[member["list_id"]][member["id"]] = member

    def _tick(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    # ------------------------------------------------------------------ what tests use

    def secrets(self) -> list[str]:
        return [self.API_KEY, self.WRONG_DC_KEY, self.ACCESS_TOKEN]

    @property
    def list_ids(self) -> list[str]:
        with self._lock:
            return list(self._lists)

    def lists(self) -> list[dict[str, Any]]:
        """Every audience as the API answers it."""
        with self._lock:
            return [self._list_view(lst) for lst in self._lists.values()]

    def members(self, list_id: str | None = None) -> list[dict[str, Any]]:
        """Every member (of one list, or of all), as the API answers them."""
        with self._lock:
            ids = [list_id] if list_id else list(self._members)
            return [json.loads(json.dumps(m)) for lid in ids for m in self._members[lid].values()]

    def activity(self) -> list[dict[str, Any]]:
        """Every activity event, with the `list_id` and `email_id` of its member."""
        with self._lock:
            return [
                {**e, "list_id": lid, "email_id": h}
                for lid, members in self._members.items() for h in members for e in self._activity[(lid, h)]
            ]

    def unsubscribe(self, n: int, reason: str | None = "I no longer want to receive these emails") -> list[dict[str, Any]]:
        """Unsubscribe the first `n` subscribed members of the newsletter (a consent change)."""
        with self._lock:
            self._cache.clear()
            when = stamp(self._tick())
            changed = []
            for member in self._members[_LISTS[0][0]].values():
                if len(changed) == n:
                    break
                if member["status"] == "subscribed":
                    member.update(status="unsubscribed", last_changed=when)
                    member["marketing_permissions"][0]["enabled"] = False
                    if reason:
                        member["unsubscribe_reason"] = reason
                    changed.append(json.loads(json.dumps(member)))
            return changed

    def add_members(self, list_id: str, n: int) -> list[dict[str, Any]]:
        with self._lock:
            self._cache.clear()
            when = self._tick()
            added = []
            for k in range(n):
                number = len(self._members[list_id]) + k + 1
                member = self._make_member(self._rng, list_id, f"new{number}.{list_id}@example.net", "New", "Member", when)
                self._put(member)
                added.append(json.loads(json.dumps(member)))
            return added

    def update_members(self, list_id: str, n: int) -> list[dict[str, Any]]:
        """Change the first name of the first `n` members of a list."""
        with self._lock:
            self._cache.clear()
            when = stamp(self._tick())
            changed = []
            for member in list(self._members[list_id].values())[:n]:
                member["merge_fields"]["FNAME"] = "Renamed"
                member["last_changed"] = when
                changed.append(json.loads(json.dumps(member)))
            return changed

    def set_member_field(self, list_id: str, member_id: str, key: str, value: Any) -> None:
        """Put any value in a member (a field of an unexpected type, say)."""
        with self._lock:
            self._cache.clear()
            self._members[list_id][member_id][key] = value

    def delete_list(self, list_id: str) -> None:
        """The audience is deleted: its URLs answer 404 from now on."""
        with self._lock:
            self._cache.clear()
            self._lists.pop(list_id, None)
            self._members.pop(list_id, None)

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def control_unsubscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"changed": self.unsubscribe(int(body.get("n", 1)))}

    def control_delete_list(self, body: dict[str, Any]) -> dict[str, Any]:
        self.delete_list(str(body["list_id"]))
        return {"deleted": body["list_id"]}

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ the API

    _ROUTES: ClassVar[list[tuple[re.Pattern[str], str]]] = [
        (re.compile(r"^/3\.0/ping/?$"), "_ping"),
        (re.compile(r"^/3\.0/lists/?$"), "_get_lists"),
        (re.compile(r"^/3\.0/lists/([^/]+)/members/?$"), "_get_members"),
        (re.compile(r"^/3\.0/lists/([^/]+)/members/([^/]+)/activity/?$"), "_get_activity"),
        (re.compile(r"^/3\.0/lists/([^/]+)/members/([^/]+)/tags/?$"), "_get_member_tags"),
        (re.compile(r"^/3\.0/lists/([^/]+)/members/([^/]+)/?$"), "_get_member"),
        (re.compile(r"^/3\.0/reports/?$"), "_get_reports"),
        (re.compile(r"^/3\.0/reports/([^/]+)/?$"), "_get_report"),
        (re.compile(r"^/3\.0/reports/([^/]+)/sent-to/?$"), "_get_sent_to"),
        (re.compile(r"^/3\.0/reports/([^/]+)/email-activity/?$"), "_get_email_activity"),
        (re.compile(r"^/3\.0/reports/([^/]+)/unsubscribed/?$"), "_get_unsubscribed"),
    ]

    def _dispatch(self, req: SandboxRequest) -> Reply:
        """Mailchimp's paths carry ids, so routes are patterns rather than the base's exact paths."""
        try:
            refused = self._authenticate(req)
            if refused is not None:
                return refused
            for pattern, handler in self._ROUTES:
                match = pattern.match(req.path)
                if match and req.method == "GET":
                    return self._cached(req, functools.partial(getattr(self, handler), req, *match.groups()))
        except SandboxError as exc:
            return problem(exc.status, "Resource Not Found" if exc.status == 404 else "Invalid Resource", exc.error)
        return problem(404, "Resource Not Found", "The requested resource could not be found.")

    def _cached(self, req: SandboxRequest, answer: Any) -> Reply:
        """Pages are served pre-serialised until the data changes (as the customers sandbox
        does), so benchmarks measure the connector rather than this server's json.dumps."""
        key = (req.path, tuple(sorted((k, tuple(v)) for k, v in req.query.items())))
        with self._lock:
            reply = self._cache.get(key)
            if reply is None:
                reply = answer()
                if reply.status == 200:
                    self._cache[key] = reply
            return Reply(reply.status, reply.body, dict(reply.headers))

    def _authenticate(self, req: SandboxRequest) -> Reply | None:
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme in ("Bearer", "OAuth"):  # an OAuth 2 access token of a Mailchimp app (no data-centre suffix)
            if self._revoked or token != self.ACCESS_TOKEN:
                return problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
            return None
        if not auth.startswith("Basic "):
            return problem(401, "API Key Missing", "Your request did not include an API key.")
        try:
            _, _, key = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
        if self._revoked or key != self.API_KEY:
            return problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
        return None

    @staticmethod
    def answer(req: SandboxRequest, body: Any) -> Reply:
        """A 200 with `body` as the request's `fields` / `exclude_fields` trim it."""
        return Reply.json(sparse(body, req))

    def _ping(self, req: SandboxRequest) -> Reply:
        return self.answer(req, {"health_status": "Everything's Chimpy!"})

    @staticmethod
    def _window(req: SandboxRequest) -> tuple[int, int]:
        count, offset = req.int_param("count", 10), req.int_param("offset", 0)
        if count < 1 or count > 1000 or offset < 0:
            raise SandboxError(400, "count must be between 1 and 1000 and offset >= 0")
        return count, offset

    def _list_view(self, lst: dict[str, Any]) -> dict[str, Any]:
        members = self._members[lst["id"]].values()
        statuses = [m["status"] for m in members]
        view = json.loads(json.dumps(lst))
        view["stats"].update(member_count=statuses.count("subscribed"), unsubscribe_count=statuses.count("unsubscribed"),
                             cleaned_count=statuses.count("cleaned"))
        return view

    def _get_lists(self, req: SandboxRequest) -> Reply:
        count, offset = self._window(req)
        rows = [self._list_view(lst) for lst in self._lists.values()]
        for row in rows:
            href = f"/3.0/lists/{row['id']}"
            row["_links"] = links(req.base_url, ("self", "GET", href), ("members", "GET", f"{href}/members"),
                                  ("segments", "GET", f"{href}/segments"))
        return self.answer(req, {"lists": rows[offset:offset + count], "total_items": len(rows),
                                 "_links": links(req.base_url, ("self", "GET", "/3.0/lists"), ("create", "POST", "/3.0/lists"))})

    def _get_members(self, req: SandboxRequest, list_id: str) -> Reply:
        if list_id not in self._members:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        count, offset = self._window(req)
        rows = list(self._members[list_id].values())
        since = req.param("since_last_changed")
        if since:
            try:
                bound = datetime.fromisoformat(since)
            except ValueError:
                raise SandboxError(400, f"since_last_changed {since!r} is not an ISO 8601 time") from None
            rows = [m for m in rows if datetime.fromisoformat(m["last_changed"]) > bound]
        if req.param("status"):
            rows = [m for m in rows if m["status"] == req.param("status")]
        if req.param("sort_field") == "last_changed":
            rows.sort(key=lambda m: (m["last_changed"], m["id"]), reverse=req.param("sort_dir") == "DESC")
        page = rows[offset:offset + count]
        root = f"{req.base_url}/3.0/lists/{list_id}/members"
        return self.answer(req, {"members": [self._member_view(req, m) for m in page], "list_id": list_id,
                                 "total_items": len(rows),
                                 "_links": links(root, ("self", "GET", ""), ("parent", "GET", "/.."), ("create", "POST", ""))})

    @staticmethod
    def _member_view(req: SandboxRequest, member: dict[str, Any]) -> dict[str, Any]:
        href = f"/3.0/lists/{member['list_id']}/members/{member['id']}"
        return {**member, "_links": links(req.base_url, ("self", "GET", href), ("parent", "GET", href.rsplit("/", 1)[0]),
                                          ("update", "PATCH", href), ("upsert", "PUT", href), ("delete", "DELETE", href),
                                          ("activity", "GET", f"{href}/activity"), ("tags", "GET", f"{href}/tags"),
                                          ("notes", "GET", f"{href}/notes"))}

    def _get_member(self, req: SandboxRequest, list_id: str, member_id: str) -> Reply:
        """One member by subscriber hash (or by address, which Mailchimp also accepts here)."""
        member_id = unquote(member_id)
        member_id = subscriber_hash(member_id) if "@" in member_id else member_id.lower()
        if list_id not in self._members or member_id not in self._members[list_id]:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        return self.answer(req, self._member_view(req, self._members[list_id][member_id]))

    def _get_member_tags(self, req: SandboxRequest, list_id: str, member_id: str) -> Reply:
        if list_id not in self._members or member_id not in self._members[list_id]:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        member = self._members[list_id][member_id]
        count, offset = self._window(req)
        added = member["timestamp_opt"] or member["last_changed"]
        tags = [{"id": t["id"], "name": t["name"], "date_added": t.get("date_added", added)} for t in member["tags"]]
        href = f"/3.0/lists/{list_id}/members/{member_id}/tags"
        return self.answer(req, {"tags": tags[offset:offset + count], "total_items": len(tags),
                                 "_links": links(req.base_url, ("self", "GET", href), ("create", "POST", href))})

    def _get_activity(self, req: SandboxRequest, list_id: str, member_id: str) -> Reply:
        if list_id not in self._members or member_id not in self._members[list_id]:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        events = self._activity[(list_id, member_id)][:50]
        href = f"/3.0/lists/{list_id}/members/{member_id}/activity"
        return self.answer(req, {"activity": events, "email_id": member_id, "list_id": list_id, "total_items": len(events),
                                 "_links": links(req.base_url, ("self", "GET", href))})
