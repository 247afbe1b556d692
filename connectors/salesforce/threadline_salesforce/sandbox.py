"""The Salesforce REST API (SOQL query, describe, OAuth2 token) on loopback, for tests and
demos (`threadline sandbox salesforce`).

What it implements, as Salesforce documents it:

    POST /services/oauth2/token          grant_type=refresh_token, refresh_token, client_id, client_secret
                                         (form body) → {"access_token", "instance_url", "token_type": "Bearer",
                                         "issued_at", "id", "signature"}; a bad grant answers 400
                                         {"error": "invalid_grant", "error_description": "expired access/refresh token"}
    GET  /services/data/vNN.0/sobjects/{Object}/describe      → {"name", "custom", "fields": [{"name", "type",
                                         "label", "custom", "nillable", "precision", "scale", "length"}, ...]}
    GET  /services/data/vNN.0/query?q=<SOQL>                    live records only
    GET  /services/data/vNN.0/queryAll?q=<SOQL>                 live and deleted records (IsDeleted = true)
    GET  /services/data/vNN.0/query/{locator}-{offset}          the next page (`nextRecordsUrl`)

- A query answers {"totalSize", "done", "nextRecordsUrl"?, "records": [{"attributes": {"type", "url"}, ...}]};
  the page size is `Sforce-Query-Options: batchSize=N` (Salesforce: 200..2000, default 2000; this
  sandbox takes any N >= 1 so that tests can page through few records).
- `query/` and `queryAll/` with a trailing slash (as simple-salesforce asks) are the same calls.
- The SOQL understood (sandbox_soql.py): `SELECT f, ... | COUNT() | COUNT(f) FROM Object
  [WHERE ...=, !=, <, <=, >, >=, LIKE, IN, NOT IN joined by AND, OR, NOT and parentheses]
  [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`; an unknown field is
  400 INVALID_FIELD, as is a literal of the wrong type (a quoted datetime), an unknown object
  400 INVALID_TYPE, anything else 400 MALFORMED_QUERY. `COUNT()` answers `totalSize` with
  no records; `COUNT(f)` one AggregateResult row with `expr0`.
- A query locator is a snapshot: its pages hold the records as they were when the query ran
  (minus those deleted since, for `query`), as Salesforce's server-side cursors do. A queryAll's
  `nextRecordsUrl` says `/query/...` (as Salesforce's does) and still returns deleted records.
- API versions: up to v30.0 answer 410 GONE (retired in Summer '25), versions newer than
  the connector's `CURRENT_API_VERSION` (v67.0, Summer '26) 404 NOT_FOUND; the others answer.
- Every API answer carries `Sforce-Limit-Info: api-usage=<used>/<allowed>`.
- Errors are lists: [{"message", "errorCode"}]. An unknown or expired access token is 401
  INVALID_SESSION_ID; `expire_sessions()` expires every token issued so far; `revoke_credentials()`
  refuses the refresh token too; `restrict(Object)` makes describe and queries of that object
  answer 403 INSUFFICIENT_ACCESS... (a user without the permission); `drop_api_scope()` makes the
  API refuse sessions (401 "This session is not valid for use with the REST API", a token
  without the `api` scope); `disable_api()` answers 403 API_DISABLED_FOR_ORG; `limit_requests(n)` answers
  403 REQUEST_LIMIT_EXCEEDED after n more API calls (the org's 24-hour limit).

Seeded data: the Contacts are people of the population shared by every vendor sandbox
(`threadline.sandbox.people`, population `2026 + seed`), so the same people are in the shop,
the email tools and the other CRM. The sales team's view: mostly work emails (the personal one
in the custom field Secondary_Email__c), the employer's Account, phones in several formats
(sometimes an old number), US ZIP codes that lost their leading zero in a spreadsheet import,
birth dates for some, `HasOptedOutOfEmail`, loyalty tier and points, lifetime value, and
advertising consent in custom fields (`Ads_Consent__c`, `Ads_Consent_Date__c`). Leads are
some of the same people (upper-cased emails, half of them converted) and prospects at a
company; Opportunities and Cases belong to the contacts. Accounts include the employers
(their websites are the work emails' domains). `SystemModstamp` is when a record last changed,
shared in threes. Tests change data with `update`, `add_contacts` (the population's next
people), `delete`, `add_custom_field`, `remove_field`.
"""

from __future__ import annotations

import copy
import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from threadline.sandbox import Reply, Sandbox, SandboxError, SandboxRequest
from threadline.sandbox.people import (
    AS_OF,
    HISTORY_START,
    Person,
    format_phone,
    in_threes,
    loyalty_points,
    loyalty_tier,
    members_of,
    population,
    population_seed,
)
from threadline.sandbox.people_data import COMPANIES
from threadline_salesforce.source import CURRENT_API_VERSION, RETIRED_THROUGH
from threadline_salesforce.sandbox_soql import SoqlError, parse_literal
from threadline_salesforce.sandbox_soql import ordered as soql_ordered, parse as soql_parse, predicate as soql_predicate

API_VERSION = CURRENT_API_VERSION  # the version record URLs name
_CITIES = [("London", "N1 9GU", "United Kingdom"), ("Austin", "78701", "USA"), ("Toronto", "M5V 2T6", "Canada"),
           (None, None, None)]
_COUNTRY_AS_TYPED = {"US": ("USA", "United States", "US"), "GB": ("United Kingdom", "UK", "GB"),
                     "CA": ("Canada", "CA"), "DE": ("Germany", "Deutschland", "DE")}
_PHONE_STYLES = ("national", "international", "dotted", "e164")
_PREFIX = {"Account": "001", "Contact": "003", "Lead": "00Q", "Opportunity": "006", "Case": "500"}

# (name, Salesforce type, custom, extras) per object; the describe endpoint serves these.
_COMMON = [("Id", "id"), ("IsDeleted", "boolean"), ("CreatedDate", "datetime"), ("LastModifiedDate", "datetime"),
           ("SystemModstamp", "datetime")]
FIELDS: dict[str, list[tuple[str, str]]] = {
    "Account": _COMMON + [
        ("Name", "string"), ("Type", "picklist"), ("Industry", "picklist"), ("Phone", "phone"), ("Website", "url"),
        ("BillingStreet", "textarea"), ("BillingCity", "string"), ("BillingPostalCode", "string"),
        ("BillingCountry", "string"), ("BillingAddress", "address"), ("AnnualRevenue", "currency"),
        ("NumberOfEmployees", "int"), ("Customer_Number__c", "string")],
    "Contact": _COMMON + [
        ("AccountId", "reference"), ("FirstName", "string"), ("LastName", "string"), ("Email", "email"),
        ("Phone", "phone"), ("MobilePhone", "phone"), ("MailingStreet", "textarea"), ("MailingCity", "string"),
        ("MailingPostalCode", "string"), ("MailingCountry", "string"), ("MailingAddress", "address"),
        ("Birthdate", "date"), ("HasOptedOutOfEmail", "boolean"), ("LeadSource", "picklist"),
        ("Secondary_Email__c", "email"), ("Loyalty_Tier__c", "picklist"), ("Lifetime_Value__c", "currency"),
        ("Loyalty_Points__c", "double"), ("Ads_Consent__c", "picklist"), ("Ads_Consent_Date__c", "datetime")],
    "Lead": _COMMON + [
        ("FirstName", "string"), ("LastName", "string"), ("Company", "string"), ("Email", "email"),
        ("Phone", "phone"), ("Status", "picklist"), ("City", "string"), ("PostalCode", "string"),
        ("Country", "string"), ("Address", "address"), ("IsConverted", "boolean"),
        ("ConvertedContactId", "reference"), ("AnnualRevenue", "currency"), ("NumberOfEmployees", "int"),
        ("HasOptedOutOfEmail", "boolean"), ("Campaign_Code__c", "string")],
    "Opportunity": _COMMON + [
        ("AccountId", "reference"), ("ContactId", "reference"), ("Name", "string"), ("StageName", "picklist"),
        ("Amount", "currency"), ("Probability", "percent"), ("CloseDate", "date"), ("IsClosed", "boolean"),
        ("IsWon", "boolean"), ("Type", "picklist")],
    "Case": _COMMON + [
        ("CaseNumber", "string"), ("AccountId", "reference"), ("ContactId", "reference"), ("Subject", "string"),
        ("Status", "picklist"), ("Priority", "picklist"), ("Origin", "picklist"), ("SuppliedEmail", "email"),
        ("SuppliedPhone", "phone"), ("IsClosed", "boolean"), ("ClosedDate", "datetime"),
        ("Satisfaction_Score__c", "double")],
}

_PATH = re.compile(r"^/services/data/(?P<version>v\d+\.\d)/(?P<rest>.+)$")


def sf_datetime(moment: datetime) -> str:
    """Salesforce's datetime format: 2024-03-01T12:00:00.000+0000."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json([{"message": message, "errorCode": code}], status, headers)


class SalesforceSandbox(Sandbox):
    """Seeded CRM objects behind Salesforce's REST API (see the module docstring)."""

    name = "salesforce"
    CLIENT_ID = "3MVG9sandbox.client.id"
    CLIENT_SECRET = "sandbox-client-secret-5f1c"
    REFRESH_TOKEN = "5Aep861sandbox.refresh.token.9b2e"

    def __init__(self, *, seed: int = 0, port: int = 0, contacts: int = 1500, max_batch_size: int = 2000) -> None:
        self.contacts_count = contacts
        self.max_batch_size = max_batch_size
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        self._fields = {name: [self._describe_field(f, t) for f, t in fields] for name, fields in FIELDS.items()}
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in FIELDS}
        self._cursors: dict[str, tuple[str, bool, list[str], list[str]]] = {}
        self._locators: dict[tuple[Any, ...], str] = {}  # the same query on the same data: the same locator
        self._pages: dict[tuple[str, int, int], bytes] = {}  # serialised pages (benchmarks read them hot)
        self._tokens: set[str] = set()
        self._revoked = False
        self._restricted: set[str] = set()
        self._api_scope = True
        self._api_disabled = False
        self._calls_left: int | None = None
        n = self.contacts_count
        seed = population_seed(self.seed)
        self._people = members_of("salesforce", n, seed)
        accounts = [self._new("Account", self._account_values(rng, i), *self._some_time(rng)) for i in range(max(3, n // 5))]
        employers = {a["Name"]: a["Id"] for a in accounts}
        contacts = []
        for person in self._people:
            account = employers.get(person.company) or rng.choice(accounts)["Id"]
            contacts.append(self._new_contact(rng, person, account))
        upto = self._people[-1].number + 1 if self._people else 0
        prospects = [p for p in population(seed, upto) if p.company and "salesforce" not in p.systems]
        for i in range(max(2, n // 2)):
            twin = contacts[i * 2 % len(contacts)] if i % 3 == 0 or not prospects else None  # the same person as a lead
            self._new_lead(rng, i, twin, None if twin else prospects[i % len(prospects)])
        for i in range(max(2, n // 3)):
            contact = rng.choice(contacts)
            self._new("Opportunity", self._opportunity_values(rng, i, contact), *self._some_time(rng))
        for i in range(max(2, n * 2 // 5)):
            contact = rng.choice(contacts)
            self._new("Case", self._case_values(rng, i, contact), *self._some_time(rng))
        for obj, rows in self._records.items():  # when each record last changed, shared in threes
            rows = list(rows.values())
            for record, moment in zip(rows, in_threes([parse_literal(r["SystemModstamp"]) for r in rows])):
                record["SystemModstamp"] = record["LastModifiedDate"] = sf_datetime(moment)
        # A few records already in the recycle bin: only queryAll sees them.
        for obj in ("Contact", "Lead"):
            for record in list(self._records[obj].values())[3:6]:
                self._delete_record(record)

    @staticmethod
    def _some_time(rng: random.Random) -> tuple[datetime, datetime]:
        """(created, last modified) for records that are not a person's."""
        created = HISTORY_START - timedelta(days=rng.uniform(0, 300)) + (AS_OF - HISTORY_START) * rng.random()
        return created, created + (AS_OF - created) * rng.random() * 0.5

    @staticmethod
    def _describe_field(name: str, kind: str) -> dict[str, Any]:
        field: dict[str, Any] = {
            "name": name, "type": kind, "label": name.replace("__c", "").replace("_", " "),
            "custom": name.endswith("__c"), "nillable": name not in ("Id", "IsDeleted", "SystemModstamp"),
            "length": 255 if kind in ("string", "email", "phone", "picklist", "url", "textarea") else 0,
            "precision": 18 if kind in ("currency", "double", "percent") else 0,
            "scale": 2 if kind in ("currency", "percent") else 0, "digits": 9 if kind == "int" else 0,
        }
        if kind == "reference":
            field["referenceTo"] = ["Account" if name == "AccountId" else "Contact"]
        if kind == "address":
            field["compoundFieldName"] = None
        return field

    def _new(self, obj: str, values: dict[str, Any], created: datetime, modified: datetime) -> dict[str, Any]:
        number = len(self._records[obj]) + 1
        record_id = f"{_PREFIX[obj]}Hs{number:010d}AAB"
        record = {name: None for name, _ in FIELDS[obj] if _ != "address"}
        record.update(Id=record_id, IsDeleted=False, CreatedDate=sf_datetime(created),
                      LastModifiedDate=sf_datetime(modified), SystemModstamp=sf_datetime(modified), **values)
        self._records[obj][record_id] = record
        return record

    def _account_values(self, rng: random.Random, i: int) -> dict[str, Any]:
        city, postcode, country = rng.choice(_CITIES)
        name, domain = COMPANIES[i] if i < len(COMPANIES) else (f"{rng.choice(['Keller', 'Moss', 'Avery'])} & Co {i}", None)
        return {"Name": name, "Type": rng.choice(["Customer - Direct", "Prospect", None]),
                "Industry": rng.choice(["Retail", "Hospitality", "Technology", None]),
                "Phone": rng.choice([f"(512) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}", None]),
                "Website": f"https://www.{domain}" if domain else rng.choice([f"https://acct{i}.example.com", None]),
                "BillingStreet": f"{i + 1} Congress Ave" if city else None, "BillingCity": city,
                "BillingPostalCode": postcode, "BillingCountry": country,
                "AnnualRevenue": rng.choice([None, round(rng.uniform(1e4, 5e6), 2)]),
                "NumberOfEmployees": rng.choice([None, rng.randrange(1, 5000)]), "Customer_Number__c": f"C-{10000 + i}"}

    def _new_contact(self, rng: random.Random, person: Person, account_id: str) -> dict[str, Any]:
        contact = person.contacts["salesforce"]
        home = person.address
        email = contact.email if rng.random() > 0.06 else None
        secondary = next((e.address for e in person.emails if e.address != email and e.kind in ("personal", "work")), None)
        postcode = home.postal_code
        if home.country == "US" and postcode.startswith("0") and rng.random() < 0.5:
            postcode = postcode.lstrip("0")  # a spreadsheet import took it for a number
        ads = person.ad_consent
        opted_out = person.crm_opted_out_at
        spent = person.lifetime_value()
        values = {
            "AccountId": account_id, "FirstName": None if rng.random() < 0.07 else contact.first_name,
            "LastName": person.last_name, "Email": email,
            "Phone": format_phone(contact.phone, rng.choice(_PHONE_STYLES)) if contact.phone else None,
            "MobilePhone": format_phone(person.mobile, "international") if person.mobile and rng.random() < 0.25 else None,
            "MailingStreet": f"{home.line1}\n{home.line2}" if home.line2 else home.line1, "MailingCity": home.city,
            "MailingPostalCode": postcode, "MailingCountry": rng.choice(_COUNTRY_AS_TYPED[home.country]),
            "Birthdate": person.birth_date.isoformat() if rng.random() < 0.4 else None,
            "HasOptedOutOfEmail": opted_out is not None,
            "LeadSource": rng.choice(["Web", "Phone Inquiry", "Partner", "Trade Show", None]),
            "Secondary_Email__c": secondary if rng.random() < 0.6 else None,
            "Loyalty_Tier__c": loyalty_tier(person), "Lifetime_Value__c": round(spent, 2) if spent else None,
            "Loyalty_Points__c": float(loyalty_points(person)) if person.loyalty_cards else None,
            "Ads_Consent__c": {"granted": "Granted", "denied": "Denied"}.get(ads.status),
            "Ads_Consent_Date__c": sf_datetime(ads.at) if ads.at else None,
        }
        changed = max([contact.since, *(t for t in (opted_out, ads.at) if t)])
        return self._new("Contact", values, contact.since, changed)

    def _new_lead(self, rng: random.Random, i: int, twin: dict[str, Any] | None, prospect: Person | None) -> None:
        if twin is not None:  # the contact, typed in again by someone else
            first, last, email, company = twin["FirstName"], twin["LastName"], (twin["Email"] or "").upper() or None, None
            created = parse_literal(twin["CreatedDate"]) - timedelta(days=rng.uniform(1, 60))
            city, postcode, country, phone = twin["MailingCity"], twin["MailingPostalCode"], twin["MailingCountry"], twin["Phone"]
        else:
            assert prospect is not None
            first, last, company = prospect.first_name, prospect.last_name, prospect.company
            email = prospect.email_of("work") or prospect.email
            created = prospect.first_seen
            home = prospect.address
            city, postcode, country = home.city, home.postal_code, rng.choice(_COUNTRY_AS_TYPED[home.country])
            phone = format_phone(prospect.mobile, rng.choice(_PHONE_STYLES)) if prospect.mobile else None
        converted = twin is not None and i % 2 == 0
        values = {
            "FirstName": first, "LastName": last, "Company": company or rng.choice([f"{last} Ltd", "[not provided]"]),
            "Email": email, "Phone": phone, "Status": "Closed - Converted" if converted else rng.choice(
                ["Open - Not Contacted", "Working - Contacted"]), "City": city, "PostalCode": postcode, "Country": country,
            "IsConverted": converted, "ConvertedContactId": twin["Id"] if converted else None,
            "AnnualRevenue": rng.choice([None, round(rng.uniform(1e3, 1e6), 2)]),
            "NumberOfEmployees": rng.choice([None, rng.randrange(1, 200)]), "HasOptedOutOfEmail": rng.random() < 0.05,
            "Campaign_Code__c": rng.choice(["SPRING26", "WINBACK", "OFFICE-COFFEE", None]),
        }
        self._new("Lead", values, created, created + (AS_OF - created) * rng.random() * 0.3)

    def _opportunity_values(self, rng: random.Random, i: int, contact: dict[str, Any]) -> dict[str, Any]:
        stage = rng.choice(["Prospecting", "Negotiation/Review", "Closed Won", "Closed Lost"])
        return {"AccountId": contact["AccountId"], "ContactId": contact["Id"], "Name": f"Office coffee {i}",
                "StageName": stage, "Amount": rng.choice([None, round(rng.uniform(100, 50000), 2)]),
                "Probability": {"Prospecting": 10.0, "Negotiation/Review": 60.0, "Closed Won": 100.0}.get(stage, 0.0),
                "CloseDate": (AS_OF - timedelta(days=rng.randrange(-60, 600))).strftime("%Y-%m-%d"),
                "IsClosed": stage.startswith("Closed"), "IsWon": stage == "Closed Won",
                "Type": rng.choice(["New Customer", "Existing Customer - Upgrade", None])}

    def _case_values(self, rng: random.Random, i: int, contact: dict[str, Any]) -> dict[str, Any]:
        closed = rng.random() < 0.6
        web = rng.random() < 0.3
        return {"CaseNumber": f"{1000 + i:08d}", "AccountId": contact["AccountId"], "ContactId": None if web else contact["Id"],
                "Subject": rng.choice(["Late delivery", "Damaged parcel", "Refund request", "Invoice copy"]),
                "Status": "Closed" if closed else rng.choice(["New", "Working", "Escalated"]),
                "Priority": rng.choice(["Low", "Medium", "High"]), "Origin": "Web" if web else rng.choice(["Phone", "Email"]),
                "SuppliedEmail": contact["Email"] if web else None, "SuppliedPhone": contact["Phone"] if web else None,
                "IsClosed": closed, "ClosedDate": sf_datetime(AS_OF - timedelta(days=rng.randrange(1, 300))) if closed else None,
                "Satisfaction_Score__c": rng.choice([None, float(rng.randrange(1, 6))]) if closed else None}

    def _changed(self) -> None:
        """Data changed: cached locators and pages no longer hold."""
        self._locators.clear()
        self._pages.clear()

    def _tick(self) -> datetime:
        self._changed()
        latest = max(r["SystemModstamp"] for rs in self._records.values() for r in rs.values())
        return parse_literal(latest) + timedelta(seconds=1)

    def _delete_record(self, record: dict[str, Any]) -> None:
        when = sf_datetime(self._tick())
        record.update(IsDeleted=True, SystemModstamp=when, LastModifiedDate=when)

    # ------------------------------------------------------------------ what tests use

    def secrets(self) -> list[str]:
        return [self.CLIENT_SECRET, self.REFRESH_TOKEN, *self._tokens]

    def records(self, obj: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        """The records of `obj` as queryAll returns them (every field), in SystemModstamp order."""
        with self._lock:
            rows = [copy.deepcopy(r) for r in self._records[obj].values() if include_deleted or not r["IsDeleted"]]
        return sorted(rows, key=lambda r: (r["SystemModstamp"], r["Id"]))

    def fields(self, obj: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._fields[obj])

    def update(self, obj: str, ids: list[str], **values: Any) -> list[dict[str, Any]]:
        """Change fields of records (SystemModstamp moves); returns them as now."""
        with self._lock:
            changed = []
            for record_id in ids:
                record = self._records[obj][record_id]
                when = sf_datetime(self._tick())
                record.update(values, SystemModstamp=when, LastModifiedDate=when)
                changed.append(copy.deepcopy(record))
            return changed

    def add_contacts(self, n: int) -> list[dict[str, Any]]:
        """The population's next `n` people Salesforce knows become contacts (stamped now)."""
        with self._lock:
            rng = random.Random(self.seed + 1000 + len(self._records["Contact"]))
            account_id = next(iter(self._records["Account"]))
            self._people = members_of("salesforce", len(self._people) + n, population_seed(self.seed))
            added = []
            for person in self._people[-n:]:
                record = self._new_contact(rng, person, account_id)
                when = sf_datetime(self._tick())
                record.update(SystemModstamp=when, LastModifiedDate=when)
                added.append(copy.deepcopy(record))
            return added

    def delete(self, obj: str, ids: list[str]) -> list[dict[str, Any]]:
        """Move records to the recycle bin (IsDeleted = true, SystemModstamp moves)."""
        with self._lock:
            for record_id in ids:
                self._delete_record(self._records[obj][record_id])
            return [copy.deepcopy(self._records[obj][i]) for i in ids]

    def add_custom_field(self, obj: str, name: str, kind: str, value: Any) -> None:
        """An admin adds a custom field: describe lists it, every record gets `value`."""
        with self._lock:
            self._changed()
            self._fields[obj].append(self._describe_field(name, kind))
            for record in self._records[obj].values():
                record[name] = value

    def remove_field(self, obj: str, name: str) -> None:
        """An admin deletes a custom field: describe no longer lists it, queries naming it fail."""
        with self._lock:
            self._changed()
            self._fields[obj] = [f for f in self._fields[obj] if f["name"] != name]

    def set_raw(self, obj: str, record_id: str, field: str, value: Any) -> None:
        """Store a value as is (no type check): a record with a field of an unexpected type."""
        with self._lock:
            self._changed()
            self._records[obj][record_id][field] = value

    def expire_sessions(self) -> None:
        with self._lock:
            self._tokens.clear()

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True
            self._tokens.clear()

    def drop_api_scope(self) -> None:
        """Tokens from now on lack the `api` OAuth scope: the REST API refuses their sessions."""
        with self._lock:
            self._api_scope = False

    def disable_api(self) -> None:
        """The user loses the API Enabled permission: 403 API_DISABLED_FOR_ORG."""
        with self._lock:
            self._api_disabled = True

    def restrict(self, obj: str) -> None:
        with self._lock:
            self._restricted.add(obj)

    def limit_requests(self, calls: int | None) -> None:
        with self._lock:
            self._calls_left = calls

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    def control_expire_sessions(self, body: dict[str, Any]) -> dict[str, Any]:
        self.expire_sessions()
        return {"expired": True}

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, req: SandboxRequest) -> Reply:
        if req.method == "POST" and req.path == "/services/oauth2/token":
            return self._token(req)
        match = _PATH.match(req.path)
        if match is None or req.method != "GET":
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        version = int(match.group("version")[1:].split(".")[0])
        if version <= RETIRED_THROUGH:  # Salesforce: a retired version's REST calls answer 410 GONE
            return errors(410, "GONE", f"API version {version}.0 has been retired and is no longer available")
        if version > int(CURRENT_API_VERSION[1:].split(".")[0]):  # not released yet: no such resource
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        given = req.headers.get("authorization", "")
        with self._lock:
            if not given.startswith("Bearer ") or given[7:] not in self._tokens:
                return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if not self._api_scope:
                return errors(401, "INVALID_SESSION_ID", "This session is not valid for use with the REST API")
            if self._api_disabled:
                return errors(403, "API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner")
            if self._calls_left is not None:
                if self._calls_left <= 0:
                    return errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                self._calls_left -= 1
        rest = match.group("rest")
        try:
            describe = re.fullmatch(r"sobjects/(\w+)/describe/?", rest)
            if describe:
                return self._describe(describe.group(1))
            if rest.rstrip("/") in ("query", "queryAll"):  # simple-salesforce asks for `query/?q=`
                return self._query(req, req.param("q") or "", rest.rstrip("/") == "queryAll")
            more = re.fullmatch(r"(?:query|queryAll)/([\w]+)-(\d+)/?", rest)
            if more:
                return self._more(req, more.group(1), int(more.group(2)))
        except SandboxError as exc:
            return errors(exc.status, exc.headers.get("code", "ERROR"), exc.error)
        return errors(404, "NOT_FOUND", "The requested resource does not exist")

    def _token(self, req: SandboxRequest) -> Reply:
        form = {k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()}
        if form.get("grant_type") != "refresh_token":
            return Reply.json({"error": "unsupported_grant_type", "error_description": "grant type not supported"}, 400)
        if form.get("client_id") != self.CLIENT_ID or form.get("client_secret") != self.CLIENT_SECRET:
            return Reply.json({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
        with self._lock:
            if self._revoked or form.get("refresh_token") != self.REFRESH_TOKEN:
                return Reply.json({"error": "invalid_grant", "error_description": "expired access/refresh token"}, 400)
            token = f"00Dsandbox!AQ{len(self._tokens) + 1:04d}.{random.Random(len(self._tokens)).getrandbits(64):x}"
            self._tokens.add(token)
        return Reply.json({"access_token": token, "instance_url": req.base_url, "token_type": "Bearer",
                           "id": f"{req.base_url}/id/00Dsandbox/005sandbox", "issued_at": "1709251200000",
                           "signature": "c2FuZGJveA=="})

    def _check_object(self, obj: str) -> None:
        if obj not in self._records:
            raise SandboxError(400 if obj else 404, f"sObject type '{obj}' is not supported.", {"code": "INVALID_TYPE"})
        if obj in self._restricted:
            raise SandboxError(403, f"insufficient access rights on object {obj}", {"code": "INSUFFICIENT_ACCESS_OR_READONLY"})

    def _describe(self, obj: str) -> Reply:
        with self._lock:
            if obj not in self._records:
                return errors(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
            self._check_object(obj)
            return Reply.json({"name": obj, "label": obj, "custom": False, "queryable": True,
                               "fields": copy.deepcopy(self._fields[obj])}, headers=self._usage())

    def _query(self, req: SandboxRequest, soql: str, include_deleted: bool) -> Reply:
        try:
            query = soql_parse(soql)
        except SoqlError as exc:
            raise SandboxError(400, str(exc), {"code": exc.code}) from None
        obj = query.obj
        with self._lock:
            self._check_object(obj)
            known = {f["name"]: f["type"] for f in self._fields[obj]}
            named = [*query.fields, *(c.field for c in query.conditions()), *(o[0] for o in query.order),
                     *([query.count] if query.count else [])]
            for name in named:
                if name not in known or known[name] == "address":
                    raise SandboxError(400, f"No such column '{name}' on entity '{obj}'.", {"code": "INVALID_FIELD"})
            key = (soql, include_deleted)
            locator = self._locators.get(key)
            if locator is None:
                try:
                    keep = soql_predicate(query, known)
                    rows = [r for r in self._records[obj].values() if (include_deleted or not r["IsDeleted"]) and keep(r)]
                except SoqlError as exc:
                    raise SandboxError(400, str(exc), {"code": exc.code}) from None
                rows.sort(key=lambda r: (r["SystemModstamp"], r["Id"]))
                rows = soql_ordered(rows, query, known)[query.offset:]
                rows = rows[:query.limit] if query.limit is not None else rows
                if query.count is not None:
                    return self._count(query, rows)
                locator = self._locators[key] = f"01gSB{len(self._cursors) + 1:013d}"
                self._cursors[locator] = (obj, include_deleted, list(query.fields), [r["Id"] for r in rows])
        return self._page(req, locator, 0)

    def _count(self, query: Any, rows: list[dict[str, Any]]) -> Reply:
        """COUNT() answers the number alone; COUNT(field) one aggregate row (expr0), as Salesforce does."""
        if query.count == "":
            return Reply.json({"totalSize": len(rows), "done": True, "records": []}, headers=self._usage())
        counted = sum(1 for r in rows if r.get(query.count) is not None)
        return Reply.json({"totalSize": 1, "done": True,
                           "records": [{"attributes": {"type": "AggregateResult"}, "expr0": counted}]},
                          headers=self._usage())

    def _more(self, req: SandboxRequest, locator: str, offset: int) -> Reply:
        if locator not in self._cursors:
            raise SandboxError(400, "invalid query locator", {"code": "INVALID_QUERY_LOCATOR"})
        return self._page(req, locator, offset)

    def _page(self, req: SandboxRequest, locator: str, offset: int) -> Reply:
        options = req.headers.get("sforce-query-options", "")
        size = self.max_batch_size
        found = re.search(r"batchSize\s*=\s*(\d+)", options)
        if found:
            size = max(1, min(int(found.group(1)), self.max_batch_size))
        with self._lock:
            obj, include_deleted, fields, ids = self._cursors[locator]
            self._check_object(obj)
            cached = self._pages.get((locator, offset, size))
            if cached is not None:
                return Reply.raw_json(cached, headers=self._usage())
            chunk = ids[offset:offset + size]
            records = []
            for record_id in chunk:
                record = self._records[obj][record_id]
                if record["IsDeleted"] and not include_deleted:
                    continue  # deleted since the query ran
                row = {"attributes": {"type": obj, "url": f"/services/data/{API_VERSION}/sobjects/{obj}/{record_id}"}}
                row.update({name: record.get(name) for name in fields})
                records.append(row)
        body: dict[str, Any] = {"totalSize": len(ids), "done": offset + size >= len(ids)}
        if not body["done"]:
            version = _PATH.match(req.path).group("version")  # type: ignore[union-attr]
            # As documented: a queryAll locator's URL says `query` too; it still returns deleted records.
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{offset + size}"
        body["records"] = records
        page = json.dumps(body, separators=(",", ":")).encode()
        with self._lock:
            self._pages[(locator, offset, size)] = page
        return Reply.raw_json(page, headers=self._usage())

    def _usage(self) -> dict[str, str]:
        used = len(self.requests)
        allowed = used + self._calls_left if self._calls_left is not None else 15000
        return {"Sforce-Limit-Info": f"api-usage={used}/{allowed}"}
