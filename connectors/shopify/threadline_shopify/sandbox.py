"""The Shopify Admin REST API (customers, orders) on loopback, for tests and demos
(`threadline sandbox shopify`).

What it implements, as Shopify documents it:

    GET /admin/api/{version}/customers.json?limit=&updated_at_min=&since_id=
    GET /admin/api/{version}/orders.json?limit=&status=open|closed|cancelled|any&updated_at_min=
    GET /admin/api/{version}/shop.json

- Auth: `X-Shopify-Access-Token: shpat_...`; a wrong or revoked token answers 401
  {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}; a
  token without the read_customers / read_orders scope answers 403 {"errors": "[API] This action
  requires merchant approval for read_orders scope."}.
- Bodies: {"customers": [...]} / {"orders": [...]}, in id order; `limit` is 1..250 (default 50).
- Cursor pagination: a `Link` header, `<https://.../customers.json?limit=50&page_info=...>; rel="next"`
  (and rel="previous"); with `page_info` only `limit` and `fields` may be sent (400 otherwise).
- `updated_at_min` is inclusive; orders default to status=open (so `status=any` is needed for all).
- Throttling is a leaky bucket per token: `bucket_size` calls (40), leaking `leak_rate` a second
  (2); every answer says `X-Shopify-Shop-Api-Call-Limit: used/size`; a full bucket answers 429
  {"errors": "Exceeded 2 calls per second for api client. ..."} with `Retry-After: 2.0`.
- Money is strings ("199.00"), timestamps ISO 8601 in the shop's zone ("2024-03-01T07:00:00-05:00").

Seeded data (deterministic from the seed): customers with mixed-case and missing emails, phones
in several formats, several addresses, consent states and tags; orders (some guest orders
with no customer, some cancelled or closed) with line items. Tests change data with
`update_customers`, `add_orders`, `delete_customer`, `set_raw`, and refuse the token with
`revoke_credentials` or `drop_scope`.
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

from threadline.sandbox import Reply, Sandbox, SandboxRequest

API_VERSION = "2024-07"
_ZONE = timezone(timedelta(hours=-5))
_EPOCH = datetime(2024, 2, 1, 9, 0, tzinfo=_ZONE)
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus", "Zoë"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton"]
_PLACES = [("Ottawa", "Ontario", "ON", "Canada", "CA", "K1P 1J9"), ("Austin", "Texas", "TX", "United States", "US", "78701"),
           ("London", "England", "ENG", "United Kingdom", "GB", "N1 9GU"), ("Paris", None, None, "France", "FR", "75011")]
_PRODUCTS = [(632910392, 808950810, "Espresso beans 1kg", "ESP-1K", "24.00"), (632910393, 808950811, "Filter papers", None, "4.50"),
             (632910394, 808950812, "Ceramic mug", "MUG-W", "12.00"), (632910395, 808950813, "Grinder", "GRD-2", "149.99")]
_PATH = re.compile(r"^/admin/api/(?P<version>\d{4}-\d{2}|unstable)/(?P<resource>customers|orders|shop)\.json$")
_SCOPES = {"customers": "read_customers", "orders": "read_orders"}


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
                 leak_rate: float = 2.0, retry_after: float = 2.0) -> None:
        self.customer_count = customers
        self.bucket_size, self.leak_rate, self.retry_after = bucket_size, leak_rate, retry_after
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._rng = rng
        self._revoked = False
        self._scopes = {"read_customers", "read_orders"}
        self._bucket = 0.0
        self._bucket_at = time.monotonic()
        self._customers: dict[int, dict[str, Any]] = {}
        self._orders: dict[int, dict[str, Any]] = {}
        self._slot = 0
        self._pages: dict[tuple[Any, ...], tuple[bytes, str]] = {}  # serialised pages and their Link (benchmarks)
        for i in range(self.customer_count):
            self._add_customer(rng, i)
        customers = list(self._customers.values())
        for i in range(self.customer_count * 3 // 2):
            buyer = None if i % 9 == 0 else rng.choice(customers)
            self._add_order(rng, i, buyer)
        self._clock = max(_parse_time(r["updated_at"]) for r in [*customers, *self._orders.values()])

    def _when(self) -> datetime:
        moment = _EPOCH + timedelta(minutes=self._slot // 3)
        self._slot += 1
        return moment

    def _address(self, rng: random.Random, customer_id: int, n: int, first: str, last: str, default: bool) -> dict[str, Any]:
        city, province, code, country, ccode, zip_code = rng.choice(_PLACES)
        return {"id": customer_id * 10 + n, "customer_id": customer_id, "first_name": first, "last_name": last,
                "company": rng.choice([None, "", "Threadline Coffee"]), "address1": f"{rng.randrange(1, 999)} Main St",
                "address2": rng.choice([None, "", "Apt 4"]), "city": city, "province": province, "country": country,
                "zip": zip_code, "phone": rng.choice([None, "+16135550100", "(613) 555-0100"]), "name": f"{first} {last}",
                "province_code": code, "country_code": ccode, "country_name": country, "default": default}

    def _add_customer(self, rng: random.Random, i: int) -> dict[str, Any]:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        when = self._when()
        customer_id = 207119551 + i * 7
        kind = i % 10
        email = None if kind == 0 else f"{first.lower()}.{last.lower()}{i}@example.com"
        if kind == 3 and email:
            email = email.title()  # mixed case, as typed at checkout
        phone = rng.choice([f"+1613555{i % 10000:04d}", f"+44 20 7946 {i % 10000:04d}", None]) if kind in (0, 1, 2, 5) else None
        if kind == 0 and phone is None:
            phone = f"+1613555{i % 10000:04d}"
        addresses = [self._address(rng, customer_id, n, first, last, n == 0) for n in range(rng.choice([0, 1, 1, 2, 3]))]
        marketing = rng.choice(["subscribed", "not_subscribed", "unsubscribed"]) if email else None
        customer = {
            "id": customer_id, "email": email, "created_at": shop_time(when - timedelta(days=rng.randrange(1, 600))),
            "updated_at": shop_time(when), "first_name": first if i % 17 else None, "last_name": last,
            "orders_count": 0, "state": rng.choice(["enabled", "disabled", "invited"]), "total_spent": "0.00",
            "last_order_id": None, "note": rng.choice([None, "", "Prefers decaf"]), "verified_email": email is not None,
            "multipass_identifier": None, "tax_exempt": False, "tags": rng.choice(["", "vip", "vip, wholesale", "newsletter"]),
            "last_order_name": None, "currency": "CAD", "phone": phone, "addresses": addresses,
            "email_marketing_consent": None if email is None else {
                "state": marketing, "opt_in_level": "single_opt_in" if marketing == "subscribed" else None,
                "consent_updated_at": shop_time(when - timedelta(days=2)) if marketing != "not_subscribed" else None},
            "sms_marketing_consent": None if phone is None else {
                "state": rng.choice(["subscribed", "not_subscribed"]), "opt_in_level": "single_opt_in",
                "consent_updated_at": None, "consent_collected_from": "SHOPIFY"},
            "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
            "default_address": copy.deepcopy(addresses[0]) if addresses else None,
        }
        self._customers[customer_id] = customer
        return customer

    def _add_order(self, rng: random.Random, i: int, buyer: dict[str, Any] | None, when: datetime | None = None) -> dict[str, Any]:
        when = when or self._when()
        order_id = 450789469 + i * 3
        items = []
        for n in range(rng.choice([1, 1, 2, 3])):
            product_id, variant_id, title, sku, price = rng.choice(_PRODUCTS)
            quantity = rng.randrange(1, 4)
            items.append({"id": order_id * 10 + n, "variant_id": variant_id, "product_id": product_id, "title": title,
                          "variant_title": rng.choice([None, "Default"]), "sku": sku, "vendor": "Threadline",
                          "quantity": quantity, "price": price, "total_discount": rng.choice(["0.00", "1.00"]),
                          "taxable": True, "gift_card": False, "fulfillment_status": rng.choice([None, "fulfilled"]),
                          "price_set": {"shop_money": {"amount": price, "currency_code": "CAD"}}})
        subtotal = sum(float(x["price"]) * x["quantity"] for x in items)
        discounts = sum(float(x["total_discount"]) for x in items)
        tax = round(subtotal * 0.13, 2)
        status = rng.choices(["open", "closed", "cancelled"], [60, 30, 10])[0]
        guest_email = f"guest{i}@example.org" if buyer is None else None
        email = buyer["email"] if buyer else guest_email
        address = copy.deepcopy(buyer["default_address"]) if buyer and buyer["default_address"] else None
        order = {
            "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": f"#{1001 + i}",
            "order_number": 1001 + i, "email": email or "", "contact_email": email, "phone": buyer["phone"] if buyer else None,
            "created_at": shop_time(when - timedelta(hours=1)), "updated_at": shop_time(when), "processed_at": shop_time(when - timedelta(hours=1)),
            "cancelled_at": shop_time(when) if status == "cancelled" else None,
            "cancel_reason": "customer" if status == "cancelled" else None,
            "closed_at": shop_time(when) if status == "closed" else None,
            "financial_status": "refunded" if status == "cancelled" else rng.choice(["paid", "paid", "pending", "partially_refunded"]),
            "fulfillment_status": rng.choice([None, "fulfilled", "partial"]), "currency": "CAD",
            "total_price": f"{subtotal - discounts + tax:.2f}", "subtotal_price": f"{subtotal - discounts:.2f}",
            "total_tax": f"{tax:.2f}", "total_discounts": f"{discounts:.2f}", "total_line_items_price": f"{subtotal:.2f}",
            "tags": rng.choice(["", "wholesale"]), "source_name": rng.choice(["web", "pos", "shopify_draft_order"]),
            "buyer_accepts_marketing": bool(buyer and (buyer["email_marketing_consent"] or {}).get("state") == "subscribed"),
            "test": False, "confirmed": True, "customer": None if buyer is None else {
                "id": buyer["id"], "email": buyer["email"], "first_name": buyer["first_name"], "last_name": buyer["last_name"],
                "phone": buyer["phone"], "admin_graphql_api_id": buyer["admin_graphql_api_id"]},
            "billing_address": address, "shipping_address": address, "line_items": items, "_status": status,
        }
        self._orders[order_id] = order
        if buyer is not None and status != "cancelled":
            buyer["orders_count"] += 1
            buyer["total_spent"] = f"{float(buyer['total_spent']) + float(order['total_price']):.2f}"
            buyer["last_order_id"], buyer["last_order_name"] = order_id, order["name"]
        return order

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

    def add_orders(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            rng = random.Random(self.seed + 77 + len(self._orders))
            buyers = sorted(self._customers.values(), key=lambda c: c["id"])
            added = []
            for _ in range(n):
                buyer = rng.choice(buyers)
                order = self._add_order(rng, len(self._orders), buyer, when=self._tick())
                buyer["updated_at"] = order["updated_at"]
                added.append(order)
            return [_public(o) for o in added]

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
        with self._lock:
            self._scopes.discard(scope)

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, req: SandboxRequest) -> Reply:
        match = _PATH.match(req.path)
        if match is None or req.method != "GET":
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
            headers = {"X-Shopify-Shop-Api-Call-Limit": limit_header, "X-Shopify-API-Version": match.group("version")}
            resource = match.group("resource")
            if resource == "shop":
                return Reply.json({"shop": {"id": 548380009, "name": "Threadline Coffee", "iana_timezone": "America/Toronto",
                                            "currency": "CAD"}}, headers=headers)
            if _SCOPES[resource] not in self._scopes:
                return Reply.json({"errors": f"[API] This action requires merchant approval for {_SCOPES[resource]} scope."},
                                  403, headers)
            return self._list(req, resource, headers)

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
        key = (resource, json.dumps(state, sort_keys=True), limit, req.base_url, req.path)
        cached = self._pages.get(key)
        if cached is not None:
            body, link = cached
            return Reply.raw_json(body, headers={**headers, "Link": link} if link else headers)
        rows = self._customers.values() if resource == "customers" else self._orders.values()
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
        if more:
            token = base64.urlsafe_b64encode(json.dumps({**state, "last_id": page[-1]["id"]}).encode()).decode()
            links.append(f'<{url}?{urlencode({"limit": limit, "page_info": token})}>; rel="next"')
        if after and page:
            token = base64.urlsafe_b64encode(json.dumps({**state, "last_id": 0, "direction": "prev"}).encode()).decode()
            links.insert(0, f'<{url}?{urlencode({"limit": limit, "page_info": token})}>; rel="previous"')
        if links:
            headers = {**headers, "Link": ", ".join(links)}
        records = [_public(r) for r in page] if resource == "orders" else page
        body = json.dumps({resource: records}, separators=(",", ":")).encode()
        self._pages[key] = (body, ", ".join(links))
        return Reply.raw_json(body, headers=headers)


def _public(order: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in order.items() if not k.startswith("_")}
