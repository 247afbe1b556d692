"""The LoyaltyLion Admin API v2 on loopback, for tests and demos (`threadline sandbox loyaltylion`).

    GET /v2/customers      ?limit=1..500 (default 100) &since_id= &updated_at_min= &updated_at_max=
                           &created_at_min= &created_at_max= &email= (substring) &cursor=
                           → {"customers": [...], "cursor": {"prev": c|null, "next": c|null}}
    GET /v2/transactions   ?limit= &since_id= &created_at_min= &created_at_max= &cursor=
                           → {"transactions": [...], "cursor": {...}}

As documented: `Authorization: Bearer <API key>` (401 `{"error": {"message": ...}}` otherwise);
results newest first (descending id); a cursor carries the filters of the first request, so a
next page needs only `?cursor=` (other parameters are ignored then); `*_min` filters are
inclusive; at most 20 requests per second per key, answered 429 with `Retry-After: 1` beyond
(the limit can be raised for tests: `requests_per_second=`).

Seeded data: the members are people of the population shared by every vendor sandbox
(`threadline.sandbox.people`, population `2026 + seed`), so the same people are customers in
the shop (`merchant_id` is their Shopify customer, `gid://shopify/Customer/<id>`), the CRMs
and the email tools. One account per loyalty card (the card number in `properties.card_number`),
and the mess of people with two or three: a work address, the same address typed without the
dot or in capitals, an account made at the till with no email and no shop customer, the same
phone written two ways or left out; guests who never enrolled (no tier), blocked accounts,
accounts with no properties at all. Points are earned on the person's orders (pending for the
first 30 days), spent on rewards; `updated_at` is the last change, shared in threes so that
cursor boundaries fall on ties; ids grow with creation time.
"""

from __future__ import annotations

import base64
import bisect
import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from threadline.sandbox import Reply, Sandbox, SandboxRequest
from threadline.sandbox.people import (
    AS_OF,
    Person,
    format_phone,
    in_threes,
    loyalty_points,
    members_of,
    population_seed,
    shopify_customer_id,
)

_EPOCH = AS_OF  # accounts added by tests come after the seeded ones
TIERS = [
    {"id": 301, "name": "Bronze", "number": 1, "default": True, "hidden": False, "lower_bound": "0", "upper_bound": "500", "position": 1},
    {"id": 302, "name": "Silver", "number": 2, "default": False, "hidden": False, "lower_bound": "500", "upper_bound": "2000", "position": 2},
    {"id": 303, "name": "Gold", "number": 3, "default": False, "hidden": False, "lower_bound": "2000", "upper_bound": None, "position": 3},
]
_SEGMENTS = ["Loyal", "At Risk", "Promising", "New", "Hibernating", None]
_RESOURCES = ["order", "activity", "reward", "adjustment", "expiration"]


_SEGMENT = {"loyal": "Loyal", "regular": "Promising", "lapsed": "At Risk", "one_time": "Hibernating", "new": "New"}


def _transaction(resource: str, points: int, status: str, at: datetime, order_id: str | None = None) -> dict[str, Any]:
    return {"id": 0, "customer": {}, "points": points, "status": status, "resource": resource, "resource_id": "",
            "merchant_order_id": order_id, "created_at": stamp(at)}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json({"error": {"message": message}}, status, headers)


class LoyaltylionSandbox(Sandbox):
    name = "loyaltylion"
    API_KEY = "pat_sandbox0e1c752f1b5cd8b743148a586e573b6"

    def __init__(self, *, seed: int = 0, port: int = 0, people: int = 2500, requests_per_second: int = 20) -> None:
        self.people = people
        self.requests_per_second = requests_per_second
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        self._rng = random.Random(self.seed)
        self._customers: dict[int, dict[str, Any]] = {}
        self._transactions: dict[int, dict[str, Any]] = {}
        self._next_customer, self._next_transaction = 10_001, 500_001
        self._tick_count = 0
        accounts: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        for person in members_of("loyaltylion", self.people, population_seed(self.seed)):
            accounts += self._accounts_of(person)
        accounts.sort(key=lambda a: a[0]["created_at"])  # ids grow with creation time, as LoyaltyLion's do
        moments = in_threes([_instant(a["updated_at"]) for a, _ in accounts])
        for (customer, earned), moment in zip(accounts, moments):
            customer["id"] = cid = self._next_customer
            self._next_customer += 1
            if customer["merchant_id"] is None:
                customer["merchant_id"] = str(cid)  # made at the till: no shop customer behind it
            customer.update(referral_id=f"ref{cid:x}", referral_url=f"https://shop.example.com/r/ref{cid:x}",
                            updated_at=stamp(moment))
            if self._customers and self._rng.random() < 0.1:
                referrer = self._customers[self._rng.choice(list(self._customers)[-50:])]
                customer["referred_by"] = {"id": referrer["id"], "merchant_id": referrer["merchant_id"]}
            self._customers[cid] = customer
            for transaction in earned:
                transaction["customer"] = {"id": cid, "merchant_id": customer["merchant_id"], "email": customer["email"]}
        transactions = sorted((t for _, earned in accounts for t in earned), key=lambda t: t["created_at"])
        for transaction in transactions:
            transaction["id"] = tid = self._next_transaction
            self._next_transaction += 1
            transaction["resource_id"] = f"{transaction['resource']}-{tid}"
            self._transactions[tid] = transaction
        latest = max((_instant(c["updated_at"]) for c in self._customers.values()), default=_EPOCH)
        self._clock = max(latest, _EPOCH)
        self._second: dict[int, int] = {}  # requests in the current second, for the rate limit
        self._rate_lock = threading.Lock()
        self._revoked = False

    def _accounts_of(self, person: Person) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The person's loyalty accounts, one per card, each with the transactions it earned."""
        rng = self._rng
        contact = person.contacts["loyaltylion"]
        shop = f"gid://shopify/Customer/{shopify_customer_id(person)}" if person.shop_account and \
            "shopify" in person.systems else None
        points = loyalty_points(person)
        out = []
        for n, card in enumerate(person.loyalty_cards):
            first = n == 0
            email = contact.email if first else self._email(person, contact.email)
            number = contact.phone or person.mobile
            if first:
                phone = number if number and rng.random() < 0.8 else None
            else:
                phone = self._phone(number) if number else None
            created = contact.since if first else contact.since + (AS_OF - contact.since) * rng.random()
            guest = not first and rng.random() < 0.3
            earned = [] if guest else self._earned(rng, person, created, first)
            spent = sum(-t["points"] for t in earned if t["resource"] == "reward")
            pending = sum(t["points"] for t in earned if t["status"] == "pending")
            approved = 0 if guest else max(0, points - pending) if first else int(points * rng.uniform(0, 0.2))
            tier = None if guest else next(t for t in reversed(TIERS) if approved >= int(t["lower_bound"]))
            properties: dict[str, Any] | None = None
            if rng.random() > 0.08:
                properties = {"first_name": contact.first_name, "last_name": person.last_name, "card_number": card}
                if phone:
                    properties["phone"] = phone
            last = max([created, *(_instant(t["created_at"]) for t in earned)])
            customer: dict[str, Any] = {
                "id": 0, "merchant_id": shop if first else None, "email": email,
                "points_approved": approved, "points_pending": pending, "points_spent": spent, "properties": properties,
                "metadata": {"shopify_source_url": None}, "rewards_claimed": sum(1 for t in earned if t["resource"] == "reward"),
                "blocked": rng.random() < 0.02, "guest": guest, "enrolled": not guest,
                "enrolled_at": None if guest else stamp(created), "referral_id": "", "referred_by": None,
                "loyalty_tier_membership": None, "insights_segment": _SEGMENT.get(person.segment),
                "birthday": person.birth_date.isoformat() if rng.random() < 0.3 else None,
                "referral_url": "", "created_at": stamp(created), "updated_at": stamp(last), "linked_merchant_ids": [],
            }
            if tier is not None:
                customer["loyalty_tier_membership"] = {
                    "started_at": stamp(created), "expires_at": None, "manual": rng.random() < 0.05, "loyalty_tier": dict(tier)}
            out.append((customer, earned))
        return out

    @staticmethod
    def _earned(rng: random.Random, person: Person, enrolled: datetime, first: bool) -> list[dict[str, Any]]:
        """Transactions of an account: points for each order since it enrolled (the first account
        collects them), a signup bonus, and now and then a reward spent."""
        out = [_transaction("activity", 50, "approved", enrolled)]
        if not first:
            return out
        for order in person.orders:
            if order.at < enrolled or order.status == "refunded":
                continue
            recent = AS_OF - order.at < timedelta(days=30)  # points stay pending until the return window closes
            out.append(_transaction("order", int(order.total * 5), "pending" if recent else "approved", order.at,
                                    str(order.id)))
            if rng.random() < 0.15:
                out.append(_transaction("reward", -rng.choice([100, 250, 500]), "approved",
                                        order.at + timedelta(minutes=rng.randrange(1, 30))))
        return out

    def _email(self, person: Person, first_account: str | None) -> str | None:
        """The email of a person's second or third account."""
        style = self._rng.random()
        if style < 0.4 and person.email_of("work"):
            return person.email_of("work")
        if first_account and style < 0.7:
            local, _, domain = first_account.partition("@")
            return f"{local.replace('.', '')}@{domain}"  # typed without the dot
        if first_account and style < 0.85:
            return first_account.upper()  # same address, shouted
        return None  # made at the till, no email kept

    def _phone(self, phone: str) -> str | None:
        """The phone of a person's second or third account: as is, written nationally, or none."""
        return self._rng.choice([phone, format_phone(phone, "national"), None])

    def _tick(self) -> datetime:
        self._tick_count += 1
        if self._tick_count % 3 == 0:  # updated_at values shared in threes
            self._clock += timedelta(seconds=17)
        return self._clock

    def _add_customer(self, first: str, last: str, email: str | None, phone: str | None, person: int) -> dict[str, Any]:
        rng, cid = self._rng, self._next_customer
        self._next_customer += 1
        created = self._tick()
        guest = rng.random() < 0.12
        approved = 0 if guest else int(rng.paretovariate(1.5) * 100)
        tier = None if guest else next(t for t in reversed(TIERS) if approved >= int(t["lower_bound"]))
        properties: dict[str, Any] | None = None
        if rng.random() > 0.1:
            properties = {"first_name": first, "last_name": last}
            if phone:
                properties["phone"] = phone
        customer: dict[str, Any] = {
            "id": cid, "merchant_id": f"gid://shopify/Customer/{7_000_000 + cid}" if rng.random() < 0.9 else str(cid),
            "email": email, "points_approved": approved, "points_pending": 0 if guest else rng.choice([0, 0, 25, 50]),
            "points_spent": 0 if guest else rng.randint(0, approved), "properties": properties,
            "metadata": {"shopify_source_url": None}, "rewards_claimed": rng.randint(0, 4) if not guest else 0,
            "blocked": rng.random() < 0.02, "guest": guest, "enrolled": not guest,
            "enrolled_at": None if guest else stamp(created), "referral_id": f"ref{cid:x}",
            "referred_by": None, "loyalty_tier_membership": None,
            "insights_segment": rng.choice(_SEGMENTS), "birthday": f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if rng.random() < 0.3 else None,
            "referral_url": f"https://shop.example.com/r/ref{cid:x}", "created_at": stamp(created), "updated_at": stamp(created),
            "linked_merchant_ids": [],
        }
        if tier is not None:
            customer["loyalty_tier_membership"] = {
                "started_at": stamp(created), "expires_at": None, "manual": rng.random() < 0.05, "loyalty_tier": dict(tier)}
        if self._customers and rng.random() < 0.1:
            referrer = self._customers[rng.choice(list(self._customers)[-50:])]
            customer["referred_by"] = {"id": referrer["id"], "merchant_id": referrer["merchant_id"]}
        self._customers[cid] = customer
        for _ in range(rng.choice([0, 1, 2, 3]) if not guest else 0):
            self._add_transaction(customer, created)
        return customer

    def _add_transaction(self, customer: dict[str, Any], at: datetime) -> dict[str, Any]:
        tid = self._next_transaction
        self._next_transaction += 1
        resource = self._rng.choice(_RESOURCES)
        points = self._rng.randint(5, 300) * (-1 if resource in ("reward", "expiration") else 1)
        transaction = {
            "id": tid, "customer": {"id": customer["id"], "merchant_id": customer["merchant_id"], "email": customer["email"]},
            "points": points, "status": self._rng.choice(["approved", "approved", "approved", "pending", "void"]),
            "resource": resource, "resource_id": f"{resource}-{tid}", "merchant_order_id": f"#{1000 + tid % 9000}" if resource == "order" else None,
            "created_at": stamp(at),
        }
        self._transactions[tid] = transaction
        return transaction

    def secrets(self) -> list[str]:
        return [self.API_KEY]

    # ------------------------------------------------------------------ what tests use

    def customers(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(c)) for c in sorted(self._customers.values(), key=lambda c: -c["id"])]

    def transactions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(t)) for t in sorted(self._transactions.values(), key=lambda t: -t["id"])]

    def accounts_of(self, phone_digits: str) -> list[dict[str, Any]]:
        """Every account whose properties carry this phone (in any format): one person's cards."""
        return [c for c in self.customers() if phone_digits[-6:] in "".join(ch for ch in ((c["properties"] or {}).get("phone") or "") if ch.isdigit())]

    def add_customers(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            self._clock += timedelta(minutes=5)
            made = [self._add_customer("New", f"Member{i}", f"new.member{i}.{self._next_customer}@gmail.com", None, person=-1)
                    for i in range(n)]
            return [json.loads(json.dumps(c)) for c in made]

    def award_points(self, ids: list[int], points: int = 40) -> list[dict[str, Any]]:
        """Approve points for these customers (each gets a transaction and a newer updated_at)."""
        with self._lock:
            self._clock += timedelta(minutes=5)
            changed = []
            for cid in ids:
                customer = self._customers[cid]
                customer["points_approved"] += points
                customer["updated_at"] = stamp(self._clock)
                self._add_transaction(customer, self._clock)
                changed.append(json.loads(json.dumps(customer)))
            return changed

    def set_customer_field(self, cid: int, key: str, value: Any) -> None:
        with self._lock:
            self._customers[cid][key] = value

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ the API

    _COLLECTIONS = {"/v2/customers": "customers", "/v2/transactions": "transactions"}
    _FILTERS = {
        "customers": ("since_id", "updated_at_min", "updated_at_max", "created_at_min", "created_at_max", "email"),
        "transactions": ("since_id", "created_at_min", "created_at_max"),
    }

    def _dispatch(self, req: SandboxRequest) -> Reply:
        kind = self._COLLECTIONS.get(req.path.rstrip("/"))
        if kind is None or req.method != "GET":
            return error(404, "Not found")
        if self._revoked or req.headers.get("authorization") != f"Bearer {self.API_KEY}":
            return error(401, "Authentication is required")
        if not self._within_rate_limit():
            return error(429, "Rate limit exceeded", {"Retry-After": "1"})
        limit = req.int_param("limit", 100)
        if not 1 <= limit <= 500:
            return error(400, f"limit must be between 1 and 500, got {limit}")
        token = req.param("cursor")
        if token:
            try:
                filters, after = self._decode(token)
            except ValueError:
                return error(400, "Invalid cursor")
        else:
            filters, after = {k: req.param(k) for k in self._FILTERS[kind] if req.param(k) is not None}, None
        with self._lock:
            rows = self._select(kind, filters, after, limit + 1)
            page = rows[:limit]
            more = len(rows) > limit
            next_cursor = self._encode(filters, page[-1]["id"]) if more and page else None
            body = {kind: page, "cursor": {"prev": None, "next": next_cursor}}  # the sandbox pages forward only
        headers = {"Link": f'<{req.base_url}{req.path}?cursor={next_cursor}>; rel="next"'} if next_cursor else {}
        return Reply.json(body, headers=headers)

    def _select(self, kind: str, filters: dict[str, str], after: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` records matching `filters`, newest first, older than id `after`."""
        source = self._customers if kind == "customers" else self._transactions
        ids = sorted(source, reverse=True)  # newest first
        start = 0 if after is None else bisect.bisect_left([-i for i in ids], -after + 1)
        since = int(filters["since_id"]) if filters.get("since_id", "").isdigit() else None
        email = (filters.get("email") or "").lower()
        bounds = [(field, _instant(filters[f"{field}_min"]) if filters.get(f"{field}_min") else None,
                   _instant(filters[f"{field}_max"]) if filters.get(f"{field}_max") else None)
                  for field in ("updated_at", "created_at")]

        def keep(r: dict[str, Any]) -> bool:
            for field, low, high in bounds:
                if low is not None or high is not None:
                    moment = _instant(r[field])
                    if (low is not None and moment < low) or (high is not None and moment > high):
                        return False
            return not email or email in (r.get("email") or "").lower()

        found = []
        for cid in ids[start:]:
            if since is not None and cid <= since:
                break  # ids only get smaller from here
            if keep(source[cid]):
                found.append(source[cid])
                if len(found) == limit:
                    break
        return found

    def _within_rate_limit(self) -> bool:
        second = int(time.time())
        with self._rate_lock:
            count = self._second.get(second, 0) + 1
            self._second = {second: count}
            return count <= self.requests_per_second

    @staticmethod
    def _encode(filters: dict[str, str], last_id: int) -> str:
        raw = json.dumps({"lastId": last_id, "direction": "next", "filters": filters}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode(token: str) -> tuple[dict[str, str], int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return dict(data["filters"]), int(data["lastId"])
        except (ValueError, KeyError, TypeError):
            raise ValueError("bad cursor") from None


def expected_customer(c: dict[str, Any]) -> dict[str, Any]:
    """What a record of the `customers` stream should be for one raw customer of this sandbox,
    built in plain Python (independently of the connector's Arrow flattening); for tests."""
    membership = c.get("loyalty_tier_membership") or {}
    tier = membership.get("loyalty_tier") or {}
    props = c.get("properties") or {}
    referrer = c.get("referred_by") or {}
    return {
        **c, "phone": props.get("phone"), "first_name": props.get("first_name"), "last_name": props.get("last_name"),
        "tier_id": tier.get("id"), "tier_name": tier.get("name"), "tier_number": tier.get("number"),
        "tier_started_at": membership.get("started_at"), "tier_expires_at": membership.get("expires_at"),
        "tier_manual": membership.get("manual"), "referred_by_id": referrer.get("id"),
        "referred_by_merchant_id": referrer.get("merchant_id"),
        "properties": None if c.get("properties") is None else json.dumps(c["properties"], separators=(",", ":"), sort_keys=True),
    }


def expected_transaction(t: dict[str, Any]) -> dict[str, Any]:
    """What a record of the `transactions` stream should be for one raw transaction; for tests."""
    return {**t, "customer_id": t["customer"]["id"], "customer_merchant_id": t["customer"]["merchant_id"],
            "customer_email": t["customer"]["email"]}


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
