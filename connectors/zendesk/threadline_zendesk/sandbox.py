"""Zendesk Support's API on loopback, for tests and demos (`threadline sandbox zendesk`).

What it implements, as Zendesk documents it:

    GET /api/v2/incremental/users/cursor.json?start_time=<epoch s>&per_page=    (then ?cursor=<after_cursor>)
    GET /api/v2/incremental/tickets/cursor.json?start_time=&per_page=&exclude_deleted=
    GET /api/v2/incremental/users.json?start_time=&per_page=    (time-based: end_time, next_page, end_of_stream)
    GET /api/v2/incremental/tickets.json?start_time=&per_page=&exclude_deleted=
    GET /api/v2/satisfaction_ratings?start_time=&end_time=&page[size]=&page[after]=
    GET /api/v2/users/show_many.json?ids=1,2,...&include=identities     (at most 100 ids)
    GET /api/v2/users/{id}.json, /api/v2/tickets/{id}.json, /api/v2/users/{id}/identities.json

- Auth: HTTP basic `{email}/token:{api_token}` or `Authorization: Bearer <OAuth token>`;
  401 `{"error": "Couldn't authenticate you"}`. The export endpoints need an admin: the agent
  credential (`AGENT_EMAIL`) and an OAuth token without the `read` scope get 403 `Forbidden`.
- Incremental exports: items changed at or after `start_time` (seconds), ordered by
  (updated_at, id), `per_page` 1..1000 (default 1000); the body is `{"users"|"tickets": [...],
  "after_url", "after_cursor", "before_url", "before_cursor", "end_of_stream"}`. The cursor
  points after the last item served; following it later returns only what changed since:
  the cursor is the resumption point Zendesk recommends storing. A `start_time` less than a
  minute ago is a 400, and so is a request with neither start_time nor cursor.
- Deleted users stay in the user export with `active: false`; deleted tickets stay in the
  ticket export with `status: "deleted"` (unless `exclude_deleted=true`).
- Links (`after_url`, `links.next`) name the host the client called: a client that sent
  `Host: <subdomain>.zendesk.com` (through a proxy, as the official-client tests do) gets
  https://<subdomain>.zendesk.com links, as from Zendesk; a direct caller gets the sandbox's.
- Satisfaction ratings: cursor pagination (`page[size]` 1..100, `meta.has_more`,
  `meta.after_cursor`, `links.next`), ordered by id; `start_time`/`end_time` filter on
  `updated_at`.
- Rate limits: the export endpoints allow `export_rate_limit` requests per `rate_window`
  seconds (Zendesk: 10 a minute), the others `rate_limit` (Zendesk: 700 a minute on most
  plans); past them 429 with `Retry-After` (seconds) and Zendesk's error body.

Seeded data: the end users are people of the population shared by every vendor sandbox
(`threadline.sandbox.people`, population `2026 + seed`), so the same people are in the shop,
the CRMs and the email tools; eight agents answer. A user has the email the person wrote in
from, phones in several formats, other addresses as extra email identities, the loyalty card
in `user_fields.loyalty_number` (sometimes with spaces), the shop's customer id as
`external_id` for some; people who also wrote from work have a second user under that address
with the same phone. Tickets are the people's own, about their orders (damaged, late, refunds,
loyalty points) or questions before buying: the recent ones mostly open, older ones solved
or closed, some rated; older solved tickets fill up to `tickets`. `updated_at` is when an
item last changed, shared in threes. Tests change data with `add_users`, `update_users`,
`delete_users`, `add_tickets`, `update_tickets`,
`delete_tickets`, `add_ratings`, `set_field`, and refuse the credential with `revoke_credentials`.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import random
import re
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from threadline.sandbox import Reply, Sandbox, SandboxError, SandboxRequest, route
from threadline.sandbox.people import (
    AS_OF,
    HISTORY_START,
    Person,
    Ticket,
    format_phone,
    in_threes,
    members_of,
    population_seed,
    shopify_customer_id,
)

_EPOCH = HISTORY_START - timedelta(days=400)  # the help desk opened; generated users and agents are older
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton"]
_PHONE_STYLES = ("international", "national", "e164", "e164", "dotted")
_LOCALES = {"US": "en-US", "GB": "en-GB", "CA": "en-CA", "DE": "de"}
_ZONES = {"US": ("Central Time (US & Canada)", "America/Chicago"), "GB": ("London", "Europe/London"),
          "CA": ("Eastern Time (US & Canada)", "America/Toronto"), "DE": ("Berlin", "Europe/Berlin")}
EXPORTS = {"/api/v2/incremental/users/cursor.json": "users", "/api/v2/incremental/tickets/cursor.json": "tickets"}
TIME_EXPORTS = {"/api/v2/incremental/users.json": "users", "/api/v2/incremental/tickets.json": "tickets"}


def _root(req: SandboxRequest) -> str:
    """Where the links of an answer point: the account's host, as the client called it
    (https://<subdomain>.zendesk.com through a proxy), else the sandbox itself."""
    host = req.headers.get("host", "")
    if not host or host == req.base_url.split("://", 1)[-1] or host.startswith(("127.0.0.1", "localhost")):
        return req.base_url
    return f"https://{host}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _encode(position: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}.0||{position[1]}|".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, rest = text.partition("||")
        return int(float(stamp)), int(rest.strip("|"))
    except ValueError:
        raise SandboxError(400, json.dumps({"error": "InvalidCursor", "description": "Invalid cursor"})) from None


class ZendeskSandbox(Sandbox):
    """Seeded users, tickets and satisfaction ratings behind Zendesk's API (see the module docstring)."""

    name = "zendesk"
    EMAIL = "admin@threadline-coffee.example"
    AGENT_EMAIL = "agent@threadline-coffee.example"  # an agent, not an admin: no export access
    API_TOKEN = "zd-sandbox-token-6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"
    OAUTH_TOKEN = "zd-sandbox-oauth-0f3c5b9e2a7d4c1b8e6f"
    OAUTH_TICKETS_ONLY = "zd-sandbox-oauth-tickets-read-only-77aa"  # scope tickets:read

    def __init__(
        self, *, seed: int = 0, port: int = 0, users: int = 2000, tickets: int = 2500, ratings: int = 600,
        export_rate_limit: int = 10, rate_limit: int = 700, rate_window: float = 60.0,
    ) -> None:
        self.counts = {"users": users, "tickets": tickets, "ratings": ratings}
        self.export_rate_limit, self.rate_limit, self.rate_window = export_rate_limit, rate_limit, rate_window
        self._sent: dict[str, deque[float]] = {"export": deque(), "api": deque()}
        self._rate_lock = threading.Lock()
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._rng = rng
        self._revoked = False
        self._items: dict[str, dict[int, dict[str, Any]]] = {"users": {}, "tickets": {}, "ratings": {}}
        self._ids = {"users": 360_000_000_001, "tickets": 1, "ratings": 900_000_001}
        self._index: dict[str, Any] = {}  # sorted views of the items, dropped on every change
        self._secondary: dict[int, list[str]] = {}  # user id → secondary email identities
        self._agents = [self._new_user(_EPOCH + timedelta(days=n), role="agent")["id"] for n in range(8)]
        wanted = self.counts["users"] - len(self._agents)
        asked: list[tuple[Ticket, int]] = []  # the people's tickets, by the user who asked
        for person in members_of("zendesk", max(0, wanted), population_seed(self.seed)):
            if len(self._items["users"]) >= self.counts["users"]:
                break
            user = self._person_user(rng, person, person.contacts["zendesk"].email)
            work = person.email_of("work")
            twin = None
            if work and work != user["email"] and user["phone"] and rng.random() < 0.25 and \
                    len(self._items["users"]) < self.counts["users"]:  # wrote in from work too: a second user
                twin = self._person_user(rng, person, work, phone=user["phone"])
            asked += [(t, twin["id"] if twin and rng.random() < 0.3 else user["id"]) for t in person.tickets]
        self._requesters = [u for u, r in self._items["users"].items() if r["role"] == "end-user"]
        asked.sort(key=lambda pair: pair[0].opened_at)
        for ticket, requester in asked[max(0, len(asked) - self.counts["tickets"]):]:  # the most recent ones
            self._person_ticket(rng, ticket, requester)
        for _ in range(self.counts["tickets"] - len(self._items["tickets"])):  # older, long solved ones
            filler = self._new_ticket(HISTORY_START + (AS_OF - HISTORY_START) * rng.random() * 0.8)
            filler["status"] = rng.choice(["solved", "closed", "closed"])
        self._renumber_tickets()
        scores = {t["id"]: t.pop("_rating", None) for t in self._items["tickets"].values()}  # the person's own rating
        solved = [t for t in self._items["tickets"].values() if t["status"] in ("solved", "closed")]
        solved.sort(key=lambda t: scores[t["id"]] is None)
        for ticket in solved[:self.counts["ratings"]]:
            rating = self._new_rating(ticket, min(_parse(ticket["updated_at"]) + timedelta(hours=rng.uniform(1, 30)),
                                                  AS_OF - timedelta(minutes=1)))
            if scores[ticket["id"]]:
                rating["score"] = ticket["satisfaction_rating"]["score"] = scores[ticket["id"]]
                rating["comment"] = "Thanks, sorted!" if rating["score"] == "good" else "Still waiting for my refund"
        for kind in ("users", "tickets", "ratings"):  # when each item last changed, shared in threes
            rows = list(self._items[kind].values())
            for item, moment in zip(rows, in_threes([min(_parse(r["updated_at"]), AS_OF) for r in rows])):
                item["updated_at"] = iso(moment)
                if kind == "tickets":
                    item["generated_timestamp"] = epoch(item["updated_at"])
        self._clock = max(_parse(r["updated_at"]) for items in self._items.values() for r in items.values()) + timedelta(minutes=1)

    def _person_user(self, rng: random.Random, person: Person, email: str | None, phone: str | None = None) -> dict[str, Any]:
        """A user for a person of the population (their second account when `phone` is given)."""
        contact = person.contacts["zendesk"]
        user = self._new_user(contact.since)
        home = person.address
        phone = phone or (format_phone(contact.phone, rng.choice(_PHONE_STYLES)) if contact.phone else None)
        card = person.loyalty_cards[0] if person.loyalty_cards and rng.random() < 0.6 else None
        if card and rng.random() < 0.3:
            card = " ".join(card[k:k + 4] for k in range(0, len(card), 4))  # as printed on the card
        zone, iana = _ZONES[home.country]
        updated = max([contact.since, *(t.opened_at for t in person.tickets[:1])])
        user.update(
            name=f"{contact.first_name} {person.last_name}" if rng.random() < 0.95 else "", email=email, phone=phone,
            shared_phone_number=False if phone else None,
            external_id=str(shopify_customer_id(person)) if person.shop_account and "shopify" in person.systems
            and rng.random() < 0.5 else None,
            organization_id=None, locale=_LOCALES[home.country], time_zone=zone, iana_time_zone=iana,
            tags=[t for t, keep in (("vip", person.segment == "loyal"), ("wholesale", bool(person.company) and rng.random() < 0.2),
                                    ("newsletter", person.email_consent.status == "subscribed" and rng.random() < 0.4)) if keep],
            user_fields={"loyalty_number": card, "preferred_store": rng.choice(["Congress Ave", "Queen St W", None, None])},
            created_at=iso(contact.since), updated_at=iso(updated),
        )
        others = [e.address for e in person.emails if e.address not in (email, person.email_of("household"))]
        self._secondary.pop(user["id"], None)
        if email and others and rng.random() < 0.3:
            self._secondary[user["id"]] = others[:2]
        return user

    def _person_ticket(self, rng: random.Random, ticket: Ticket, requester: int) -> dict[str, Any]:
        """A ticket of a person of the population, asked by `requester`."""
        item = self._new_ticket(ticket.updated_at)
        status = ticket.status
        item.update(
            requester_id=requester, submitter_id=requester, organization_id=None, subject=ticket.subject,
            description=f"Hello, {ticket.subject.lower()} ...", priority=ticket.priority, status=status,
            type="incident" if ticket.order_id else "question",
            assignee_id=rng.choice(self._agents) if status != "new" else None, tags=[ticket.topic],
            custom_fields=[{"id": 360_300, "value": f"order-{ticket.order_id}" if ticket.order_id else None},
                           {"id": 360_301, "value": "web" if ticket.channel in ("web", "chat") else "store"}],
            via={"channel": {"chat": "chat", "phone": "voice"}.get(ticket.channel, ticket.channel),
                 "source": {"from": {}, "to": {}, "rel": None}},
            created_at=iso(ticket.opened_at), updated_at=iso(ticket.updated_at),
        )
        if ticket.rating:
            item["_rating"] = ticket.rating
        return item

    def _renumber_tickets(self) -> None:
        """Ticket ids follow creation time, as Zendesk's do."""
        tickets = sorted(self._items["tickets"].values(), key=lambda t: t["created_at"])
        self._items["tickets"] = {}
        for tid, ticket in enumerate(tickets, start=1):
            ticket["id"], ticket["url"] = tid, f"https://threadline-coffee.zendesk.com/api/v2/tickets/{tid}.json"
            self._items["tickets"][tid] = ticket
        self._ids["tickets"] = len(tickets) + 1

    def _new_user(self, when: datetime, role: str = "end-user", like: dict[str, Any] | None = None) -> dict[str, Any]:
        rng = self._rng
        uid = self._ids["users"]
        self._ids["users"] += 1
        first, last = (like["name"].split(" ", 1) if like and like["name"] and " " in like["name"]
                       else (rng.choice(_FIRST), rng.choice(_LAST)))
        handle = f"{first.lower()}.{last.lower()}{uid % 100000}"
        if like:
            email: str | None = f"{handle}@work.example.org"
        else:
            email = f"{handle}@example.com" if rng.random() < 0.92 or role == "agent" else None
        digits = f"{rng.randrange(10**9, 10**10)}"
        phone = rng.choice([f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
                            f"+44{digits}", f"0{digits[:4]} {digits[4:]}", None, None])
        user = {
            "id": uid, "url": f"https://threadline-coffee.zendesk.com/api/v2/users/{uid}.json",
            "name": f"{first} {last}" if rng.random() < 0.95 else "", "email": email, "phone": phone,
            "shared_phone_number": False if phone else None, "external_id": f"cust-{uid % 100000}" if rng.random() < 0.5 else None,
            "alias": None, "role": role, "role_type": 0 if role == "agent" else None,
            "organization_id": rng.choice([None, 361_000_000_001, 361_000_000_002]),
            "locale": rng.choice(["en-US", "fr", "de"]), "locale_id": 1, "time_zone": "London",
            "iana_time_zone": "Europe/London", "active": True, "verified": rng.random() < 0.8, "suspended": False,
            "tags": rng.sample(["vip", "newsletter", "wholesale", "churn-risk"], k=rng.randrange(0, 3)),
            "user_fields": {"loyalty_number": f"LC{rng.randrange(10**6, 10**7)}" if rng.random() < 0.4 else None,
                            "preferred_store": rng.choice(["Shoreditch", "Marais", None])},
            "details": "", "notes": "", "created_at": iso(when - timedelta(days=rng.randrange(0, 500))),
            "updated_at": iso(when), "last_login_at": iso(when) if role == "agent" else None,
            "photo": None, "default_group_id": 360_100 if role == "agent" else None, "two_factor_auth_enabled": None,
        }
        self._items["users"][uid] = user
        if role == "end-user" and email and rng.random() < 0.25:  # more addresses than the primary one
            self._secondary[uid] = [f"{handle}@{domain}" for domain in rng.sample(
                ["gmail.example", "outlook.example", "old-isp.example.net"], k=rng.choice([1, 1, 2]))]
        return user

    def _new_ticket(self, when: datetime) -> dict[str, Any]:
        rng = self._rng
        tid = self._ids["tickets"]
        self._ids["tickets"] += 1
        status = rng.choice(["new", "open", "pending", "solved", "solved", "closed"])
        requester = rng.choice(self._requesters)
        ticket = {
            "id": tid, "url": f"https://threadline-coffee.zendesk.com/api/v2/tickets/{tid}.json",
            "external_id": None, "type": rng.choice(["question", "incident", "problem", None]),
            "subject": rng.choice(["Order arrived damaged", "Refund please", "Where is my order?", "Loyalty points missing"]),
            "description": "Hello, ...", "priority": rng.choice([None, "low", "normal", "high", "urgent"]),
            "status": status, "recipient": "support@threadline-coffee.example", "requester_id": requester,
            "submitter_id": requester, "assignee_id": rng.choice(self._agents) if status != "new" else None,
            "organization_id": self._items["users"][requester]["organization_id"], "group_id": 360_100,
            "brand_id": 360_200, "collaborator_ids": [], "follower_ids": [], "has_incidents": False, "is_public": True,
            "due_at": None, "tags": rng.sample(["damaged", "refund", "delivery", "loyalty"], k=rng.randrange(0, 3)),
            "custom_fields": [{"id": 360_300, "value": rng.choice(["order-" + str(rng.randrange(10**5, 10**6)), None])},
                              {"id": 360_301, "value": rng.choice(["web", "store", None])}],
            "via": {"channel": rng.choice(["email", "web", "api", "mobile"]), "source": {"from": {}, "to": {}, "rel": None}},
            "satisfaction_rating": {"score": "unoffered"}, "created_at": iso(when - timedelta(days=rng.randrange(0, 90))),
            "updated_at": iso(when), "generated_timestamp": epoch(iso(when)),
        }
        self._items["tickets"][tid] = ticket
        return ticket

    def _new_rating(self, ticket: dict[str, Any], when: datetime) -> dict[str, Any]:
        rng = self._rng
        rid = self._ids["ratings"]
        self._ids["ratings"] += 1
        score = rng.choice(["good", "good", "bad", "offered"])
        rating = {
            "id": rid, "url": f"https://threadline-coffee.zendesk.com/api/v2/satisfaction_ratings/{rid}.json",
            "assignee_id": ticket["assignee_id"], "group_id": ticket["group_id"], "requester_id": ticket["requester_id"],
            "ticket_id": ticket["id"], "score": score,
            "comment": rng.choice(["Great help", "Took too long", "", None]) if score != "offered" else None,
            "reason": "Issue took too long to resolve" if score == "bad" and rng.random() < 0.5 else None,
            "reason_id": 1001 if score == "bad" else None, "reason_code": 5 if score == "bad" else None,
            "created_at": iso(when), "updated_at": iso(when),
        }
        ticket["satisfaction_rating"] = {"score": score, "id": rid}
        ticket["updated_at"], ticket["generated_timestamp"] = iso(when), epoch(iso(when))  # a rating updates its ticket
        self._items["ratings"][rid] = rating
        return rating

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return iso(self._clock)

    # ------------------------------------------------------------------ what tests read and change

    def items(self, kind: str) -> list[dict[str, Any]]:
        """Every user / ticket / rating now, sorted by id (deleted ones included)."""
        with self._lock:
            return [json.loads(json.dumps(v)) for _, v in sorted(self._items[kind].items())]

    @property
    def users(self) -> list[dict[str, Any]]:
        return self.items("users")

    @property
    def tickets(self) -> list[dict[str, Any]]:
        return self.items("tickets")

    @property
    def ratings(self) -> list[dict[str, Any]]:
        return self.items("ratings")

    def identities_of(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        """A user's identities as Zendesk lists them: the primary email, other emails, the phone."""
        uid = user["id"]
        found = [("email", user["email"], True)] if user["email"] else []
        found += [("email", extra, False) for extra in self._secondary.get(uid, [])]
        found += [("phone_number", user["phone"], not user["email"])] if user["phone"] else []
        return [{
            "id": uid * 10 + n, "url": f"https://threadline-coffee.zendesk.com/api/v2/users/{uid}/identities/{uid * 10 + n}.json",
            "user_id": uid, "type": kind, "value": value, "primary": primary, "verified": primary and user["verified"],
            "undeliverable_count": 0, "deliverable_state": "deliverable",
            "created_at": user["created_at"], "updated_at": user["updated_at"],
        } for n, (kind, value, primary) in enumerate(found, start=1)]

    @property
    def identities(self) -> list[dict[str, Any]]:
        """Every identity of every user now, by user."""
        return [i for u in self.users for i in self.identities_of(u)]

    def _touch(self, kind: str, ids: list[int], change: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            self._index.clear()
            stamp = self._tick()
            for i in ids:
                item = self._items[kind][i]
                item.update(change, updated_at=stamp)
                if kind == "tickets":
                    item["generated_timestamp"] = epoch(stamp)
        return [x for x in self.items(kind) if x["id"] in set(ids)]

    def update_users(self, ids: list[int]) -> list[dict[str, Any]]:
        return self._touch("users", ids, {"notes": "updated"})

    def delete_users(self, ids: list[int]) -> list[dict[str, Any]]:
        """Soft-delete users: they stay in the export with `active: false`."""
        return self._touch("users", ids, {"active": False})

    def update_tickets(self, ids: list[int]) -> list[dict[str, Any]]:
        return self._touch("tickets", ids, {"status": "open", "priority": "urgent"})

    def delete_tickets(self, ids: list[int]) -> list[dict[str, Any]]:
        return self._touch("tickets", ids, {"status": "deleted"})

    def add_users(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            self._index.clear()
            self._tick()
            ids = [self._new_user(self._clock)["id"] for _ in range(n)]
        return [x for x in self.users if x["id"] in set(ids)]

    def add_tickets(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            self._index.clear()
            self._tick()
            ids = [self._new_ticket(self._clock)["id"] for _ in range(n)]
        return [x for x in self.tickets if x["id"] in set(ids)]

    def add_ratings(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            self._index.clear()
            self._tick()
            open_ = [t for t in self._items["tickets"].values() if t["satisfaction_rating"]["score"] == "unoffered"]
            ids = [self._new_rating(t, self._clock)["id"] for t in open_[:n]]
        return [x for x in self.ratings if x["id"] in set(ids)]

    def set_field(self, kind: str, item_id: int, name: str, value: Any) -> None:
        """Put any value in a field, even one of a type Zendesk would not send (bad-input tests)."""
        with self._lock:
            self._index.clear()
            self._items[kind][item_id][name] = value

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def secrets(self) -> list[str]:
        return [self.API_TOKEN, self.OAUTH_TOKEN, self.OAUTH_TICKETS_ONLY]

    # ------------------------------------------------------------------ auth and limits

    def _admit(self, req: SandboxRequest, export: str | None) -> None:
        auth = req.headers.get("authorization", "")
        admin = False
        scopes: set[str] = set()
        if auth.startswith("Basic "):
            user, _, secret = base64.b64decode(auth[6:]).decode(errors="replace").partition(":")
            email, _, kind = user.partition("/")
            if kind != "token" or secret != self.API_TOKEN or email not in (self.EMAIL, self.AGENT_EMAIL):
                raise self._error(401, "Couldn't authenticate you")
            admin, scopes = email == self.EMAIL, {"read"}
        elif auth == f"Bearer {self.OAUTH_TOKEN}":
            admin, scopes = True, {"read"}
        elif auth == f"Bearer {self.OAUTH_TICKETS_ONLY}":
            admin, scopes = True, {"tickets:read"}
        else:
            raise self._error(401, "Couldn't authenticate you")
        if self._revoked:
            raise self._error(401, "Couldn't authenticate you")
        needed = f"{export or 'satisfaction_ratings'}:read"
        if (export and not admin) or not (scopes & {"read", needed}):
            raise SandboxError(403, json.dumps({"error": "Forbidden", "description": "You do not have access to this "
                                                "page. Please contact the account owner of this help desk for further help."}))
        bucket, limit = ("export", self.export_rate_limit) if export else ("api", self.rate_limit)
        with self._rate_lock:
            sent, now = self._sent[bucket], time.monotonic()
            while sent and now - sent[0] >= self.rate_window:
                sent.popleft()
            if len(sent) >= limit:
                wait = self.rate_window - (now - sent[0])
                retry = str(math.ceil(wait)) if self.rate_window >= 1 else f"{wait:.3f}"
                description = ("Number of allowed incremental export API requests per minute exceeded" if export
                               else "Number of allowed API requests per minute exceeded")
                raise SandboxError(429, json.dumps({"error": "APIRateLimitExceeded", "description": description}),
                                   {"Retry-After": retry, "X-Rate-Limit": str(limit), "X-Rate-Limit-Remaining": "0"})
            sent.append(now)

    @staticmethod
    def _error(status: int, message: str) -> SandboxError:
        return SandboxError(status, json.dumps({"error": message}))

    _ITEM = re.compile(r"^/api/v2/(?P<kind>users|tickets)/(?P<id>[0-9]+)(?P<identities>/identities)?\.json$")

    def _dispatch(self, req: SandboxRequest) -> Reply:
        # Zendesk's error bodies are its own JSON objects, not the base class's {"error": ...} wrapper.
        item = self._ITEM.match(req.path) if req.method == "GET" else None
        if item is not None:
            try:
                return self._show(req, item.group("kind"), int(item.group("id")), bool(item.group("identities")))
            except SandboxError as exc:
                return Reply(exc.status, exc.error.encode(), exc.headers)
        reply = super()._dispatch(req)
        if reply.status >= 400 and reply.body.startswith(b'{"error":"{'):
            return Reply(reply.status, json.loads(reply.body)["error"].encode(), reply.headers)
        return reply

    # ------------------------------------------------------------------ routes

    def _ordered(self, kind: str) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
        """Items by (updated_at, id), with their keys for bisect."""
        if kind not in self._index:
            pairs = sorted(((epoch(x["updated_at"]), x["id"]), x) for x in self._items[kind].values())
            self._index[kind] = ([k for k, _ in pairs], [x for _, x in pairs])
        return self._index[kind]

    def _export(self, req: SandboxRequest) -> Reply:
        kind = EXPORTS[req.path]
        self._admit(req, kind)
        per_page = req.int_param("per_page", 1000)
        if not 1 <= per_page <= 1000:
            raise SandboxError(400, json.dumps({"error": "InvalidPaginationParameter",
                                                "description": "per_page must be between 1 and 1000"}))
        cursor, start = req.param("cursor"), req.param("start_time")
        if cursor:
            position = _decode(cursor)
        elif start is not None:
            try:
                start_time = int(start)
            except ValueError:
                raise SandboxError(400, json.dumps({"error": "InvalidValue", "description": "start_time must be an integer"})) from None
            if start_time > time.time() - 60:
                raise SandboxError(400, json.dumps({"error": "InvalidValue", "description":
                                                    "Too recent start_time. Use a start_time older than 1 minute"}))
            position = (start_time, -1)
        else:
            raise SandboxError(400, json.dumps({"error": "InvalidValue", "description": "start_time or cursor is required"}))
        exclude_deleted = kind == "tickets" and req.param("exclude_deleted") == "true"
        with self._lock:
            keys, items = self._ordered(kind)
            start = bisect.bisect_right(keys, position)
            after = [x for x in items[start:] if not (exclude_deleted and x.get("status") == "deleted")]
            page = after[:per_page]
            data = [json.loads(json.dumps(x)) for x in page]
        end = len(after) <= per_page
        next_position = (epoch(page[-1]["updated_at"]), page[-1]["id"]) if page else position
        after_cursor = _encode(next_position)
        params = {"cursor": after_cursor, "per_page": per_page}
        body = {
            kind: data, "after_url": f"{_root(req)}{req.path}?{urlencode(params)}", "after_cursor": after_cursor,
            "before_url": None, "before_cursor": None, "end_of_stream": end,
        }
        return Reply.json(body)

    def _time_export(self, req: SandboxRequest) -> Reply:
        """The time-based export (`/incremental/users.json`, `/incremental/tickets.json`): what
        zenpy's `incremental(start_time=…)` and older integrations page through. A page holds
        `per_page` items changed at or after `start_time` and then every further item of its last
        second, so it ends on a second boundary; `end_time` is that second and `next_page` asks
        from it again, so the items of that second come twice (Zendesk: "the exported data may
        contain duplicate items"; clients drop them by id). A page that could not move past its
        `start_time` (more items in one second than `per_page`) asks from the next second."""
        kind = TIME_EXPORTS[req.path]
        self._admit(req, kind)
        per_page = req.int_param("per_page", 1000)
        if not 1 <= per_page <= 1000:
            raise SandboxError(400, json.dumps({"error": "InvalidPaginationParameter",
                                                "description": "per_page must be between 1 and 1000"}))
        start = req.param("start_time")
        if start is None or not start.lstrip("-").isdigit():
            raise SandboxError(400, json.dumps({"error": "InvalidValue", "description": "start_time is required, "
                                                "an integer (Unix epoch seconds)"}))
        start_time = int(start)
        if start_time > time.time() - 60:
            raise SandboxError(400, json.dumps({"error": "InvalidValue", "description":
                                                "Too recent start_time. Use a start_time older than 1 minute"}))
        exclude_deleted = kind == "tickets" and req.param("exclude_deleted") == "true"
        with self._lock:
            keys, items = self._ordered(kind)
            after = [x for x in items[bisect.bisect_left(keys, (start_time, -1)):]
                     if not (exclude_deleted and x.get("status") == "deleted")]
            page = after[:per_page]
            if page:
                last = epoch(page[-1]["updated_at"])
                page += [x for x in after[per_page:] if epoch(x["updated_at"]) == last]
            data = [json.loads(json.dumps(x)) for x in page]
        end = len(after) <= len(page)
        end_time = epoch(page[-1]["updated_at"]) if page else start_time
        if end_time == start_time and not end:
            end_time += 1
        params = {"start_time": end_time, "per_page": per_page} if "per_page" in req.query else {"start_time": end_time}
        body = {kind: data, "count": len(data), "end_time": end_time, "end_of_stream": end,
                "next_page": None if end else f"{_root(req)}{req.path}?{urlencode(params)}"}
        return Reply.json(body)

    @route("GET", "/api/v2/incremental/users.json")
    def time_export_users(self, req: SandboxRequest) -> Reply:
        return self._time_export(req)

    @route("GET", "/api/v2/incremental/tickets.json")
    def time_export_tickets(self, req: SandboxRequest) -> Reply:
        return self._time_export(req)

    @route("GET", "/api/v2/incremental/users/cursor.json")
    def export_users(self, req: SandboxRequest) -> Reply:
        return self._export(req)

    @route("GET", "/api/v2/incremental/tickets/cursor.json")
    def export_tickets(self, req: SandboxRequest) -> Reply:
        return self._export(req)

    @route("GET", "/api/v2/users/show_many.json")
    def show_many_users(self, req: SandboxRequest) -> Reply:
        self._admit(req, None)
        try:
            ids = [int(i) for i in (req.param("ids") or "").split(",") if i]
        except ValueError:
            raise SandboxError(400, json.dumps({"error": "InvalidValue", "description": "ids must be integers"})) from None
        if len(ids) > 100:
            raise SandboxError(400, json.dumps({"error": "InvalidValue", "description": "at most 100 ids"}))
        with self._lock:
            users = [json.loads(json.dumps(self._items["users"][i])) for i in ids if i in self._items["users"]]
        body: dict[str, Any] = {"users": users, "next_page": None, "previous_page": None, "count": len(users)}
        if "identities" in (req.param("include") or "").split(","):
            body["identities"] = [i for u in users for i in self.identities_of(u)]
        return Reply.json(body)

    def _show(self, req: SandboxRequest, kind: str, item_id: int, identities: bool) -> Reply:
        """GET /api/v2/users/{id}.json, /tickets/{id}.json, /users/{id}/identities.json: what
        clients fetch one at a time (zenpy follows a rating's ticket, a ticket's requester so)."""
        self._admit(req, None)
        with self._lock:
            found = self._items[kind].get(item_id)
            if found is None or (kind == "tickets" and found.get("status") == "deleted") or (identities and kind != "users"):
                raise SandboxError(404, json.dumps({"error": "RecordNotFound", "description": "Not found"}))
            found = json.loads(json.dumps(found))
        if identities:
            listed = self.identities_of(found)
            return Reply.json({"identities": listed, "next_page": None, "previous_page": None, "count": len(listed)})
        return Reply.json({kind[:-1]: found})

    @route("GET", "/api/v2/satisfaction_ratings")
    def list_ratings(self, req: SandboxRequest) -> Reply:
        self._admit(req, None)
        size = req.int_param("page[size]", 100)
        if not 1 <= size <= 100:
            raise SandboxError(400, json.dumps({"error": "InvalidPaginationParameter",
                                                "description": "page[size] must be between 1 and 100"}))
        start, end = req.int_param("start_time", 0), req.int_param("end_time", 2**40)
        after = req.param("page[after]")
        after_id = _decode(after)[1] if after else -1
        with self._lock:
            if "ratings_by_id" not in self._index:
                self._index["ratings_by_id"] = [(epoch(r["updated_at"]), r) for _, r in sorted(self._items["ratings"].items())]
            rows = [r for stamp, r in self._index["ratings_by_id"] if start <= stamp <= end and r["id"] > after_id]
            page = [json.loads(json.dumps(r)) for r in rows[:size]]
        more = len(rows) > size
        cursor = _encode((0, page[-1]["id"])) if page else None
        query = {k: v[0] for k, v in req.query.items() if k != "page[after]"}
        body = {
            "satisfaction_ratings": page,
            "meta": {"has_more": more, "after_cursor": cursor, "before_cursor": None},
            "links": {"next": f"{_root(req)}{req.path}?{urlencode({**query, 'page[after]': cursor})}" if more else None,
                      "prev": None},
        }
        return Reply.json(body)

    # ------------------------------------------------------------------ control endpoints (over HTTP)

    def control_change(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "users": self.add_users(int(body.get("add_users", 0))) + self.update_users(body.get("update_users", [])),
            "deleted_users": self.delete_users(body.get("delete_users", [])),
            "tickets": self.add_tickets(int(body.get("add_tickets", 0))) + self.update_tickets(body.get("update_tickets", [])),
        }
