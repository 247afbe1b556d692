"""The Shopify Admin REST API (customers, orders) on loopback, for tests and demos
(`threadline sandbox shopify`).

What it implements, as Shopify documents it:

    GET /admin/api/{version}/customers.json?limit=&updated_at_min=&since_id=&fields=
    GET /admin/api/{version}/orders.json?limit=&status=open|closed|cancelled|any&updated_at_min=&fields=
    GET /admin/api/{version}/customers/{id}.json, orders/{id}.json       (?fields=)
    GET /admin/api/{version}/customers/count.json, orders/count.json     (?status=&updated_at_min=)
    GET /admin/api/{version}/shop.json
    GET /admin/oauth/access_scopes.json                                  (unversioned)

- Versions: the supported stable versions are `SUPPORTED_VERSIONS` (quarterly, 2026-01 to
  2026-10, each served for a year), the release candidate `RELEASE_CANDIDATE` and `unstable`.
  A retired quarterly version (2024-07, 2025-10) is not refused: as Shopify does, it is
  answered by the oldest supported version, and `X-Shopify-API-Version` says which one served
  it (the header is the only sign). A version that never existed (2026-02) answers 404.
- Auth: `X-Shopify-Access-Token: shpat_...`; a wrong or revoked token answers 401
  {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}; a
  token without the read_customers / read_orders scope answers 403 {"errors": "[API] This action
  requires merchant approval for read_orders scope."}.
- Scopes: the app is installed with `scopes` (default: read_customers, read_orders and
  read_all_orders, as the connector's README asks); `grant_scope` / `drop_scope` (or POST
  /_sandbox/grant_scope, /_sandbox/drop_scope {"scope": ...}) change them, and
  `/admin/oauth/access_scopes.json` lists them. Without read_all_orders only the orders created
  in the last 60 days (of the shop's clock) exist for the app: lists, counts and single orders.
- `fields=a,b` answers only those top-level fields of each record (unknown names are left out).
- Bodies: {"customers": [...]} / {"orders": [...]}, in id order; `limit` is 1..250 (default 50).
- Cursor pagination: a `Link` header, `<https://.../customers.json?limit=50&page_info=...>; rel="next"`
  (and rel="previous"); with `page_info` only `limit` and `fields` may be sent (400 otherwise).
- `updated_at_min` is inclusive; orders default to status=open (so `status=any` is needed for all).
- Throttling is a leaky bucket per token: `bucket_size` calls (40), leaking `leak_rate` a second
  (2); every answer says `X-Shopify-Shop-Api-Call-Limit: used/size`; a full bucket answers 429
  {"errors": "Exceeded 2 calls per second for api client. ..."} with `Retry-After: 2.0`.
- Money is strings ("199.00"), timestamps ISO 8601 in the shop's zone ("2024-03-01T07:00:00-05:00").

Seeded data: the shop's customers are people of the shared population
(`threadline.sandbox.people`, the population of `2026 + seed`), so the same people are also
in the other vendors' sandboxes. Customers are the people with a shop account; their orders,
and the orders of guests (an email, no customer record; at the till, not even that), follow
each person's purchase rhythm over two years (line items from the shop's catalogue; the SKU's
first part is the product category, and the order's `tags` list the categories, as an
order-tagging app writes them). Quirks: an address as typed (mixed case, Gmail `+shop`
tags), customers made at the till with a phone and no email, 0-2 addresses, email consent as
the customer last gave it at checkout (later unsubscribes happen at the email tool and do not
come back), SMS consent, tags. `updated_at` is when the record last changed (an order, a
consent), shared in threes so that cursor boundaries land on ties. Tests change data with
`update_customers`, `add_orders`, `delete_customer`, `set_raw`, and refuse the token with
`revoke_credentials` or `drop_scope`; a demo has shoppers answer a campaign with a known effect
with `answer_campaign` (POST /_sandbox/answer_campaign).
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import random
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from threadline.sandbox import Reply, Sandbox, SandboxError, SandboxRequest
from threadline.sandbox.people import (
    AS_OF,
    ORDER_ID_BASE,
    Item,
    Order,
    Person,
    format_phone,
    in_threes,
    members_of,
    population,
    population_seed,
    shopify_customer_id,
)
from threadline.sandbox.people_data import CATALOG

# Shopify's supported Admin API versions, checked against its versioning page on 2026-12-06:
# quarterly releases, each supported for twelve months.
SUPPORTED_VERSIONS = ("2026-01", "2026-04", "2026-07", "2026-10")
RELEASE_CANDIDATE = "2027-01"
API_VERSION = SUPPORTED_VERSIONS[-1]  # the newest stable version
DEFAULT_SCOPES = ("read_customers", "read_orders", "read_all_orders")
RECENT_ORDERS = timedelta(days=60)  # what an app without read_all_orders sees
_ZONE = timezone(timedelta(hours=-5))
# The shop's catalogue, with Shopify product and variant ids: (product_id, variant_id, sku, title, category, price).
PRODUCTS = [(632910392 + k, 808950810 + k, sku, title, category, price)
            for k, (sku, title, category, price) in enumerate(CATALOG)]
_BY_SKU = {p[2]: p for p in PRODUCTS}
# what a shopper answering a campaign buys (answer_campaign): one order of one price, so a
# campaign's effect on revenue is known
ANSWER_SKU = CATALOG[0][0]
_ANSWER_PRICE = _BY_SKU[ANSWER_SKU][5]
ANSWER_TAX = round(_ANSWER_PRICE * 0.13, 2)
ANSWER_TOTAL = round(_ANSWER_PRICE + ANSWER_TAX, 2)
_NOT_ON_ORDERS = ("id", "customer_id", "default", "country_name")  # address fields only a customer's addresses have
_VENDORS = {"brewing": ("Hario", "Fellow", "Baratza", "Bodum"), "accessories": ("Threadline", "Hario")}
_PATH = re.compile(r"^/admin/api/(?P<version>[^/]+)/(?P<resource>customers|orders|shop)(?:/(?P<item>\d+|count))?\.json$")
_ACCESS_SCOPES = "/admin/oauth/access_scopes.json"
_QUARTERLY = re.compile(r"^\d{4}-(01|04|07|10)$")
_SCOPES = {"customers": "read_customers", "orders": "read_orders"}


def served_version(asked: str) -> str | None:
    """The version Shopify answers a request for `asked` with: itself while supported, the
    oldest supported one for a retired quarterly version, None (404) for one that never was."""
    if asked in (*SUPPORTED_VERSIONS, RELEASE_CANDIDATE, "unstable"):
        return asked
    if _QUARTERLY.match(asked) and asked < SUPPORTED_VERSIONS[0]:
        return SUPPORTED_VERSIONS[0]
    return None


def shop_time(moment: datetime) -> str:
    return moment.astimezone(_ZONE).isoformat(timespec="seconds")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=_ZONE)


class ShopifySandbox(Sandbox):
    """Seeded customers and orders behind Shopify's Admin REST API (see the module docstring)."""

    name = "shopify"
    ACCESS_TOKEN = "shpat_sandbox0123456789abcdef0123456789"

    def __init__(self, *, seed: int = 0, port: int = 0, customers: int = 2000, bucket_size: int = 40,
                 leak_rate: float = 2.0, retry_after: float = 2.0, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> None:
        self.customer_count = customers
        self.installed_scopes = tuple(scopes)
        self.bucket_size, self.leak_rate, self.retry_after = bucket_size, leak_rate, retry_after
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._rng = rng
        self._revoked = False
        self._scopes = set(self.installed_scopes)
        self._bucket = 0.0
        self._bucket_at = time.monotonic()
        self._customers: dict[int, dict[str, Any]] = {}
        self._orders: dict[int, dict[str, Any]] = {}
        self._pages: dict[tuple[Any, ...], tuple[bytes, str]] = {}  # serialised pages and their Link (benchmarks)
        seed = population_seed(self.seed)
        accounts = members_of("shopify", self.customer_count, seed, where=lambda p: p.shop_account)
        known = population(seed, accounts[-1].number + 1) if accounts else ()
        guests = [p for p in known if "shopify" in p.systems and not p.shop_account]
        for person in accounts:
            self._add_customer(rng, person)
        sales = sorted(((o, p) for p in [*accounts, *guests] for o in p.orders), key=lambda pair: pair[0].at)
        for rank, (order, person) in enumerate(sales):
            buyer = self._customers.get(shopify_customer_id(person))
            email = buyer["email"] if buyer else person.contacts["shopify"].email if order.channel == "web" else None
            self._add_order(rng, rank, order, buyer, email)
        self._settle_timestamps()
        self._clock = max((_parse_time(r["updated_at"]) for r in [*self._customers.values(), *self._orders.values()]),
                          default=datetime.fromisoformat(shop_time(AS_OF)))

    def _settle_timestamps(self) -> None:
        """A customer changed last with its last order or consent; then updated_at values are
        shared in threes (per resource), as when a job touches several records at once."""
        for rows in (list(self._customers.values()), list(self._orders.values())):
            moments = in_threes([_parse_time(r["updated_at"]) for r in rows])
            for row, moment in zip(rows, moments):
                row["updated_at"] = shop_time(moment)

    def _address(self, rng: random.Random, person: Person, customer_id: int, n: int, first: str | None,
                 default: bool) -> dict[str, Any]:
        home = person.address
        work = n > 0  # a second address: the office, for deliveries at work
        company = person.company if work else rng.choice([None, None, ""])
        line1 = f"{rng.randrange(1, 400)} {rng.choice(['Market St', 'Commerce Way', 'Bay St'])}" if work else home.line1
        line2 = f"Floor {rng.randrange(2, 30)}" if work else home.line2
        phone = person.contacts["shopify"].phone or person.mobile
        return {"id": customer_id * 10 + n, "customer_id": customer_id, "first_name": first, "last_name": person.last_name,
                "company": company, "address1": line1, "address2": line2, "city": home.city, "province": home.region_name,
                "country": home.country_name, "zip": home.postal_code,
                "phone": None if phone is None or rng.random() < 0.4 else format_phone(phone, "national"),
                "name": f"{first or ''} {person.last_name}".strip(), "province_code": home.region,
                "country_code": home.country, "country_name": home.country_name, "default": default}

    def _add_customer(self, rng: random.Random, person: Person) -> dict[str, Any]:
        contact = person.contacts["shopify"]
        customer_id = shopify_customer_id(person)
        at_the_till = bool(person.orders) and all(o.channel == "pos" for o in person.orders)
        email = None if at_the_till and person.mobile else contact.email
        if email and rng.random() < 0.1:
            email = _as_typed(rng, email)
        phone = contact.phone or (person.mobile if email is None else None)
        first = contact.first_name if rng.random() > 0.05 else None
        shipped = any(o.channel == "web" for o in person.orders) or rng.random() < 0.5
        count = (2 if person.company and rng.random() < 0.25 else 1) if shipped else 0
        addresses = [self._address(rng, person, customer_id, n, first, n == 0) for n in range(count)]
        last_touch = max([contact.since, *(o.at for o in person.orders), *(c.at for c in person.checkouts)])
        status, consent_at = person.email_consent.as_of(last_touch)  # what the customer last said at checkout
        marketing = {"subscribed": "subscribed", "unsubscribed": "unsubscribed", "cleaned": "invalid"}.get(status,
                                                                                                         "not_subscribed")
        sms, sms_at = (person.sms_consent.status, person.sms_consent.at) if phone else (None, None)
        updated = max(last_touch, consent_at or last_touch, sms_at or last_touch)
        tags = [t for t, keep in (("vip", person.segment == "loyal"), ("wholesale", bool(person.company) and rng.random() < 0.3),
                                  ("subscription", any(i.category == "subscriptions" for o in person.orders for i in o.items)),
                                  ("newsletter", marketing == "subscribed" and rng.random() < 0.5)) if keep]
        decaf = any(i.sku.startswith("COFFEE-DECAF") for o in person.orders for i in o.items)
        customer = {
            "id": customer_id, "email": email, "created_at": shop_time(contact.since), "updated_at": shop_time(updated),
            "first_name": first, "last_name": person.last_name, "orders_count": 0,
            "state": rng.choices(["enabled", "disabled", "invited"], [60, 35, 5])[0], "total_spent": "0.00",
            "last_order_id": None, "note": "Prefers decaf" if decaf else rng.choice([None, ""]),
            "verified_email": email is not None, "multipass_identifier": None, "tax_exempt": False, "tags": ", ".join(tags),
            "last_order_name": None, "currency": "CAD", "phone": phone, "addresses": addresses,
            "email_marketing_consent": None if email is None else {
                "state": marketing, "opt_in_level": "single_opt_in" if marketing == "subscribed" else None,
                "consent_updated_at": shop_time(consent_at) if consent_at else None},
            "sms_marketing_consent": None if phone is None else {
                "state": sms, "opt_in_level": "single_opt_in", "consent_updated_at": shop_time(sms_at) if sms_at else None,
                "consent_collected_from": "SHOPIFY" if sms == "subscribed" else "OTHER"},
            "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
            "default_address": copy.deepcopy(addresses[0]) if addresses else None,
        }
        self._customers[customer_id] = customer
        return customer

    def _add_order(self, rng: random.Random, i: int, order: Order, buyer: dict[str, Any] | None,
                   email: str | None) -> dict[str, Any]:
        when = order.at
        items = []
        for n, item in enumerate(order.items):
            product_id, variant_id, sku, title, category, price = _BY_SKU[item.sku]
            discount = order.discount if n == 0 else 0.0  # the order's discount sits on its first line
            items.append({"id": order.id * 10 + n, "variant_id": variant_id, "product_id": product_id, "title": title,
                          "variant_title": rng.choice([None, "Default"]), "sku": sku,
                          "vendor": rng.choice(_VENDORS.get(category, ("Threadline",))),
                          "quantity": item.quantity, "price": f"{price:.2f}", "total_discount": f"{discount:.2f}",
                          "taxable": category != "gift_cards", "gift_card": category == "gift_cards",
                          "fulfillment_status": None if order.channel == "web" and AS_OF - when < timedelta(days=3) else "fulfilled",
                          "price_set": {"shop_money": {"amount": f"{price:.2f}", "currency_code": "CAD"}}})
        age = AS_OF - when
        status = "cancelled" if order.status == "refunded" else "closed" if age > timedelta(days=45) and rng.random() < 0.8 \
            else "open"
        settled = {"cancelled": timedelta(hours=rng.uniform(1, 72)), "closed": timedelta(days=rng.uniform(2, 8)),
                   "open": timedelta(minutes=rng.uniform(1, 90))}[status]
        updated = min(when + settled, AS_OF - timedelta(minutes=1))
        home = buyer and buyer["default_address"]
        address = {k: v for k, v in home.items() if k not in _NOT_ON_ORDERS} if home else None
        consent = (buyer or {}).get("email_marketing_consent") or {}
        financial = {"refunded": "refunded", "partially_refunded": "partially_refunded"}.get(order.status, "paid")
        if financial == "paid" and age < timedelta(days=2) and rng.random() < 0.3:
            financial = "pending"
        categories = list(dict.fromkeys(i.category for i in order.items))
        order_record = {
            "id": order.id, "admin_graphql_api_id": f"gid://shopify/Order/{order.id}", "name": f"#{1001 + i}",
            "order_number": 1001 + i, "email": email or "", "contact_email": email,
            "phone": buyer["phone"] if buyer else None,
            "created_at": shop_time(when), "updated_at": shop_time(updated), "processed_at": shop_time(when),
            "cancelled_at": shop_time(updated) if status == "cancelled" else None,
            "cancel_reason": "customer" if status == "cancelled" else None,
            "closed_at": shop_time(updated) if status == "closed" else None,
            "financial_status": financial, "fulfillment_status": items[0]["fulfillment_status"], "currency": "CAD",
            "total_price": f"{order.total:.2f}", "subtotal_price": f"{order.subtotal - order.discount:.2f}",
            "total_tax": f"{order.tax:.2f}", "total_discounts": f"{order.discount:.2f}",
            "total_line_items_price": f"{order.subtotal:.2f}", "tags": ", ".join(categories),
            "source_name": order.channel, "buyer_accepts_marketing": consent.get("state") == "subscribed",
            "test": False, "confirmed": True, "customer": None if buyer is None else {
                "id": buyer["id"], "email": buyer["email"], "first_name": buyer["first_name"], "last_name": buyer["last_name"],
                "phone": buyer["phone"], "admin_graphql_api_id": buyer["admin_graphql_api_id"]},
            "billing_address": address, "shipping_address": dict(address) if address and order.channel == "web" else None,
            "line_items": items, "_status": status,
        }
        self._orders[order.id] = order_record
        if buyer is not None and status != "cancelled":
            buyer["orders_count"] += 1
            buyer["total_spent"] = f"{float(buyer['total_spent']) + order.total:.2f}"
            buyer["last_order_id"], buyer["last_order_name"] = order.id, order_record["name"]
        return order_record

    def _tick(self) -> datetime:
        self._pages.clear()
        self._clock += timedelta(seconds=1)
        return self._clock

    # ------------------------------------------------------------------ what tests use

    def secrets(self) -> list[str]:
        return [self.ACCESS_TOKEN]

    def customers(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(sorted(self._customers.values(), key=lambda c: c["id"]))

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_public(o) for o in sorted(self._orders.values(), key=lambda o: o["id"])]

    def update_customers(self, ids: list[int], **values: Any) -> list[dict[str, Any]]:
        with self._lock:
            for customer_id in ids:
                self._customers[customer_id].update(values, updated_at=shop_time(self._tick()))
            return [copy.deepcopy(self._customers[i]) for i in ids]

    def add_orders(self, n: int, customer_id: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rng = random.Random(self.seed + 77 + len(self._orders))
            buyers = sorted(self._customers.values(), key=lambda c: c["id"])
            added = []
            for _ in range(n):
                buyer = self._customers[customer_id] if customer_id is not None else rng.choice(buyers)
                when = self._tick()
                order = _new_order(rng, max(self._orders, default=ORDER_ID_BASE) + 3, when)
                record = self._add_order(rng, len(self._orders), order, buyer, buyer["email"])
                record["updated_at"] = buyer["updated_at"] = shop_time(when)
                added.append(record)
            return [_public(o) for o in added]

    def answer_campaign(self, emails: list[str], rate: float, after: datetime, within: timedelta,
                        label: str) -> dict[str, Any]:
        """Shoppers answering a campaign, with a known effect: each address buys once with
        probability `rate` (drawn from a generator seeded by `label`, so a replay gives the same
        orders), at a time within `within` after `after`. Every answer is the same one-item
        order (`ANSWER_SKU`), so what a campaign adds to revenue is `rate` times its `total`.
        The order is stamped `created_at` in that window and `updated_at` with the shop's
        clock, as an order imported late is: an incremental read since the last sync takes it."""
        with self._lock:
            rng = random.Random(f"{self.seed}/{label}")
            buyers = {str(c["email"]).lower(): c for c in self._customers.values() if c.get("email")}
            _, _, sku, title, category, price = _BY_SKU[ANSWER_SKU]
            placed = 0
            for email in sorted(emails):  # the draw does not depend on the order they were sent in
                if rng.random() >= rate:
                    continue
                when = after + within * rng.random()
                item = Item(sku, title, category, price, 1)
                order = Order(max(self._orders, default=ORDER_ID_BASE) + 3, when, (item,), price, 0.0, ANSWER_TAX,
                              ANSWER_TOTAL, "web", "paid")
                record = self._add_order(rng, len(self._orders), order, buyers.get(email.lower()), email)
                record["updated_at"] = shop_time(self._tick())
                placed += 1
            return {"orders": placed, "of": len(emails), "total": ANSWER_TOTAL}

    def control_answer_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /_sandbox/answer_campaign {"emails": [...], "rate": 0.3, "after": ISO time,
        "within_days": 20, "label": "..."}: see `answer_campaign`."""
        after = datetime.fromisoformat(str(body["after"]))
        return self.answer_campaign([str(e) for e in body["emails"]], float(body["rate"]),
                                    after if after.tzinfo else after.replace(tzinfo=timezone.utc),
                                    timedelta(days=float(body.get("within_days", 20))), str(body["label"]))

    def delete_customer(self, customer_id: int) -> None:
        with self._lock:
            self._pages.clear()
            del self._customers[customer_id]

    def set_raw(self, resource: str, record_id: int, field: str, value: Any) -> None:
        """Store a value as is: a record with a field of an unexpected type."""
        with self._lock:
            self._pages.clear()
            (self._customers if resource == "customers" else self._orders)[record_id][field] = value

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def drop_scope(self, scope: str) -> None:
        """The merchant takes a scope back from the app (read_all_orders: only 60 days of orders)."""
        with self._lock:
            self._pages.clear()
            self._scopes.discard(scope)

    def grant_scope(self, scope: str) -> None:
        with self._lock:
            self._pages.clear()
            self._scopes.add(scope)

    def scopes(self) -> list[str]:
        with self._lock:
            return sorted(self._scopes)

    def visible_orders(self) -> list[dict[str, Any]]:
        """The orders the app can read with its scopes (the last 60 days without read_all_orders)."""
        with self._lock:
            return [_public(o) for o in sorted(self._orders.values(), key=lambda o: o["id"]) if self._visible(o)]

    def control_grant_scope(self, body: dict[str, Any]) -> dict[str, Any]:
        self.grant_scope(str(body["scope"]))
        return {"scopes": self.scopes()}

    def control_drop_scope(self, body: dict[str, Any]) -> dict[str, Any]:
        self.drop_scope(str(body["scope"]))
        return {"scopes": self.scopes()}

    def control_send_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /_sandbox/send_webhook {"address": URL, "secret": S, "customer_id": optional}: a new
        order (that customer's, or a random one's) delivered to URL as Shopify delivers an
        `orders/create` webhook: the order as JSON, its base64 HMAC-SHA256 keyed with the app's
        secret in X-Shopify-Hmac-Sha256. The order is stamped with the wall-clock time (the
        sandbox's own data keeps its fixed timeline). Answers with the status the address gave."""
        import hashlib
        import hmac
        import urllib.error
        import urllib.request
        import uuid

        customer = body.get("customer_id")
        if customer is not None and int(customer) not in self._customers:
            raise SandboxError(404, f"no customer {customer}")
        order = self.add_orders(1, None if customer is None else int(customer))[0]
        now = shop_time(datetime.now(timezone.utc))  # a webhook goes out as the order is placed: now, not the sandbox's clock
        order.update(created_at=now, updated_at=now, processed_at=now)
        payload = json.dumps(order, separators=(",", ":")).encode()
        signature = base64.b64encode(hmac.new(str(body["secret"]).encode(), payload, hashlib.sha256).digest()).decode()
        request = urllib.request.Request(str(body["address"]), data=payload, method="POST", headers={
            "Content-Type": "application/json", "X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": signature,
            "X-Shopify-Shop-Domain": "threadline-coffee.myshopify.com", "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": order["created_at"]})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        return {"status": status, "order_id": order["id"], "customer_id": (order.get("customer") or {}).get("id")}

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, req: SandboxRequest) -> Reply:
        match = _PATH.match(req.path)
        if (match is None and req.path != _ACCESS_SCOPES) or req.method != "GET":
            return Reply.json({"errors": "Not Found"}, 404)
        version = served_version(match.group("version")) if match else None
        if match and version is None:
            return Reply.json({"errors": "Not Found"}, 404)
        with self._lock:
            if self._revoked or req.headers.get("x-shopify-access-token") != self.ACCESS_TOKEN:
                return Reply.json({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, 401)
            limit_header = self._drip()
            if limit_header is None:
                return Reply.json(
                    {"errors": f"Exceeded {self.leak_rate:g} calls per second for api client. Reduce request rates to "
                               "resume uninterrupted service."}, 429,
                    {"Retry-After": f"{self.retry_after:.1f}", "X-Shopify-Shop-Api-Call-Limit": f"{self.bucket_size}/{self.bucket_size}"})
            headers = {"X-Shopify-Shop-Api-Call-Limit": limit_header}
            if match is None:  # the access scopes the app was granted, whatever they are
                return Reply.json({"access_scopes": [{"handle": h} for h in sorted(self._scopes)]}, headers=headers)
            headers["X-Shopify-API-Version"] = version  # the version that served it: a retired one is never echoed
            resource = match.group("resource")
            if resource == "shop":
                if match.group("item"):
                    return Reply.json({"errors": "Not Found"}, 404, headers)
                return Reply.json({"shop": {"id": 548380009, "name": "Threadline Coffee", "iana_timezone": "America/Toronto",
                                            "currency": "CAD", "myshopify_domain": "threadline-coffee.myshopify.com",
                                            "domain": "threadline-coffee.myshopify.com", "plan_name": "basic"}},
                                  headers=headers)
            if _SCOPES[resource] not in self._scopes:
                return Reply.json({"errors": f"[API] This action requires merchant approval for {_SCOPES[resource]} scope."},
                                  403, headers)
            item = match.group("item")
            if item == "count":
                return self._count(req, resource, headers)
            if item:
                return self._one(req, resource, int(item), headers)
            return self._list(req, resource, headers)

    def _visible(self, order: dict[str, Any]) -> bool:
        """Whether the app may see this order: any, with read_all_orders; else those created
        in the last 60 days."""
        return "read_all_orders" in self._scopes or _parse_time(order["created_at"]) >= self._clock - RECENT_ORDERS

    def _rows(self, resource: str) -> list[dict[str, Any]]:
        if resource == "customers":
            return list(self._customers.values())
        return [o for o in self._orders.values() if self._visible(o)]

    def _one(self, req: SandboxRequest, resource: str, item: int, headers: dict[str, str]) -> Reply:
        found = {r["id"]: r for r in self._rows(resource)}.get(item)
        if found is None:
            return Reply.json({"errors": "Not Found"}, 404, headers)
        return Reply.json({resource[:-1]: _fields(_public(found), req.param("fields"))}, headers=headers)

    def _count(self, req: SandboxRequest, resource: str, headers: dict[str, str]) -> Reply:
        rows = self._rows(resource)
        if req.param("updated_at_min"):
            try:
                bound = _parse_time(req.param("updated_at_min") or "")
            except ValueError:
                return Reply.json({"errors": {"updated_at_min": ["must be an ISO 8601 time"]}}, 400, headers)
            rows = [r for r in rows if _parse_time(r["updated_at"]) >= bound]
        status = req.param("status", "open")
        if resource == "orders" and status != "any":
            rows = [r for r in rows if r["_status"] == status]
        return Reply.json({"count": len(rows)}, headers=headers)

    def _drip(self) -> str | None:
        """Add one call to the leaky bucket; None when it is full (answer 429)."""
        now = time.monotonic()
        self._bucket = max(0.0, self._bucket - (now - self._bucket_at) * self.leak_rate)
        self._bucket_at = now
        if self._bucket + 1 > self.bucket_size:
            return None
        self._bucket += 1
        return f"{round(self._bucket)}/{self.bucket_size}"

    def _list(self, req: SandboxRequest, resource: str, headers: dict[str, str]) -> Reply:
        try:
            limit = int(req.param("limit", "50") or 50)
        except ValueError:
            return Reply.json({"errors": {"limit": ["must be an integer"]}}, 400, headers)
        if not 1 <= limit <= 250:
            return Reply.json({"errors": {"limit": ["must be between 1 and 250"]}}, 400, headers)
        token = req.param("page_info")
        if token:
            extra = set(req.query) - {"limit", "page_info", "fields"}
            if extra:
                return Reply.json({"errors": {"page_info": [f"cannot be used with {', '.join(sorted(extra))}"]}}, 400, headers)
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
            except ValueError:
                return Reply.json({"errors": {"page_info": ["Invalid value."]}}, 400, headers)
        else:
            state = {"updated_at_min": req.param("updated_at_min"), "status": req.param("status", "open"), "last_id": 0,
                     "since_id": int(req.param("since_id", "0") or 0)}
        bound = None
        if state.get("updated_at_min"):
            try:
                bound = _parse_time(state["updated_at_min"])
            except ValueError:
                return Reply.json({"errors": {"updated_at_min": ["must be an ISO 8601 time"]}}, 400, headers)
        fields = req.param("fields")
        key = (resource, json.dumps(state, sort_keys=True), limit, fields, req.base_url, req.path)
        cached = self._pages.get(key)
        if cached is not None:
            body, link = cached
            return Reply.raw_json(body, headers={**headers, "Link": link} if link else headers)
        rows = self._rows(resource)
        status = state.get("status") or "open"
        after = max(int(state.get("last_id") or 0), int(state.get("since_id") or 0))
        chosen = []
        ordered = sorted(rows, key=lambda r: r["id"])
        for row in ordered[bisect.bisect_right([r["id"] for r in ordered], after):]:
            if bound is not None and _parse_time(row["updated_at"]) < bound:
                continue
            if resource == "orders" and status != "any" and row["_status"] != status:
                continue
            chosen.append(row)
            if len(chosen) > limit:
                break
        page, more = chosen[:limit], len(chosen) > limit
        links = []
        url = f"{req.base_url}{req.path}"
        kept = {"limit": limit, **({"fields": fields} if fields else {})}  # the links keep the fields asked for
        if more:
            token = base64.urlsafe_b64encode(json.dumps({**state, "last_id": page[-1]["id"]}).encode()).decode()
            links.append(f'<{url}?{urlencode({**kept, "page_info": token})}>; rel="next"')
        if after and page:
            token = base64.urlsafe_b64encode(json.dumps({**state, "last_id": 0, "direction": "prev"}).encode()).decode()
            links.insert(0, f'<{url}?{urlencode({**kept, "page_info": token})}>; rel="previous"')
        if links:
            headers = {**headers, "Link": ", ".join(links)}
        records = [_fields(_public(r) if resource == "orders" else r, fields) for r in page]
        body = json.dumps({resource: records}, separators=(",", ":")).encode()
        self._pages[key] = (body, ", ".join(links))
        return Reply.raw_json(body, headers=headers)


def _new_order(rng: random.Random, order_id: int, when: datetime) -> Order:
    """An order placed now (tests change the data with these)."""
    picks = rng.sample(PRODUCTS, k=rng.choice([1, 1, 2, 3]))
    items = tuple(Item(sku, title, category, price, rng.randrange(1, 4)) for _, _, sku, title, category, price in picks)
    subtotal = round(sum(i.price * i.quantity for i in items), 2)
    tax = round(subtotal * 0.13, 2)
    return Order(order_id, when, items, subtotal, 0.0, tax, round(subtotal + tax, 2), "web", "paid")


def _as_typed(rng: random.Random, email: str) -> str:
    """An address as people type it at checkout: capitalised, or with a Gmail +tag."""
    local, _, domain = email.partition("@")
    if domain == "gmail.com" and rng.random() < 0.5:
        return f"{local}+shop@{domain}"
    return f"{local.title()}@{domain.title()}"


def _fields(record: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """The record with only the top-level `fields` asked for (all without `fields`)."""
    if not fields:
        return record
    wanted = {f.strip() for f in fields.split(",")}
    return {k: v for k, v in record.items() if k in wanted}


def _public(order: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in order.items() if not k.startswith("_")}
