"""HubSpot's CRM API (v3) on loopback, for tests and demos (`threadline sandbox hubspot`).

What it implements, as HubSpot documents it, at the legacy v3 paths and at the date-based
versions' (`/crm/objects/2026-09/contacts`, `/crm/properties/2026-03/deals`; 2026-03 and
2026-09, the same answers; another date is a 404):

    GET  /crm/v3/objects/{contacts|companies|deals}?limit=&after=&properties=a,b&associations=companies,deals&archived=
    POST /crm/v3/objects/{contacts|companies|deals}/search
         {"filterGroups": [{"filters": [{"propertyName", "operator": EQ|NEQ|GT|GTE|LT|LTE, "value"}]}],
          "sorts": [{"propertyName", "direction": ASCENDING|DESCENDING}], "properties": [...], "limit", "after"}
    GET  /crm/v3/properties/{contacts|companies|deals}

- Auth: `Authorization: Bearer <private app token>`; 401 `INVALID_AUTHENTICATION` for an
  unknown token, `EXPIRED_AUTHENTICATION` after `expire_token()`; 403 `MISSING_SCOPES`
  (with `requiredGranularScopes`) when the token lacks `crm.objects.<type>.read`.
- List parameters `properties` and `associations` may be comma-separated or repeated (the
  official client repeats them); `archived` is read case-insensitively (it sends `True`) and
  lists archived records only.
- Search `sorts` entries are objects or a bare property name (ascending), as the official
  client's model types them; anything else is a 400, not a dropped connection.
- The properties list carries what the client's Property model requires: `description`,
  `options` (an enumeration's values in the data; Yes/No for a bool), `fieldType`,
  `groupName`, `modificationMetadata`.
- List pages: `limit` 1..100, `paging.next.after` (an opaque cursor: the next id) until the
  last page; `properties` as strings (or null) under `properties`; `createdAt`, `updatedAt`,
  `archived` (and `archivedAt`) at the top level; `associations` inline when asked.
- Search: `limit` 1..200, `total`, `paging.next.after` an offset; no query may page past
  10,000 results (`search_cap`): a request with `after` >= the cap is a 400, as at HubSpot.
  Archived records are never in search results.
- Rate limits: a rolling window of `rate_limit` calls per `rate_interval` seconds; every
  answer carries `X-HubSpot-RateLimit-Max`, `-Remaining`, `-Interval-Milliseconds` (and the
  daily pair); past the limit, 429 with HubSpot's body (`policyName: TEN_SECONDLY_ROLLING`)
  and no Retry-After, as HubSpot answers.

Seeded data: the contacts are people of the population shared by every vendor sandbox
(`threadline.sandbox.people`, population `2026 + seed`), so the same people are in the shop,
the email tools and the help desk. A contact has the email the person gave the CRM
(personal or work; others in `hs_additional_emails`), phones as typed (`(512) 555-0134`,
`+44 20 7946 0958`, `512.555.0134`, sometimes a stale number), missing names, the lifecycle
stage their orders give, `hs_email_optout` (sticky: once opted out, still opted out after a
re-subscribe at the email tool) and custom properties (`loyalty_tier` copied from the loyalty
program, `ads_consent` with `ads_consent_date`). Companies include the contacts' employers (the
domain their work email uses); deals are wholesale orders of contacts at a company; contacts
are linked to their employer and to their deals; some records archived.
`lastmodifieddate` is when the record last changed, shared in threes (cursor boundaries land
on ties). Tests change data with `update`, `add` (the population's next people), `archive`,
`set_property`, and refuse the token with `revoke_credentials` / `expire_token`.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from threadline.sandbox import Reply, Sandbox, SandboxError, SandboxRequest, route
from threadline.sandbox.people import (
    AS_OF,
    HISTORY_START,
    Person,
    format_phone,
    in_threes,
    loyalty_tier,
    members_of,
    population_seed,
)
from threadline.sandbox.people_data import COMPANIES

OBJECT_TYPES = ("contacts", "companies", "deals")
API_VERSIONS = ("2026-03", "2026-09")  # the date-based versions released when checked (2026-12-06); v3 too
_DATED = re.compile(r"^/crm/(?P<api>objects|properties)/(?P<version>\d{4}-\d\d)/(?P<rest>.+)$")
MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}
CREATED = {"contacts": "createdate", "companies": "createdate", "deals": "createdate"}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}
_CITIES = [("London", "United Kingdom"), ("Boston", "United States"), ("Austin", "United States"),
           ("Berlin", "Germany"), ("Toronto", "Canada")]
_PHONE_STYLES = ("national", "international", "dotted", "e164", "digits")

# name → HubSpot property type (what GET /crm/v3/properties answers); hubspotDefined unless custom.
PROPERTIES: dict[str, dict[str, str]] = {
    "contacts": {
        "email": "string", "firstname": "string", "lastname": "string", "phone": "string", "mobilephone": "string",
        "hs_additional_emails": "enumeration", "company": "string", "address": "string", "city": "string",
        "zip": "string", "country": "string", "jobtitle": "string", "lifecyclestage": "enumeration",
        "hs_email_optout": "bool", "hs_analytics_num_visits": "number", "createdate": "datetime",
        "lastmodifieddate": "datetime", "hs_object_id": "number", "state": "string", "date_of_birth": "date",
        "loyalty_tier": "enumeration", "ads_consent": "enumeration", "ads_consent_date": "datetime",
    },
    "companies": {
        "name": "string", "domain": "string", "phone": "string", "city": "string", "country": "string",
        "industry": "enumeration", "numberofemployees": "number", "annualrevenue": "number",
        "createdate": "datetime", "hs_lastmodifieddate": "datetime", "hs_object_id": "number",
    },
    "deals": {
        "dealname": "string", "amount": "number", "deal_currency_code": "enumeration", "dealstage": "enumeration",
        "pipeline": "enumeration", "closedate": "datetime", "createdate": "datetime",
        "hs_lastmodifieddate": "datetime", "hs_object_id": "number",
    },
}
CUSTOM = {"loyalty_tier", "ads_consent", "ads_consent_date"}
# HubSpot types these as enumerations but they hold free text (emails): no options listed
FREE_TEXT_ENUMERATIONS = {"hs_additional_emails"}
FIELD_TYPES = {"string": "text", "number": "number", "bool": "booleancheckbox", "enumeration": "select",
               "datetime": "date", "date": "date"}
DEFAULT_RETURNED = {  # what HubSpot returns when `properties` is not given
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
    "companies": ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
    "deals": ["amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id", "pipeline"],
}


def iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def hubspot_error(status: int, category: str, message: str, **extra: Any) -> SandboxError:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}
    return SandboxError(status, json.dumps(body))


class HubspotSandbox(Sandbox):
    """Seeded contacts, companies, deals and associations behind HubSpot's CRM API (see the module docstring)."""

    name = "hubspot"
    TOKEN = "pat-na1-sandbox-0000-1111-2222-333344445555"
    CONTACTS_ONLY_TOKEN = "pat-na1-sandbox-contacts-only-6666-7777"  # lacks the companies and deals scopes

    def __init__(
        self, *, seed: int = 0, port: int = 0, contacts: int = 3000, companies: int = 300, deals: int = 900,
        archived_share: float = 0.03, search_cap: int = 10_000, rate_limit: int = 190, rate_interval: float = 10.0,
    ) -> None:
        self.counts = {"contacts": contacts, "companies": companies, "deals": deals}
        self.archived_share = archived_share
        self.search_cap = search_cap
        self.rate_limit, self.rate_interval = rate_limit, rate_interval
        self._sent: deque[float] = deque()
        self._rate_lock = threading.Lock()
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._rng = rng
        self._revoked = False
        self._expired = False
        self._records: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        self._links: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (from type, id) → {(to type, id)}
        self._next_id = {"contacts": 1001, "companies": 5_000_001, "deals": 9_000_001}
        self._sorted: dict[tuple[str, ...], Any] = {}  # sorted views of the records, dropped on every change
        self._people = members_of("hubspot", self.counts["contacts"], population_seed(self.seed))
        employers: dict[str, str] = {}  # company name → record id
        for n in range(self.counts["companies"]):
            record = self._create("companies", self._company_properties(rng, n))
            employers.setdefault(record["properties"]["name"], record["id"])
        by_person: dict[int, str] = {}
        for person in self._people:
            contact = self._create("contacts", self._person_properties(rng, person))
            by_person[person.number] = contact["id"]
            if person.company in employers:
                self._link("contacts", contact["id"], "companies", employers[person.company])
        staff = [p for p in self._people if p.company in employers]
        for n in range(self.counts["deals"]):
            buyer = rng.choice(staff) if staff else None
            deal = self._create("deals", self._deal_properties(rng, n, buyer))
            if buyer is not None:
                self._link("deals", deal["id"], "companies", employers[buyer.company])
                self._link("contacts", by_person[buyer.number], "deals", deal["id"])
        for kind in OBJECT_TYPES:  # when each record last changed, shared in threes
            rows = list(self._records[kind].values())
            for record, moment in zip(rows, in_threes([_parse(r["updatedAt"]) for r in rows])):
                record["updatedAt"] = record["properties"][MODIFIED[kind]] = iso_ms(moment)
        for kind in OBJECT_TYPES:  # some archived from the start
            for rid in list(self._records[kind]):
                if rng.random() < self.archived_share:
                    record = self._records[kind][rid]
                    record["archived"] = True
                    record["archivedAt"] = record["updatedAt"]
        latest = max((_parse(r["updatedAt"]) for rs in self._records.values() for r in rs.values()), default=AS_OF)
        self._clock = max(latest, AS_OF) + timedelta(minutes=1)

    def _create(self, kind: str, props: dict[str, Any]) -> dict[str, Any]:
        """A record of `kind` with these properties (`createdate` and the last-modified date among them)."""
        rid = str(self._next_id[kind])
        self._next_id[kind] += 1
        props["hs_object_id"] = rid
        record = {"id": rid, "properties": props, "createdAt": props[CREATED[kind]], "updatedAt": props[MODIFIED[kind]],
                  "archived": False}
        self._records[kind][rid] = record
        return record

    def _person_properties(self, rng: random.Random, person: Person) -> dict[str, Any]:
        contact = person.contacts["hubspot"]
        email = contact.email if rng.random() < 0.95 else None  # a contact from a phone call: no email
        others = [e.address for e in person.emails if e.address != email and e.kind != "household"]
        extra = ";".join(rng.sample(others, k=len(others))) if others and rng.random() < 0.3 else None
        phone = format_phone(contact.phone, rng.choice(_PHONE_STYLES)) if contact.phone else None
        mobile = person.mobile if person.mobile and person.mobile != contact.phone and rng.random() < 0.3 else None
        home = person.address
        opted_out = person.crm_opted_out_at
        ads = person.ad_consent
        created = contact.since
        changed = max([created, *(t for t in (opted_out, ads.at) if t),
                       *(o.at for o in person.orders[:1])])  # the first order made them a customer
        return {
            "email": email, "firstname": None if rng.random() < 0.04 else contact.first_name, "lastname": person.last_name,
            "phone": phone, "mobilephone": format_phone(mobile, "international") if mobile else None,
            "hs_additional_emails": extra, "company": person.company,
            "address": (f"{home.line1}, {home.line2}" if home.line2 else home.line1) if rng.random() < 0.6 else None,
            "city": home.city, "state": home.region if home.country in ("US", "CA") else home.region_name,
            "zip": home.postal_code if rng.random() < 0.85 else None, "country": home.country_name,
            "date_of_birth": person.birth_date.isoformat() if rng.random() < 0.15 else None,
            "jobtitle": person.job_title if person.job_title else rng.choice(["", None]),
            "lifecyclestage": "customer" if person.orders else "opportunity" if person.checkouts else
            "subscriber" if person.email_consent.status != "never" else "lead",
            "hs_email_optout": "true" if opted_out else rng.choice(["false", "false", None]),
            "hs_analytics_num_visits": str(len(person.orders) * 3 + len(person.checkouts) + rng.randrange(0, 12)),
            "loyalty_tier": (loyalty_tier(person) or "").lower() or None,
            "ads_consent": None if ads.status == "unknown" else ads.status,
            "ads_consent_date": iso_ms(ads.at) if ads.at else None,
            "createdate": iso_ms(created), "lastmodifieddate": iso_ms(changed),
        }

    def _company_properties(self, rng: random.Random, n: int) -> dict[str, Any]:
        city, country = rng.choice(_CITIES)
        if n < len(COMPANIES):
            name, domain = COMPANIES[n]  # the contacts' employers: their work emails use this domain
        else:
            stem = rng.choice(["Acme", "Globex", "Initech", "Umbrella", "Hooli"])
            name, domain = f"{stem} {n:03d}", f"{stem.lower()}{n:03d}.example.com"
        created = HISTORY_START - timedelta(days=rng.uniform(0, 400))
        return {
            "name": name, "domain": domain if rng.random() < 0.9 else None,
            "phone": rng.choice([f"+1 617 {rng.randrange(200, 999)} {rng.randrange(1000, 9999)}", None]), "city": city,
            "country": country, "industry": rng.choice(["RETAIL", "COMPUTER_SOFTWARE", "HOSPITAL_HEALTH_CARE", None]),
            "numberofemployees": str(rng.randrange(1, 5000)) if rng.random() < 0.8 else None,
            "annualrevenue": f"{rng.randrange(10**4, 10**9)}.{rng.randrange(0, 100):02d}" if rng.random() < 0.7 else None,
            "createdate": iso_ms(created), "hs_lastmodifieddate": iso_ms(created + (AS_OF - created) * rng.random()),
        }

    def _deal_properties(self, rng: random.Random, n: int, buyer: Person | None) -> dict[str, Any]:
        created = HISTORY_START + (AS_OF - HISTORY_START) * rng.random()
        stage = rng.choice(["appointmentscheduled", "qualifiedtobuy", "closedwon", "closedwon", "closedlost"])
        closed = created + timedelta(days=rng.uniform(3, 60))
        what = rng.choice(["Office coffee subscription", "Wholesale beans", "Espresso machine service", "Gift boxes"])
        return {
            "dealname": f"{what} — {buyer.company}" if buyer else f"{what} {n}",
            "amount": rng.choice([f"{rng.randrange(100, 50_000)}.{rng.randrange(0, 100):02d}", str(rng.randrange(100, 5000)),
                                  None]),
            "deal_currency_code": rng.choice(["USD", "USD", "CAD", "GBP", "EUR"]), "dealstage": stage, "pipeline": "default",
            "closedate": iso_ms(min(closed, AS_OF - timedelta(hours=1))) if stage.startswith("closed") or rng.random() < 0.5 else None,
            "createdate": iso_ms(created), "hs_lastmodifieddate": iso_ms(min(closed, AS_OF - timedelta(minutes=5))),
        }

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self._links.setdefault((from_type, from_id), set()).add((to_type, to_id))
        self._links.setdefault((to_type, to_id), set()).add((from_type, from_id))

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return iso_ms(self._clock)

    # ------------------------------------------------------------------ what tests read and change

    def records(self, kind: str, *, archived: bool | None = None) -> list[dict[str, Any]]:
        """Records of `kind` as the API serves them (all properties), sorted by id; `archived` filters."""
        with self._lock:
            return [json.loads(json.dumps(r)) for _, r in sorted(self._records[kind].items(), key=lambda kv: int(kv[0]))
                    if archived is None or r["archived"] == archived]

    def associations(self) -> list[dict[str, str]]:
        """Every association, as the `associations` stream delivers it (contact→company, contact→deal, deal→company)."""
        out = []
        with self._lock:
            for (from_type, from_id), targets in self._links.items():
                for to_type, to_id in targets:
                    if (from_type, to_type) in (("contacts", "companies"), ("contacts", "deals"), ("deals", "companies")):
                        if self._records[from_type][from_id]["archived"]:
                            continue
                        out.append({"from_type": from_type, "from_id": from_id, "to_type": to_type, "to_id": to_id,
                                    "association_type": f"{SINGULAR[from_type]}_to_{SINGULAR[to_type]}"})
        return out

    def update(self, kind: str, ids: list[str], **properties: Any) -> list[dict[str, Any]]:
        """Change records (default: a new job title) and bump their last-modified date; returns them."""
        with self._lock:
            self._sorted.clear()
            stamp = self._tick()
            for rid in ids:
                record = self._records[kind][rid]
                changes = properties or {"jobtitle": f"updated {stamp}"} if kind == "contacts" else properties or {
                    "name" if kind == "companies" else "dealname": f"updated {stamp}"}
                record["properties"].update(changes)
                record["properties"][MODIFIED[kind]] = stamp
                record["updatedAt"] = stamp
        return [r for r in self.records(kind) if r["id"] in set(ids)]

    def add(self, kind: str, n: int) -> list[dict[str, Any]]:
        """Create `n` records (contacts: the population's next people HubSpot knows), all stamped
        with one new last-modified date; returns them."""
        with self._lock:
            self._sorted.clear()
            stamp = self._tick()
            if kind == "contacts":
                self._people = members_of("hubspot", len(self._people) + n, population_seed(self.seed))
                made = [self._person_properties(self._rng, p) for p in self._people[-n:]]
            else:
                maker = self._company_properties if kind == "companies" else self._deal_properties
                made = [maker(self._rng, len(self._records[kind]) + k, *([None] if kind == "deals" else [])) for k in range(n)]
            created = []
            for props in made:
                props.update({CREATED[kind]: stamp, MODIFIED[kind]: stamp})
                created.append(self._create(kind, props))
            ids = {r["id"] for r in created}
        return [r for r in self.records(kind) if r["id"] in ids]

    def archive(self, kind: str, ids: list[str]) -> list[dict[str, Any]]:
        """Archive (soft-delete) records: gone from lists and search, listed with `archived=true`."""
        with self._lock:
            self._sorted.clear()
            stamp = self._tick()
            for rid in ids:
                record = self._records[kind][rid]
                record.update(archived=True, archivedAt=stamp, updatedAt=stamp)
        return [r for r in self.records(kind) if r["id"] in set(ids)]

    def set_property(self, kind: str, rid: str, name: str, value: Any) -> None:
        """Put any value in a property, even one of a type HubSpot would not send (bad-input tests)."""
        with self._lock:
            self._sorted.clear()
            self._records[kind][rid]["properties"][name] = value

    def set_modified(self, kind: str, ids: list[str], stamp: str) -> None:
        """Give records one last-modified date (to pile more than a search cap onto one instant)."""
        with self._lock:
            self._sorted.clear()
            for rid in ids:
                self._records[kind][rid]["properties"][MODIFIED[kind]] = stamp
                self._records[kind][rid]["updatedAt"] = stamp

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def expire_token(self) -> None:
        with self._lock:
            self._expired = True

    def secrets(self) -> list[str]:
        return [self.TOKEN, self.CONTACTS_ONLY_TOKEN]

    # ------------------------------------------------------------------ auth and limits

    def _admit(self, req: SandboxRequest, kind: str) -> dict[str, str]:
        """Authenticate, check scopes and spend the rate limit; returns the rate-limit headers."""
        given = req.headers.get("authorization", "")
        token = given[len("Bearer "):] if given.startswith("Bearer ") else ""
        if token not in (self.TOKEN, self.CONTACTS_ONLY_TOKEN) or self._revoked:
            raise hubspot_error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports "
                                "OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/"
                                "docs/methods/auth/oauth-overview")
        if self._expired:
            raise hubspot_error(401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired 0 day(s) ago.")
        if token == self.CONTACTS_ONLY_TOKEN and kind != "contacts":
            raise hubspot_error(
                403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call. Read more "
                "about required scopes here: https://developers.hubspot.com/scopes.",
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": [f"crm.objects.{kind}.read"]}}],
                links={"scopes": "https://developers.hubspot.com/scopes"})
        with self._rate_lock:
            now = time.monotonic()
            while self._sent and now - self._sent[0] >= self.rate_interval:
                self._sent.popleft()
            headers = {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.rate_interval * 1000)),
                "X-HubSpot-RateLimit-Max": str(self.rate_limit),
                "X-HubSpot-RateLimit-Daily": "500000", "X-HubSpot-RateLimit-Daily-Remaining": "499000",
            }
            if len(self._sent) >= self.rate_limit:
                body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                        "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                        "policyName": "TEN_SECONDLY_ROLLING", "groupName": "privateapps:sandbox"}
                raise SandboxError(429, json.dumps(body), {**headers, "X-HubSpot-RateLimit-Remaining": "0"})
            self._sent.append(now)
            headers["X-HubSpot-RateLimit-Remaining"] = str(self.rate_limit - len(self._sent))
        return headers

    def _dispatch(self, req: SandboxRequest) -> Reply:
        dated = _DATED.match(req.path)
        if dated:  # a date-based version's endpoint is the v3 one with a new path
            if dated.group("version") not in API_VERSIONS:
                return Reply(404, b"", {})  # HubSpot: no such version, no such resource
            req = dataclasses.replace(req, path=f"/crm/v3/{dated.group('api')}/{dated.group('rest')}")
        # HubSpot's error bodies are JSON objects, not the base class's {"error": ...}.
        reply = super()._dispatch(req)
        if reply.status >= 400 and reply.body.startswith(b'{"error":"{'):
            inner = json.loads(reply.body)["error"]
            return Reply(reply.status, inner.encode(), reply.headers)
        return reply

    # ------------------------------------------------------------------ routes

    def _view(self, kind: str, record: dict[str, Any], properties: list[str] | None,
              associations: list[str]) -> dict[str, Any]:
        names = properties if properties is not None else DEFAULT_RETURNED[kind]
        view: dict[str, Any] = {
            "id": record["id"], "properties": {n: record["properties"].get(n) for n in names if n in PROPERTIES[kind]},
            "createdAt": record["createdAt"], "updatedAt": record["updatedAt"], "archived": record["archived"],
        }
        if record["archived"]:
            view["archivedAt"] = record["archivedAt"]
        linked: dict[str, Any] = {}
        for to_type in associations:
            ids = sorted((i for t, i in self._links.get((kind, record["id"]), ()) if t == to_type), key=int)
            if ids:
                label = f"{SINGULAR[kind]}_to_{SINGULAR[to_type]}"
                linked[to_type] = {"results": [{"id": i, "type": label} for i in ids]}
        if linked:
            view["associations"] = linked
        return view

    def _by_id(self, kind: str, archived: bool) -> tuple[list[int], list[dict[str, Any]]]:
        key = ("id", kind, str(archived))
        if key not in self._sorted:
            rows = sorted((r for r in self._records[kind].values() if r["archived"] == archived), key=lambda r: int(r["id"]))
            self._sorted[key] = ([int(r["id"]) for r in rows], rows)
        return self._sorted[key]

    def _matching(self, kind: str, groups: list[dict[str, Any]], sorts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Live records matching the filter groups, in the sort's order (then by id)."""
        prop = sorts[0]["propertyName"] if sorts else "hs_object_id"
        descending = bool(sorts) and sorts[0].get("direction", "ASCENDING") == "DESCENDING"
        key = ("search", kind, prop)
        if key not in self._sorted:
            rows = sorted((r for r in self._records[kind].values() if not r["archived"]),
                          key=lambda r: (_sort_key(r, prop), int(r["id"])))
            self._sorted[key] = ([_sort_key(r, prop) for r in rows], rows)
        keys, rows = self._sorted[key]
        start = 0
        filters = groups[0].get("filters", []) if len(groups) == 1 else []
        for f in filters:  # the common case, `sort property >= value`: start there instead of scanning
            if f["propertyName"] == prop and f.get("operator") in ("GTE", "GT", "EQ"):
                start = bisect.bisect_left(keys, (0, _filter_value(f.get("value"))))
        if len(filters) == 1 and filters[0]["propertyName"] == prop and filters[0].get("operator") == "GTE":
            found = rows[start:]  # the bisect did the filtering
        else:
            found = [r for r in rows[start:]
                     if not groups or any(all(_matches(r, f) for f in g.get("filters", [])) for g in groups)]
        return found[::-1] if descending else found

    def _list(self, kind: str, req: SandboxRequest) -> Reply:
        headers = self._admit(req, kind)
        limit = req.int_param("limit", 10)
        if not 1 <= limit <= 100:
            raise hubspot_error(400, "VALIDATION_ERROR", f"limit must be between 1 and 100, got {limit}")
        after = req.int_param("after", 0)
        archived = (req.param("archived") or "false").lower() == "true"  # the official client sends `True`
        names = _listed(req, "properties")
        assoc = [a for a in _listed(req, "associations") or [] if a in OBJECT_TYPES]
        with self._lock:
            ordered = self._by_id(kind, archived)
            start = bisect.bisect_left(ordered[0], after)
            page = ordered[1][start:start + limit]
            more = start + limit < len(ordered[1])
            results = [self._view(kind, r, names, assoc) for r in page]
        body: dict[str, Any] = {"results": results}
        if more:
            nxt = str(int(page[-1]["id"]) + 1)
            body["paging"] = {"next": {"after": nxt, "link": f"{req.base_url}{req.path}?after={nxt}"}}
        return Reply.json(body, headers=headers)

    def _search(self, kind: str, req: SandboxRequest) -> Reply:
        headers = self._admit(req, kind)
        query = req.json()
        limit = int(query.get("limit", 10))
        if not 1 <= limit <= 200:
            raise hubspot_error(400, "VALIDATION_ERROR", f"limit must be between 1 and 200, got {limit}")
        after = int(query.get("after") or 0)
        if after >= self.search_cap:
            raise hubspot_error(400, "VALIDATION_ERROR", "There was a problem with the request.",
                                errors=[{"message": f"paging past {self.search_cap} results is not supported",
                                         "code": "INVALID_INTEGER"}])
        groups = query.get("filterGroups") or []
        sorts = [_sort(kind, entry) for entry in query.get("sorts") or []]
        with self._lock:
            rows = self._matching(kind, groups, sorts)
            page = rows[after:min(after + limit, self.search_cap)]
            results = [self._view(kind, r, query.get("properties"), []) for r in page]
        body: dict[str, Any] = {"total": len(rows), "results": results}
        if after + limit < len(rows):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return Reply.json(body, headers=headers)

    def _properties(self, kind: str, req: SandboxRequest) -> Reply:
        headers = self._admit(req, kind)
        with self._lock:
            results = [self._property(kind, n, t, order) for order, (n, t) in enumerate(PROPERTIES[kind].items())]
        return Reply.json({"results": results}, headers=headers)

    def _property(self, kind: str, name: str, kind_of_value: str, order: int) -> dict[str, Any]:
        """One property as HubSpot describes it: every field its Property model requires (name, label,
        type, fieldType, description, groupName, options) and the usual others. An enumeration's
        options are the values its records hold; a bool's are HubSpot's Yes/No."""
        label = name.replace("_", " ").title()
        if kind_of_value == "enumeration" and name not in FREE_TEXT_ENUMERATIONS:
            values = sorted({v for r in self._records[kind].values()
                             if isinstance(v := r["properties"].get(name), str) and v})
            options = [{"label": v.replace("_", " ").title(), "value": v, "displayOrder": i, "hidden": False,
                        "description": ""} for i, v in enumerate(values)]
        elif kind_of_value == "bool":
            options = [{"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False, "description": ""},
                       {"label": "No", "value": "false", "displayOrder": 1, "hidden": False, "description": ""}]
        else:
            options = []
        custom = name in CUSTOM
        return {
            "name": name, "label": label, "type": kind_of_value, "fieldType": FIELD_TYPES[kind_of_value],
            "description": "" if custom else f"The {label.lower()} of the {SINGULAR[kind]}.",
            "groupName": f"{SINGULAR[kind]}information", "options": options, "displayOrder": order if custom else -1,
            "calculated": False, "externalOptions": False, "hasUniqueValue": name == "hs_object_id", "hidden": False,
            "hubspotDefined": not custom, "formField": name in ("email", "firstname", "lastname", "phone", "company"),
            "archived": False, "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z",
            "modificationMetadata": {"archivable": custom, "readOnlyDefinition": not custom,
                                     "readOnlyValue": name in ("hs_object_id", "createdate", MODIFIED[kind])},
        }

    @route("GET", "/crm/v3/objects/contacts")
    def list_contacts(self, req: SandboxRequest) -> Reply:
        return self._list("contacts", req)

    @route("GET", "/crm/v3/objects/companies")
    def list_companies(self, req: SandboxRequest) -> Reply:
        return self._list("companies", req)

    @route("GET", "/crm/v3/objects/deals")
    def list_deals(self, req: SandboxRequest) -> Reply:
        return self._list("deals", req)

    @route("POST", "/crm/v3/objects/contacts/search")
    def search_contacts(self, req: SandboxRequest) -> Reply:
        return self._search("contacts", req)

    @route("POST", "/crm/v3/objects/companies/search")
    def search_companies(self, req: SandboxRequest) -> Reply:
        return self._search("companies", req)

    @route("POST", "/crm/v3/objects/deals/search")
    def search_deals(self, req: SandboxRequest) -> Reply:
        return self._search("deals", req)

    @route("GET", "/crm/v3/properties/contacts")
    def contact_properties(self, req: SandboxRequest) -> Reply:
        return self._properties("contacts", req)

    @route("GET", "/crm/v3/properties/companies")
    def company_properties(self, req: SandboxRequest) -> Reply:
        return self._properties("companies", req)

    @route("GET", "/crm/v3/properties/deals")
    def deal_properties(self, req: SandboxRequest) -> Reply:
        return self._properties("deals", req)

    # ------------------------------------------------------------------ control endpoints (over HTTP)

    def control_update(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"updated": self.update(body["type"], [str(i) for i in body["ids"]])}

    def control_add(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"added": self.add(body["type"], int(body.get("n", 1)))}

    def control_archive(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"archived": self.archive(body["type"], [str(i) for i in body["ids"]])}


def _listed(req: SandboxRequest, name: str) -> list[str] | None:
    """A list parameter, sent either comma-separated or repeated (the official client repeats it)."""
    values = req.query.get(name)
    if not values:
        return None
    return [item for value in values for item in value.split(",") if item]


def _sort(kind: str, entry: Any) -> dict[str, Any]:
    """One entry of a search's `sorts`: an object {propertyName, direction}, or a property name
    alone (the official client's model types `sorts` as strings), sorted ascending."""
    if isinstance(entry, str) and entry:
        return {"propertyName": entry, "direction": "ASCENDING"}
    if isinstance(entry, dict) and isinstance(entry.get("propertyName"), str):
        return entry
    raise hubspot_error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1: a sort is a property name or an "
                        "object with propertyName and direction", errors=[{"message": f"invalid sort {entry!r}"}])


def _value(record: dict[str, Any], prop: str) -> Any:
    value = record["id"] if prop == "hs_object_id" else record["properties"].get(prop)
    if value is None:
        return None
    if isinstance(value, str) and value[:2].isdigit() and "T" in value and value.endswith("Z"):
        return epoch_ms(value)  # datetime properties compare as epoch milliseconds
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _filter_value(value: Any) -> Any:
    if isinstance(value, str) and "T" in value and value.endswith("Z"):
        return epoch_ms(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _matches(record: dict[str, Any], f: dict[str, Any]) -> bool:
    have, want, op = _value(record, f["propertyName"]), _filter_value(f.get("value")), f.get("operator", "EQ")
    if op == "HAS_PROPERTY":
        return have is not None
    if have is None:
        return op == "NOT_HAS_PROPERTY"
    try:
        return {"EQ": have == want, "NEQ": have != want, "GT": have > want, "GTE": have >= want,
                "LT": have < want, "LTE": have <= want}[op]
    except (KeyError, TypeError):
        raise hubspot_error(400, "VALIDATION_ERROR", f"unsupported filter {f}") from None


def _sort_key(record: dict[str, Any], prop: str) -> tuple[int, Any]:
    value = _value(record, prop)
    return (1, 0) if value is None else (0, value)
