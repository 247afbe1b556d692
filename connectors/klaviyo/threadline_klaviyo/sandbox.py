"""The Klaviyo API (JSON:API, revision-dated) on loopback, for tests and demos (`threadline sandbox klaviyo`).

What it implements, as Klaviyo documents it:

    GET /api/profiles?page[size]=&page[cursor]=&sort=updated&filter=greater-than(updated,<ISO>)
                     &additional-fields[profile]=subscriptions
    GET /api/lists?page[cursor]=                                  (10 lists a page)
    GET /api/lists/{id}/profiles?page[size]=&page[cursor]=&filter=greater-or-equal(joined_group_at,<ISO>)
    GET /api/lists/{id}/relationships/profiles?page[size]=&page[cursor]=
    GET /api/events?page[cursor]=&sort=datetime&filter=greater-or-equal(datetime,<ISO>)&include=metric
    GET /api/metrics
    GET /api/profiles/{id}  /api/lists/{id}?additional-fields[list]=profile_count  /api/events/{id}  /api/metrics/{id}

- Every request needs `Authorization: Klaviyo-API-Key pk_...` (401 otherwise) and a
  `revision` header naming a supported revision (`REVISIONS`, 2025-01-15 to 2026-10-15 on
  2026-12-06; 400 otherwise, JSON:API error body; a retired one says so).
- `filter` takes only the operators Klaviyo's OpenAPI allows per field and endpoint
  (`PROFILE_FILTERS`, ...): profiles' `updated` takes greater-than / less-than, not
  greater-or-equal; `email` takes equals / any. Conditions join with commas or `and(...)`.
- `fields[profile]` and `additional-fields[profile]` take only the fields a profile has (list
  members also `joined_group_at`); errors point at the parameter (`source.parameter`).
- Bodies: {"data": [{"type", "id", "attributes": {...}, "relationships": {name: {"data", "links": {"self",
  "related"}}}, "links": {"self"}}],
  "links": {"self", "next", "prev"}, "included": [...]}; `links.next` is the full URL of the
  next page with an opaque `page[cursor]`, absent on the last page.
- `page[size]` is 1..100 (profiles, list profiles); events come 200 a page (`events_page_size`).
- Errors: {"errors": [{"id", "status", "code", "title", "detail", "source"}]}.
- Optional rate limit (`rate_limit=(calls, seconds)`): 429 "throttled" with `Retry-After`.

Seeded data: the profiles are people of the population shared by every vendor sandbox
(`threadline.sandbox.people`, population `2026 + seed`), so the same people are in the shop,
the CRMs and the loyalty program. A profile has the email the person gave the shop, often a
phone, the shop's customer id as `external_id`, and email/SMS consent as Klaviyo holds it
(for some, as it was when the profiles were imported: older than the email tool's). Quirks:
SMS sign-ups as a second, phone-only profile on "SMS VIP"; a second profile under a work email
carrying the same external id on "Winback" (with the lapsed buyers). Events are the person's
own: Opened Email and Clicked Email for the weekly promotions (their datetimes repeat in
threes), Started Checkout (abandoned or not) and Placed Order (the shop's order id, value,
item names and categories) since the shop was connected. Tests change data between syncs
with `unsubscribe`, `add_profiles`, `add_events`, delete a list with `delete_list`, and refuse
the key with `revoke_credentials`.
"""

from __future__ import annotations

import base64
import bisect
import functools
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from threadline.sandbox import Reply, Sandbox, SandboxError, SandboxRequest
from threadline.sandbox.people import (
    AS_OF,
    KLAVIYO_CONNECTED,
    KLAVIYO_SINCE,
    Person,
    in_threes,
    loyalty_tier,
    members_of,
    population_seed,
    shopify_customer_id,
)

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton"]
_METRICS = [("RbUqjc", "Opened Email"), ("SxK2Lv", "Clicked Email"), ("Tq9wXe", "Placed Order"),
            ("UvW3xY", "Started Checkout")]
_METRIC = {name: mid for mid, name in _METRICS}
_LOCALES = {"US": "en-US", "GB": "en-GB", "CA": "en-CA", "DE": "de-DE"}
_ZONES = {"US": "America/Chicago", "GB": "Europe/London", "CA": "America/Toronto", "DE": "Europe/Berlin"}
_LISTS = [("Xa1B2c", "Newsletter"), ("Yd3E4f", "Winback"), ("Zg5H6i", "SMS VIP")]
# Klaviyo's revisions as of 2026-12-06 (its versioning policy: a revision is stable for a
# year, deprecated the next, then retired; klaviyo/openapi has a branch per revision). The
# current one is what klaviyo-api 25 sends.
CURRENT_REVISION = "2026-10-15"
REVISIONS = ("2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",  # deprecated, still served
             "2026-01-15", "2026-04-15", "2026-07-15", CURRENT_REVISION)
RETIRED_REVISIONS = ("2022-10-17", "2023-01-24", "2023-02-22", "2023-06-15", "2023-07-15", "2023-08-15", "2023-09-15",
                     "2023-10-15", "2023-12-15", "2024-02-15", "2024-05-15", "2024-06-15", "2024-07-15", "2024-10-15")

# Filter operators per field, as Klaviyo's OpenAPI lists them for each endpoint (2026-07-15
# spec and klaviyo-api 25's 2026-10-15 docstrings agree). Anything else is a 400.
_ANY_EQUALS = frozenset({"any", "equals"})
_RANGE = frozenset({"greater-or-equal", "greater-than", "less-or-equal", "less-than"})
_AFTER_BEFORE = frozenset({"greater-than", "less-than"})
PROFILE_FILTERS = {"id": _ANY_EQUALS, "email": _ANY_EQUALS, "phone_number": _ANY_EQUALS, "external_id": _ANY_EQUALS,
                   "created": _AFTER_BEFORE, "updated": _AFTER_BEFORE}
LIST_MEMBER_FILTERS = {"email": _ANY_EQUALS, "phone_number": _ANY_EQUALS, "joined_group_at": _RANGE}
EVENT_FILTERS = {"datetime": _RANGE, "timestamp": _RANGE, "metric_id": frozenset({"equals"}),
                 "profile_id": frozenset({"equals"})}
LIST_FILTERS = {"id": _ANY_EQUALS, "name": _ANY_EQUALS, "created": frozenset({"greater-than"}),
                "updated": frozenset({"greater-than"})}
# Sparse fieldsets and additional fields a profile takes (the OpenAPI's enums; a dotted path
# below one of these is allowed too); list members also take `joined_group_at`.
PROFILE_FIELDS = frozenset({"created", "email", "external_id", "first_name", "id", "image", "last_event_date",
                            "last_name", "locale", "location", "organization", "phone_number", "predictive_analytics",
                            "properties", "subscriptions", "title", "updated"})
PROFILE_ADDITIONAL_FIELDS = frozenset({"subscriptions", "predictive_analytics"})
_CONDITION = re.compile(r"^([a-z-]+)\(([\w.]+),(.*)\)$", re.S)
_TIME_FIELDS = frozenset({"created", "updated", "datetime", "joined_group_at"})
Condition = tuple[str, str, Any]  # (operator, field, value)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def errors(status: int, code: str, title: str, detail: str, pointer: str | None = None) -> Reply:
    error = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": title, "detail": detail}
    if pointer:
        error["source"] = {"pointer": pointer} if pointer.startswith("/") else {"parameter": pointer}
    return Reply(status, json.dumps({"errors": [error]}).encode(), {"Content-Type": "application/vnd.api+json"})


class _ParameterError(SandboxError):
    """A 400 about one query parameter: JSON:API's `source.parameter` names it."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(400, detail)
        self.pointer = parameter


def _split_top(text: str) -> list[str]:
    """`a(x,1),b(y,"p,q")` → its top-level comma-separated parts (quotes and brackets kept whole)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _literal(text: str) -> Any:
    """A filter value: a quoted string ("a" or 'a'), a list, null, a boolean, a number or a datetime."""
    text = text.strip()
    if text[:1] == "[" and text[-1:] == "]":
        return [_literal(item) for item in _split_top(text[1:-1]) if item]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[text]
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _ParameterError("filter", f"Invalid value {text!r} in filter.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # Klaviyo reads a naive time as UTC


def parse_filter(text: str | None, allowed: dict[str, frozenset[str]]) -> list[Condition]:
    """Klaviyo's `filter` expression (conditions joined by commas or `and(...)`) checked against
    the operators the endpoint allows per field; a refusal is a 400 naming the field."""
    if not text:
        return []
    conditions: list[Condition] = []
    for part in _split_top(text):
        match = _CONDITION.match(part)
        if not match:
            raise _ParameterError("filter", f"Invalid filter provided: {part!r}.")
        op, field, value = match.groups()
        if op == "and":
            conditions += parse_filter(f"{field},{value}", allowed)
            continue
        if field not in allowed:
            raise _ParameterError("filter", f"'{field}' is not a valid field for this filter.")
        if op not in allowed[field]:
            raise _ParameterError("filter", f"'{op}' operation is not allowed for '{field}' field. "
                                    f"Allowed: {', '.join(sorted(allowed[field]))}.")
        parsed = _literal(value)
        if op == "any" and not isinstance(parsed, list):
            raise _ParameterError("filter", f"'any' takes a list of values for '{field}'.")
        if field == "email":  # Klaviyo keeps addresses lower-cased and matches them so
            parsed = [str(e).lower() for e in parsed] if isinstance(parsed, list) else str(parsed).lower()
        if field in _TIME_FIELDS and not isinstance(parsed, datetime):
            raise _ParameterError("filter", f"Invalid datetime {value!r} in filter.")
        conditions.append((op, field, parsed))
    return conditions


def _holds(condition: Condition, value: Any) -> bool:
    op, field, wanted = condition
    if isinstance(wanted, datetime):  # every time here is written by `iso`: text order is time order
        wanted = iso(wanted.astimezone(UTC))
    if op == "equals":
        return value == wanted
    if op == "any":
        return value in wanted
    if value is None:
        return False
    return {"greater-or-equal": value >= wanted, "greater-than": value > wanted,
            "less-or-equal": value <= wanted, "less-than": value < wanted}[op]


def keep(conditions: list[Condition], value_of: Any) -> Any:
    """A predicate for rows: every condition holds on `value_of(row, field)`."""
    return lambda row: all(_holds(c, value_of(row, c[1])) for c in conditions)


class KlaviyoSandbox(Sandbox):
    """Seeded profiles, lists, memberships and events behind Klaviyo's API (see the module docstring)."""

    name = "klaviyo"
    API_KEY = "pk_sandbox0123456789abcdef0123456789"

    def __init__(self, *, seed: int = 0, port: int = 0, people: int = 1500, events_page_size: int = 200,
                 rate_limit: tuple[int, float] | None = None) -> None:
        self.people = people
        self.events_page_size = events_page_size
        self.rate_limit = rate_limit
        self._sent: deque[float] = deque()
        self._rate_lock = threading.Lock()
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._rng = rng
        self._revoked = False
        self._cache: dict[Any, Reply] = {}
        self._lists = {lid: {"type": "list", "id": lid, "attributes": {
            "name": name, "created": iso(_EPOCH - timedelta(days=300 - n)), "updated": iso(_EPOCH - timedelta(days=10 - n)),
            "opt_in_process": "double_opt_in" if n == 2 else "single_opt_in"}} for n, (lid, name) in enumerate(_LISTS)}
        self._profiles: dict[str, dict[str, Any]] = {}
        self._by_updated: list[dict[str, Any]] | None = None  # profiles by (updated, id), built on demand
        self._members: dict[str, dict[str, str]] = {lid: {} for lid in self._lists}  # list → profile → joined
        self._events: list[dict[str, Any]] = []
        for person in members_of("klaviyo", self.people, population_seed(self.seed)):
            self._add_person(rng, person)
        self._settle(rng)

    def _add_person(self, rng: random.Random, person: Person) -> None:
        """The person's profiles (the main one, and perhaps a phone-only and a work one), lists and events."""
        contact = person.contacts["klaviyo"]
        created = contact.since
        sms = person.sms_consent.status == "subscribed"
        apart = sms and rng.random() < 0.5  # signed up for texts with a keyword: a phone-only profile
        phone = contact.phone or (person.mobile if sms else None)
        main = self._make_profile(rng, person.number, contact.email, None if apart else phone,
                                  contact.first_name, person.last_name, created)
        external = str(shopify_customer_id(person)) if "shopify" in person.systems and person.shop_account else None
        self._as_person(rng, main, person, external, sms and not apart)
        signed_up = person.email_consent.history[0][0] if person.email_consent.history else created
        self._join(_LISTS[0][0], main["id"], max(signed_up, created))
        if person.segment in ("lapsed", "one_time") and person.orders:
            self._join(_LISTS[1][0], main["id"], min(person.orders[-1].at + timedelta(days=180), AS_OF - timedelta(hours=2)))
        if apart:
            texts = self._make_profile(rng, person.number, None, person.mobile, contact.first_name, person.last_name,
                                       person.sms_consent.at or created)
            self._as_person(rng, texts, person, None, True)
            self._join(_LISTS[2][0], texts["id"], person.sms_consent.at or created)
        work = person.email_of("work")
        if work and external and rng.random() < 0.3:  # an old import under the work address, same external id
            twin = self._make_profile(rng, person.number, work, None, person.first_name, person.last_name, created)
            self._as_person(rng, twin, person, external, False)
            twin["attributes"]["subscriptions"]["email"]["marketing"].update(
                consent="NEVER_SUBSCRIBED", can_receive_email_marketing=False, consent_timestamp=None, method=None,
                suppression=[])
            self._join(_LISTS[1][0], twin["id"], created)
        self._person_events(rng, person, main["id"])

    def _as_person(self, rng: random.Random, profile: dict[str, Any], person: Person, external_id: str | None,
                   sms: bool) -> None:
        """Make a seeded profile what the population says of this person."""
        a = profile["attributes"]
        a["created"] = a["updated"]
        home = person.address
        stale = rng.random() < 0.1  # consent as it was when the profile was imported
        status, at = person.email_consent.as_of(KLAVIYO_SINCE) if stale else (person.email_consent.status,
                                                                              person.email_consent.at)
        if a["email"] is None:
            status, at = "never", None
        consent = {"subscribed": "SUBSCRIBED", "unsubscribed": "UNSUBSCRIBED", "cleaned": "UNSUBSCRIBED"}.get(
            status, "NEVER_SUBSCRIBED")
        suppression = []
        if status == "cleaned":
            suppression = [{"reason": "HARD_BOUNCE", "timestamp": iso(at)}]
        elif status == "unsubscribed" and rng.random() < 0.1:
            suppression = [{"reason": "SPAM_COMPLAINT", "timestamp": iso(at)}]
        sms_at = person.sms_consent.at if sms else None
        changed = max([datetime.fromisoformat(a["created"]), *(t for t in (at, sms_at) if t)])
        a.update(
            external_id=external_id, organization=person.company or rng.choice([None, ""]),
            locale="fr-CA" if home.region == "QC" else _LOCALES[home.country] if rng.random() < 0.8 else None,
            updated=iso(changed.replace(microsecond=0)),
            location={**a["location"], "address1": home.line1 if rng.random() < 0.5 else None, "city": home.city,
                      "region": home.region, "country": home.country_name, "zip": home.postal_code,
                      "timezone": _ZONES[home.country]},
            properties={k: v for k, v in (("loyalty_tier", (loyalty_tier(person) or "").lower()),
                                          ("source", "Shopify" if external_id else None)) if v},
        )
        a["subscriptions"]["email"]["marketing"].update(
            can_receive_email_marketing=consent == "SUBSCRIBED" and a["email"] is not None, consent=consent,
            consent_timestamp=iso(at) if at else None, last_updated=iso(at) if at else None,
            method=None if at is None else "SHOPIFY" if external_id and rng.random() < 0.5 else "FORM",
            suppression=suppression)
        a["subscriptions"]["sms"]["marketing"].update(
            can_receive_sms_marketing=sms, consent="SUBSCRIBED" if sms else "NEVER_SUBSCRIBED",
            consent_timestamp=iso(sms_at) if sms_at else None, last_updated=iso(sms_at) if sms_at else None,
            method="TEXT" if sms else None)

    def _person_events(self, rng: random.Random, person: Person, profile_id: str) -> None:
        """The person's Klaviyo events: email opens and clicks, checkouts and orders since the shop was connected."""
        for e in person.email_events:
            if e.esp == "klaviyo" and e.action in ("open", "click"):
                props = {"Subject": e.subject, "Campaign Name": e.campaign_id}
                if e.url:
                    props["URL"] = e.url
                self._event(rng, profile_id, "Opened Email" if e.action == "open" else "Clicked Email", e.at, props)
        for c in person.checkouts:
            if c.at >= KLAVIYO_CONNECTED:
                self._event(rng, profile_id, "Started Checkout", c.at, {
                    "$value": c.value, "ItemNames": [i.title for i in c.items],
                    "Categories": sorted({i.category for i in c.items}), "CheckoutURL": "https://threadline.example/cart"})
        for o in person.orders:
            if o.at >= KLAVIYO_CONNECTED and o.channel == "web":
                self._event(rng, profile_id, "Placed Order", o.at, {
                    "$value": o.total, "OrderId": str(o.id), "ItemNames": [i.title for i in o.items],
                    "Categories": list(o.categories), "$event_id": str(o.id)})

    def _event(self, rng: random.Random, profile_id: str, metric: str, when: datetime, props: dict[str, Any]) -> None:
        self._events.append({
            "type": "event", "id": "",
            "attributes": {"timestamp": 0, "event_properties": props, "datetime": when,
                           "uuid": str(uuid.UUID(int=rng.getrandbits(128)))},
            "relationships": {"profile": {"data": {"type": "profile", "id": profile_id}},
                              "metric": {"data": {"type": "metric", "id": _METRIC[metric]}}},
        })

    def _settle(self, rng: random.Random) -> None:
        """Email events (sent in batches) share datetimes in threes; profiles' `updated` too; ids
        follow time, as Klaviyo's do."""
        emails = [e for e in self._events if e["relationships"]["metric"]["data"]["id"] in (_METRIC["Opened Email"],
                                                                                           _METRIC["Clicked Email"])]
        for event, moment in zip(emails, in_threes([e["attributes"]["datetime"] for e in emails])):
            event["attributes"]["datetime"] = moment
        self._events.sort(key=lambda e: e["attributes"]["datetime"])
        for n, event in enumerate(self._events, start=1):
            moment = event["attributes"]["datetime"].replace(microsecond=0)
            event["id"] = f"evt{n:09d}"
            event["attributes"].update(datetime=iso(moment), timestamp=int(moment.timestamp()))
        last_event: dict[str, str] = {}
        for event in self._events:
            last_event[event["relationships"]["profile"]["data"]["id"]] = event["attributes"]["datetime"]
        profiles = list(self._profiles.values())
        for profile, moment in zip(profiles, in_threes([datetime.fromisoformat(p["attributes"]["updated"]) for p in profiles])):
            profile["attributes"]["updated"] = iso(moment)
            profile["attributes"]["last_event_date"] = last_event.get(profile["id"])
        self._by_updated = None
        self._clock = max([AS_OF, *(datetime.fromisoformat(p["attributes"]["updated"]) for p in profiles)]) + timedelta(minutes=1)
        self._index_events()

    def _make_profile(self, rng: random.Random, person: int, email: str | None, phone: str | None,
                      first: str, last: str, when: datetime) -> dict[str, Any]:
        pid = "01H" + f"{len(self._profiles) + 1:08d}" + uuid.UUID(int=rng.getrandbits(128)).hex[:15].upper()
        consent = rng.choices(["SUBSCRIBED", "UNSUBSCRIBED", "NEVER_SUBSCRIBED"], [70, 15, 15])[0]
        suppression = [{"reason": rng.choice(["HARD_BOUNCE", "SPAM_COMPLAINT"]), "timestamp": iso(when)}] \
            if consent == "UNSUBSCRIBED" and rng.random() < 0.3 else []
        profile = {
            "type": "profile", "id": pid,
            "attributes": {
                "email": email, "phone_number": phone, "external_id": f"cust-{person}" if rng.random() < 0.6 else None,
                "anonymous_id": None, "first_name": first if rng.random() < 0.9 else None, "last_name": last,
                "organization": rng.choice(["Threadline Coffee", None, ""]), "locale": rng.choice(["en-GB", "fr-FR", None]),
                "title": None, "image": None, "created": iso(when - timedelta(days=30)), "updated": iso(when),
                "last_event_date": None,
                "location": {"address1": None, "address2": None, "city": rng.choice(["London", "Paris", None]),
                             "country": rng.choice(["United Kingdom", "France", None]), "region": None,
                             "zip": rng.choice(["N1 9GU", "75011", None]), "timezone": "Europe/London",
                             "latitude": None, "longitude": None, "ip": None},
                "properties": {"loyalty_tier": rng.choice(["gold", "silver"])} if rng.random() < 0.3 else {},
                "subscriptions": {
                    "email": {"marketing": {
                        "can_receive_email_marketing": consent == "SUBSCRIBED", "consent": consent,
                        "consent_timestamp": iso(when - timedelta(days=3)) if consent != "NEVER_SUBSCRIBED" else None,
                        "last_updated": iso(when), "method": "FORM" if consent != "NEVER_SUBSCRIBED" else None,
                        "method_detail": "", "custom_method_detail": None, "double_optin": None,
                        "suppression": suppression, "list_suppressions": []}},
                    "sms": {"marketing": {
                        "can_receive_sms_marketing": phone is not None, "consent": "SUBSCRIBED" if phone else "NEVER_SUBSCRIBED",
                        "consent_timestamp": iso(when - timedelta(days=2)) if phone else None, "method": None,
                        "method_detail": "", "last_updated": None}},
                },
            },
            "relationships": {"lists": {"links": {}}, "segments": {"links": {}}},
        }
        self._profiles[pid] = profile
        self._by_updated = None
        return profile

    def _join(self, list_id: str, profile_id: str, when: datetime) -> None:
        self._members[list_id][profile_id] = iso(when)

    def _add_event(self, rng: random.Random, profile_id: str, when: datetime) -> dict[str, Any]:
        metric_id, metric = rng.choice(_METRICS)
        props: dict[str, Any] = {"Subject": "Our autumn roast"} if metric != "Placed Order" else {
            "$value": round(rng.uniform(5, 120), 2), "OrderId": f"ord-{len(self._events) + 1}",
            "ItemNames": rng.sample(["Espresso", "Filter", "Decaf", "Mug"], k=rng.randrange(1, 3))}
        if metric == "Clicked Email":
            props["URL"] = "https://example.com/offer"
        event = {
            "type": "event", "id": f"evt{len(self._events) + 1:09d}",
            "attributes": {"timestamp": int(when.timestamp()), "event_properties": props, "datetime": iso(when),
                           "uuid": str(uuid.UUID(int=rng.getrandbits(128)))},
            "relationships": {"profile": {"data": {"type": "profile", "id": profile_id}},
                              "metric": {"data": {"type": "metric", "id": metric_id}}},
        }
        self._events.append(event)
        return event

    def _index_events(self) -> None:
        self._events.sort(key=lambda e: (e["attributes"]["datetime"], e["id"]))
        self._event_times = [e["attributes"]["datetime"] for e in self._events]

    def _tick(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    # ------------------------------------------------------------------ what tests use

    def secrets(self) -> list[str]:
        return [self.API_KEY]

    @property
    def list_ids(self) -> list[str]:
        with self._lock:
            return list(self._lists)

    def profiles(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(list(self._profiles.values())))

    def lists(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(list(self._lists.values())))

    def memberships(self) -> list[dict[str, Any]]:
        """(list_id, profile, joined_group_at) for every membership."""
        with self._lock:
            return [{"list_id": lid, "profile": json.loads(json.dumps(self._profiles[pid])), "joined_group_at": joined}
                    for lid, members in self._members.items() for pid, joined in members.items()]

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._events))

    @staticmethod
    def metric_name(metric_id: str) -> str:
        return dict(_METRICS)[metric_id]

    def unsubscribe(self, n: int) -> list[dict[str, Any]]:
        """The first `n` subscribed profiles unsubscribe from email marketing."""
        with self._lock:
            self._cache.clear()
            when = iso(self._tick())
            changed = []
            for profile in self._profiles.values():
                marketing = profile["attributes"]["subscriptions"]["email"]["marketing"]
                if len(changed) == n:
                    break
                if marketing["consent"] == "SUBSCRIBED":
                    marketing.update(consent="UNSUBSCRIBED", can_receive_email_marketing=False, consent_timestamp=when,
                                     last_updated=when)
                    profile["attributes"]["updated"] = when
                    self._by_updated = None
                    changed.append(json.loads(json.dumps(profile)))
            return changed

    def add_profiles(self, n: int, list_id: str | None = None) -> list[dict[str, Any]]:
        """`n` new profiles (on `list_id` if given); returns them."""
        with self._lock:
            self._cache.clear()
            when = self._tick()
            added = []
            for k in range(n):
                number = self.people + len(self._profiles) + k + 1
                profile = self._make_profile(self._rng, number, f"new{number}@example.net", None, "New", "Person", when)
                if list_id:
                    self._join(list_id, profile["id"], when)
                added.append(json.loads(json.dumps(profile)))
            return added

    def add_events(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            self._cache.clear()
            when = self._tick()
            profiles = list(self._profiles)
            added = [self._add_event(self._rng, profiles[k % len(profiles)], when) for k in range(n)]
            self._index_events()
            return json.loads(json.dumps(added))

    def set_attribute(self, profile_id: str, key: str, value: Any) -> None:
        """Put any value in a profile's attributes (a field of an unexpected type, say)."""
        with self._lock:
            self._cache.clear()
            self._profiles[profile_id]["attributes"][key] = value
            self._by_updated = None

    def delete_list(self, list_id: str) -> None:
        with self._lock:
            self._cache.clear()
            self._lists.pop(list_id, None)
            self._members.pop(list_id, None)

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def control_unsubscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"changed": self.unsubscribe(int(body.get("n", 1)))}

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ the API

    _ROUTES: ClassVar[list[tuple[re.Pattern[str], str]]] = [
        (re.compile(r"^/api/profiles/?$"), "_get_profiles"),
        (re.compile(r"^/api/lists/?$"), "_get_lists"),
        (re.compile(r"^/api/lists/([^/]+)/profiles/?$"), "_get_list_profiles"),
        (re.compile(r"^/api/lists/([^/]+)/relationships/profiles/?$"), "_get_list_relationships"),
        (re.compile(r"^/api/events/?$"), "_get_events"),
        (re.compile(r"^/api/metrics/?$"), "_get_metrics"),
        (re.compile(r"^/api/profiles/([^/]+)/?$"), "_get_profile"),
        (re.compile(r"^/api/lists/([^/]+)/?$"), "_get_list"),
        (re.compile(r"^/api/events/([^/]+)/?$"), "_get_event"),
        (re.compile(r"^/api/metrics/([^/]+)/?$"), "_get_metric"),
    ]

    def _dispatch(self, req: SandboxRequest) -> Reply:
        refused = self._authenticate(req) or self._throttle()
        if refused is not None:
            return refused
        try:
            for pattern, handler in self._ROUTES:
                match = pattern.match(req.path)
                if match and req.method == "GET":
                    return self._cached(req, functools.partial(getattr(self, handler), req, *match.groups()))
        except SandboxError as exc:
            return errors(exc.status, "invalid", "Invalid input.", exc.error, getattr(exc, "pointer", None))
        return errors(404, "not_found", "Not found.", f"No route {req.method} {req.path}.")

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
        if not auth.startswith("Klaviyo-API-Key "):
            return errors(401, "not_authenticated", "Authentication credentials were not provided.",
                          "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.")
        if self._revoked or auth[len("Klaviyo-API-Key "):] != self.API_KEY:
            return errors(401, "authentication_failed", "Incorrect authentication credentials.",
                          "Incorrect authentication credentials.")
        revision = req.headers.get("revision")
        if not revision:
            return errors(400, "invalid", "Invalid input.", "Missing required header: 'revision'.", "revision")
        if revision.removesuffix(".pre") in RETIRED_REVISIONS:
            return errors(400, "invalid", "Invalid input.",
                          f"Revision {revision!r} is retired. Use a supported revision, such as {CURRENT_REVISION}.",
                          "revision")
        if revision.removesuffix(".pre") not in REVISIONS:
            return errors(400, "invalid", "Invalid input.", f"Invalid revision {revision!r}.", "revision")
        return None

    def _throttle(self) -> Reply | None:
        if self.rate_limit is None:
            return None
        calls, per = self.rate_limit
        with self._rate_lock:
            now = time.monotonic()
            while self._sent and now - self._sent[0] >= per:
                self._sent.popleft()
            if len(self._sent) >= calls:
                wait = max(1, int(per - (now - self._sent[0]) + 0.999))
                reply = errors(429, "throttled", "Request was throttled.", f"Request was throttled. Expected available in {wait} second{'s' if wait > 1 else ''}.")
                reply.headers["Retry-After"] = str(wait)
                return reply
            self._sent.append(now)
        return None

    # ---- pagination

    @staticmethod
    def _size(req: SandboxRequest, default: int = 20, most: int = 100) -> int:
        size = req.int_param("page[size]", default)
        if size < 1 or size > most:
            raise SandboxError(400, f"page[size] must be between 1 and {most}.")
        return size

    @staticmethod
    def _offset(req: SandboxRequest) -> int:
        cursor = req.param("page[cursor]")
        if not cursor:
            return 0
        try:
            return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().removeprefix("bz"))
        except ValueError:
            raise SandboxError(400, f"Invalid page cursor {cursor!r}.") from None

    def _page(self, req: SandboxRequest, rows: list[Any], size: int, included: list[Any] | None = None,
              view: Any = None) -> Reply:
        offset = self._offset(req)
        page = rows[offset:offset + size]
        if view is not None:  # only the page's records are rendered
            page = [view(row) for row in page]
        self_url = f"{req.base_url}{req.path}?{urlencode({k: v[0] for k, v in req.query.items()})}" if req.query else f"{req.base_url}{req.path}"
        links: dict[str, Any] = {"self": self_url, "next": None, "prev": None}
        if offset + size < len(rows):
            params = {k: v[0] for k, v in req.query.items() if k != "page[cursor]"}
            params["page[cursor]"] = base64.urlsafe_b64encode(f"bz{offset + size}".encode()).decode().rstrip("=")
            links["next"] = f"{req.base_url}{req.path}?{urlencode(params)}"
        body: dict[str, Any] = {"data": page, "links": links}
        if included is not None:
            body["included"] = included
        return Reply(200, json.dumps(body, separators=(",", ":")).encode(), {"Content-Type": "application/vnd.api+json"})

    # ---- endpoints

    @staticmethod
    def _links(req: SandboxRequest, resource: dict[str, Any], related: tuple[str, ...] = ()) -> dict[str, Any]:
        """A resource as Klaviyo renders it: `links.self`, and `self`/`related` links on each
        relationship (the typed models of klaviyo-api require them)."""
        root = f"{req.base_url}/api/{resource['type']}s/{resource['id']}"
        relationships = {name: {**(resource.get("relationships") or {}).get(name, {}),
                                "links": {"self": f"{root}/relationships/{name}/", "related": f"{root}/{name}/"}}
                         for name in related}
        view = {**resource, "links": {"self": f"{root}/"}}
        if relationships:
            view["relationships"] = relationships
        return view

    @staticmethod
    def _profile_fields(req: SandboxRequest) -> tuple[set[str], set[str]]:
        """(sparse fields, additional fields) asked for, each checked against what Klaviyo offers:
        an unknown one is a 400 naming the parameter."""
        member = "/profiles" in req.path and req.path.startswith("/api/lists/")
        sparse = {f for f in (req.param("fields[profile]") or "").split(",") if f}
        for name in sparse:
            if name.split(".")[0] not in PROFILE_FIELDS | ({"joined_group_at"} if member else set()):
                raise _ParameterError("fields[profile]", f"'{name}' is not a valid field for the resource 'profile'.")
        extra = {f for f in (req.param("additional-fields[profile]") or "").split(",") if f}
        for name in extra - PROFILE_ADDITIONAL_FIELDS:
            raise _ParameterError("additional-fields[profile]", f"'{name}' is not a valid additional field for 'profile'.")
        return sparse, extra

    def _profile_view(self, profile: dict[str, Any], req: SandboxRequest, fields: tuple[set[str], set[str]]) -> dict[str, Any]:
        sparse, extra = fields
        view = self._links(req, profile, ("lists", "segments"))
        view["attributes"] = dict(profile["attributes"])
        if "subscriptions" not in extra:
            view["attributes"].pop("subscriptions", None)  # an additional field: only when asked for
        if sparse:
            tops = {f.split(".")[0] for f in sparse}
            view["attributes"] = {k: v for k, v in view["attributes"].items() if k in tops}
        return view

    @staticmethod
    def _profile_value(profile: dict[str, Any], field: str) -> Any:
        if field == "id":
            return profile["id"]
        value = profile["attributes"].get(field)
        return value.lower() if field == "email" and isinstance(value, str) else value

    def _get_profiles(self, req: SandboxRequest) -> Reply:
        size = self._size(req)
        conditions = parse_filter(req.param("filter"), PROFILE_FILTERS)
        sort = req.param("sort") or ""
        if sort.removeprefix("-") not in ("", "updated", "created", "id", "email"):
            raise SandboxError(400, f"Invalid sort {sort!r}.")
        if sort.removeprefix("-") == "updated":
            if self._by_updated is None:  # rebuilt after a change: pages are served from it
                self._by_updated = sorted(self._profiles.values(), key=lambda p: (p["attributes"]["updated"], p["id"]))
            rows = self._by_updated
        elif sort:
            rows = sorted(self._profiles.values(), key=lambda p: (str(self._profile_value(p, sort.removeprefix("-"))), p["id"]))
        else:
            rows = list(self._profiles.values())
        if sort.startswith("-"):
            rows = rows[::-1]
        if conditions:
            rows = list(filter(keep(conditions, self._profile_value), rows))
        fields = self._profile_fields(req)
        return self._page(req, rows, size, view=lambda p: self._profile_view(p, req, fields))

    def _get_lists(self, req: SandboxRequest) -> Reply:
        wanted = keep(parse_filter(req.param("filter"), LIST_FILTERS),
                      lambda x, field: x["id"] if field == "id" else x["attributes"].get(field))
        return self._page(req, list(filter(wanted, self._lists.values())), self._size(req, default=10, most=10),
                          view=lambda x: self._links(req, x, ("profiles", "tags", "flow-triggers")))

    def _list_members(self, req: SandboxRequest, list_id: str) -> list[tuple[str, str]] | Reply:
        if list_id not in self._members:
            return errors(404, "not_found", "Not found.", f"A list with id {list_id} does not exist.")
        conditions = parse_filter(req.param("filter"), LIST_MEMBER_FILTERS)
        sort = req.param("sort")
        if sort not in (None, "joined_group_at", "-joined_group_at"):
            raise SandboxError(400, f"Invalid sort {sort!r}: lists' profiles sort by joined_group_at only.")

        def value(row: tuple[str, str], field: str) -> Any:
            return row[1] if field == "joined_group_at" else self._profile_value(self._profiles[row[0]], field)

        return sorted(filter(keep(conditions, value), self._members[list_id].items()),
                      key=lambda r: (r[1], r[0]), reverse=sort == "-joined_group_at")

    def _get_list_profiles(self, req: SandboxRequest, list_id: str) -> Reply:
        rows = self._list_members(req, list_id)
        if isinstance(rows, Reply):
            return rows
        fields = self._profile_fields(req)

        def view(row: tuple[str, str]) -> dict[str, Any]:
            rendered = self._profile_view(self._profiles[row[0]], req, fields)
            rendered["attributes"]["joined_group_at"] = row[1]
            return rendered

        return self._page(req, rows, self._size(req), view=view)

    def _get_list_relationships(self, req: SandboxRequest, list_id: str) -> Reply:
        rows = self._list_members(req, list_id)
        if isinstance(rows, Reply):
            return rows
        return self._page(req, [{"type": "profile", "id": pid} for pid, _ in rows], self._size(req))

    @staticmethod
    def _event_value(event: dict[str, Any], field: str) -> Any:
        if field in ("metric_id", "profile_id"):
            return event["relationships"][field.removesuffix("_id")]["data"]["id"]
        return event["attributes"][field]

    def _get_events(self, req: SandboxRequest) -> Reply:
        conditions = parse_filter(req.param("filter"), EVENT_FILTERS)
        rows = self._events
        lower = [c for c in conditions if c[1] == "datetime" and c[0].startswith("greater")]
        if len(lower) == 1:  # events are kept in datetime order: bisect, don't scan
            bound = iso(lower[0][2].astimezone(UTC))
            find = bisect.bisect_right if lower[0][0] == "greater-than" else bisect.bisect_left
            rows = rows[find(self._event_times, bound):]
            conditions = [c for c in conditions if c is not lower[0]]
        if conditions:
            rows = list(filter(keep(conditions, self._event_value), rows))
        sort = req.param("sort")
        if sort not in (None, "datetime", "-datetime", "timestamp", "-timestamp"):
            raise SandboxError(400, f"Invalid sort {sort!r}.")
        if sort in ("-datetime", "-timestamp"):
            rows = rows[::-1]
        included = None
        if req.param("include") == "metric":
            included = [self._links(req, m) for m in self._metrics()]
        return self._page(req, rows, self._size(req, default=self.events_page_size, most=1000),
                          included, view=lambda e: self._links(req, e, ("profile", "metric", "attributions")))

    @staticmethod
    def _metrics() -> list[dict[str, Any]]:
        return [{"type": "metric", "id": mid, "attributes": {"name": name, "created": iso(_EPOCH), "updated": iso(_EPOCH),
                                                            "integration": None}} for mid, name in _METRICS]

    @staticmethod
    def _one(req: SandboxRequest, resource: dict[str, Any] | None, what: str) -> Reply:
        """A single resource: {"data": ..., "links": {"self"}}, or Klaviyo's 404."""
        if resource is None:
            return errors(404, "not_found", "Not found.", f"A {what} with that id does not exist.")
        body = {"data": resource, "links": {"self": f"{req.base_url}{req.path}"}}
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/vnd.api+json"})

    def _get_profile(self, req: SandboxRequest, profile_id: str) -> Reply:
        profile = self._profiles.get(profile_id)
        return self._one(req, profile and self._profile_view(profile, req, self._profile_fields(req)), "profile")

    def _get_list(self, req: SandboxRequest, list_id: str) -> Reply:
        if list_id not in self._lists:
            return errors(404, "not_found", "Not found.", f"A list with id {list_id} does not exist.")
        data = self._links(req, json.loads(json.dumps(self._lists[list_id])), ("profiles", "tags", "flow-triggers"))
        if "profile_count" in (req.param("additional-fields[list]") or ""):
            data["attributes"]["profile_count"] = len(self._members[list_id])
        return self._one(req, data, "list")

    def _get_event(self, req: SandboxRequest, event_id: str) -> Reply:
        event = next((e for e in self._events if e["id"] == event_id), None)
        return self._one(req, event and self._links(req, event, ("profile", "metric", "attributions")), "event")

    def _get_metric(self, req: SandboxRequest, metric_id: str) -> Reply:
        metric = next((m for m in self._metrics() if m["id"] == metric_id), None)
        return self._one(req, metric and self._links(req, metric), "metric")

    def _get_metrics(self, req: SandboxRequest) -> Reply:
        return self._page(req, self._metrics(), 200, view=lambda m: self._links(req, m))
