"""A customer-like identity benchmark: one company's four exports of the same people.

    python bench/customer_like.py               # describe the default set (seed 2026, ~25k records)
    python bench/customer_like.py --size 5000   # a smaller one

People: those aged 16 or more in pseudopeople's bundled sample population (decennial census 2020,
Anytown WA; offline). Every source record takes its name, birth date and street from its own
copy of the census generated at 3x pseudopeople's default noise (each row and cell noise
probability times three; its typo, OCR, phonetic, nickname, fake-name, blank, wrong-digit,
swapped day/month and copied-from-household noise), one copy per source, each with its own
seed, so two sources of one person carry different mistakes. The truth is each record's
`simulant_id`; it is kept out of the tables the store sees.

On top, a contact layer drawn once per person and household with numpy (seed 2026):

- emails: 1-3 personal addresses per person (55/33/12%), local parts built from names and
  numbers (kate.neal, kneal1985, kateneal42, neal_kate, a nickname, or unrelated words for
  one in ten) at common providers; addresses are unique to a person.
- household: 30% of households of two or more customers have a family email, 35% a home
  phone; both are carried by several members' records (the same value on different people).
- phones: 92% of people have a mobile; 25% also an old number that some records still carry,
  and 40% of those old numbers now belong to someone else (recycled). Formats per source:
  national (206) 555-0134 and 206-555-0134, bare digits, international +1 206 555 0134 and
  +12065550134; 2% of numbers typed by staff have a digit wrong.
- nicknames: from the `nicknames` package (Carlton Northern's hand-curated list), preferring
  nicknames that start like the formal name (Kate for Katherine) four times in five; on
  top of pseudopeople's own, first names carry one on 10% of CRM records, 25% of ESP and
  loyalty records and 40% of social display names.
- social handles built from names (kate.neal, kneal85, the_kateneal, katen_7), one in ten
  unrelated; written as @handle, handle or a profile URL.
- typos in emails typed by staff or at a till (CRM 3%, loyalty 4%: a letter dropped, doubled
  or swapped, or a misspelled provider).
- postal codes: the sample town has one placeholder zip (00000), so each street gets one of
  twenty Seattle-area zips; 2% are typed with a digit wrong.

Sources (columns as each system exports them):
- crm.contacts (Salesforce-like): Id, FirstName, LastName, Email, Phone (national), Mailing*,
  Birthdate (ISO); 85% of customers, 4% of them with a second (duplicate) contact.
- esp.subscribers (Mailchimp-like): one row per subscribed address, "Email Address",
  "First Name", "Last Name" (often blank), "Phone Number" (international, SMS opt-in);
  85% of customers, plus one row per family address.
- loyalty.members (point of sale): card_number, fname, lname, birth_year (the year only),
  mobile, email, zip; 65% of customers, 5% with a replacement card on a second row.
- social.followers (a lead export): username, display_name (a full name, a first name and
  initial, a first name or the handle), email (lead forms, 25%), city; the 50% with a handle.

`size` sets how many customers are drawn (a fixed, seeded sample, about 3.1 records each),
so the total is close to `size`. The bundled sample has 8,485 people aged 16 or more, which
bounds the size at about 26k records. A smaller size draws fewer people from the same town,
so fewer households have two customers and shared household identifiers are rarer: compare
figures at one size.
"""

from __future__ import annotations

import argparse
import os
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

SEED = 2026
NOISE_FACTOR = 3
DEFAULT_SIZE = 25_000
# The benchmark's own row key, kept apart from the exports' ids (DuckDB column names ignore
# case, so a key named `id` would collide with the CRM's `Id`).
PRIMARY_KEY = "record_id"
SOURCE_SEEDS = {"crm": 1, "crm_duplicate": 2, "esp": 3, "loyalty": 4, "social": 5}  # offsets from the seed
PROVIDERS = np.array(["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com", "comcast.net", "msn.com"])
PROVIDER_SHARE = np.array([0.40, 0.15, 0.10, 0.10, 0.10, 0.05, 0.05, 0.05])
PROVIDER_TYPOS = {"gmail.com": "gmial.com", "yahoo.com": "yaho.com", "hotmail.com": "hotmial.com",
                  "outlook.com": "outlok.com", "icloud.com": "iclod.com", "aol.com": "aol.co", "comcast.net": "comcast.com",
                  "msn.com": "msn.co"}
AREA_CODES = np.array([206, 253, 360, 425, 509])
ZIPS = np.array(["98101", "98102", "98103", "98105", "98107", "98109", "98112", "98115", "98116", "98117",
                 "98118", "98119", "98122", "98125", "98126", "98133", "98136", "98144", "98146", "98199"])
WORDS = np.array(["sunny", "blue", "tiger", "river", "maple", "rocket", "lucky", "happy", "coffee", "storm", "pixel",
                  "cedar", "ocean", "falcon", "ginger", "dragon", "summer", "mountain", "willow", "shadow"])
# Expected rows per customer, used to pick how many customers make `size` records.
ROWS_PER_CUSTOMER = 0.85 * 1.04 + 0.85 * 1.135 + 0.65 * 1.05 + 0.50 + 0.05

# What the store cannot take yet (no identifier type or comparison in destinations/profiles/README.md).
UNMAPPED = {
    "social.followers.display_name": "mapped as full_name: the store reads a first and a last name from it (and from "
                                     "the handle and email local parts) only where a record has none of its own",
    "esp.subscribers.LEID": "the ESP's id is one per subscribed address, not per person: a customer_id type (limit 1) "
                            "would forbid a person's two subscriptions from joining, so it stays unmapped",
}


@dataclass
class CustomerLike:
    tables: dict[str, pa.Table]  # "source.stream" -> records (primary key PRIMARY_KEY)
    mappings: dict[str, dict]
    truth: dict[str, str]  # record key "source.stream:id" -> simulant id
    description: str
    unmapped: dict[str, str] = field(default_factory=lambda: dict(UNMAPPED))

    @property
    def records(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


def noisy_config() -> dict:
    """pseudopeople's default census noise with every row and cell probability times three."""
    import pseudopeople as psp

    def scale(node):
        if isinstance(node, dict):
            return {k: (min(1.0, v * NOISE_FACTOR) if isinstance(v, (int, float)) and isinstance(k, str) and "probability" in k
                        and k != "token_probability" else scale(v)) for k, v in node.items()}
        return node

    return {"decennial_census": scale(psp.get_config()["decennial_census"])}


def census(seed: int, noisy: bool) -> pd.DataFrame:
    os.environ.setdefault("TQDM_DISABLE", "1")
    import pseudopeople as psp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = psp.generate_decennial_census(seed=seed, year=2020, verbose=False,
                                              config=noisy_config() if noisy else psp.NO_NOISE)
    return frame.drop_duplicates("simulant_id").set_index("simulant_id")


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value) else str(value)


def _ascii(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalpha())


class Nicknames:
    """Nicknames from the `nicknames` package, those starting like the formal name first."""

    def __init__(self) -> None:
        from nicknames import NickNamer

        self._namer = NickNamer()
        self._cache: dict[str, tuple[list[str], list[str]]] = {}

    def pick(self, name: str, rng: np.random.Generator) -> str | None:
        key = name.lower()
        if key not in self._cache:
            options = sorted(self._namer.nicknames_of(key))
            self._cache[key] = ([o for o in options if o[:2] == key[:2]], [o for o in options if o[:2] != key[:2]])
        alike, other = self._cache[key]
        pool = alike if alike and (not other or rng.random() < 0.8) else other
        return pool[int(rng.integers(len(pool)))] if pool else None


@dataclass
class Person:
    sid: str
    household: str
    first: str
    last: str
    birth: str  # MM/DD/YYYY
    emails: list[str]
    mobile: str | None
    old_phone: str | None
    handle: str | None
    zip: str


class Contacts:
    """The contact layer: emails, phones, handles per person; family emails and home phones per household."""

    def __init__(self, truth: pd.DataFrame, customers: list[str], rng: np.random.Generator, nick: Nicknames) -> None:
        self.rng, self.nick = rng, nick
        self.taken: set[str] = set()
        self.people: dict[str, Person] = {}
        for sid in customers:
            row = truth.loc[sid]
            first, last, birth = _text(row["first_name"]) or "pat", _text(row["last_name"]) or "lee", _text(row["date_of_birth"])
            street = _text(row["street_name"]) or ""
            self.people[sid] = Person(
                sid=sid, household=str(row["household_id"]), first=first, last=last, birth=birth or "01/01/1980",
                emails=[], mobile=None, old_phone=None, handle=None, zip=str(ZIPS[zlib.crc32(street.encode()) % len(ZIPS)]))
        for p in self.people.values():
            for _ in range(int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12]))):
                p.emails.append(self._unique(self._local_part(p), self._provider()))
            p.mobile = self._number() if rng.random() < 0.92 else None
            if rng.random() < 0.25:
                p.old_phone = self._number()
            p.handle = self._handle(p) if rng.random() < 0.50 else None
        # recycled numbers: 40% of old numbers are now another person's mobile
        holders = [p for p in self.people.values() if p.old_phone]
        ids = list(self.people)
        for p in holders:
            if rng.random() < 0.4:
                other = self.people[ids[int(rng.integers(len(ids)))]]
                if other.household != p.household:
                    other.mobile = p.old_phone
        households: dict[str, list[str]] = {}
        for p in self.people.values():
            households.setdefault(p.household, []).append(p.sid)
        self.members = households
        self.family_email: dict[str, str] = {}
        self.home_phone: dict[str, str] = {}
        for hid in sorted(households):
            if len(households[hid]) < 2:
                continue
            last = _ascii(self.people[households[hid][0]].last) or "home"
            if rng.random() < 0.30:
                local = [f"the{last}family", f"{last}family", f"{last}house{int(rng.integers(1, 99))}", f"{last}s"][int(rng.integers(4))]
                self.family_email[hid] = self._unique(local, self._provider())
            if rng.random() < 0.35:
                self.home_phone[hid] = self._number()

    def _provider(self) -> str:
        return str(PROVIDERS[self.rng.choice(len(PROVIDERS), p=PROVIDER_SHARE)])

    def _unique(self, local: str, provider: str) -> str:
        email = f"{local}@{provider}"
        while email in self.taken:
            email = f"{local}{int(self.rng.integers(1, 999))}@{provider}"
        self.taken.add(email)
        return email

    def _local_part(self, p: Person) -> str:
        rng = self.rng
        first, last, year = _ascii(p.first) or "pat", _ascii(p.last) or "lee", p.birth[-4:]
        nick = _ascii(self.nick.pick(p.first, rng) or first)
        patterns = [f"{first}.{last}", f"{first[0]}{last}{year}", f"{first}{last}{int(rng.integers(1, 99))}",
                    f"{last}_{first}", f"{nick}.{last}", f"{nick}{last[0]}{year[-2:]}", f"{first}{year[-2:]}",
                    f"{WORDS[int(rng.integers(len(WORDS)))]}{WORDS[int(rng.integers(len(WORDS)))]}{int(rng.integers(1, 99))}"]
        share = [0.2, 0.15, 0.15, 0.1, 0.1, 0.1, 0.1, 0.1]
        return patterns[int(rng.choice(len(patterns), p=share))]

    def _handle(self, p: Person) -> str:
        rng = self.rng
        first, last, year = _ascii(p.first) or "pat", _ascii(p.last) or "lee", p.birth[-4:]
        nick = _ascii(self.nick.pick(p.first, rng) or first)
        patterns = [f"{first}.{last}", f"{first[0]}{last}{year[-2:]}", f"the_{nick}{last}", f"{nick}{last[0]}_{int(rng.integers(1, 9))}",
                    f"{first}{last}", f"{WORDS[int(rng.integers(len(WORDS)))]}_{WORDS[int(rng.integers(len(WORDS)))]}"]
        handle = patterns[int(rng.choice(len(patterns), p=[0.2, 0.2, 0.15, 0.15, 0.2, 0.1]))]
        while handle in self.taken:
            handle = f"{handle}{int(rng.integers(1, 99))}"
        self.taken.add(handle)
        return handle

    def _number(self) -> str:
        rng = self.rng
        exchange = int(rng.integers(200, 999))
        exchange = 556 if exchange == 555 else exchange  # 555 numbers are placeholders
        return f"{AREA_CODES[int(rng.integers(len(AREA_CODES)))]}{exchange}{int(rng.integers(0, 10000)):04d}"

    # --- what a record carries -------------------------------------------------------------

    def email(self, p: Person, family_share: float) -> str:
        family = self.family_email.get(p.household)
        if family and self.rng.random() < family_share:
            return family
        return p.emails[int(self.rng.integers(len(p.emails)))]

    def phone(self, p: Person, home_share: float, stale_share: float) -> str | None:
        rng = self.rng
        home = self.home_phone.get(p.household)
        if home and rng.random() < home_share:
            return home
        if p.old_phone and rng.random() < stale_share:
            return p.old_phone
        return p.mobile

    def typo_email(self, email: str, share: float) -> str:
        rng = self.rng
        if rng.random() >= share:
            return email
        local, provider = email.split("@")
        kind = int(rng.integers(4))
        i = int(rng.integers(1, len(local))) if len(local) > 1 else 0
        if kind == 0:
            local = local[:i] + local[i + 1:]
        elif kind == 1:
            local = local[:i] + local[i] + local[i:]
        elif kind == 2 and len(local) > 2:
            i = min(i, len(local) - 2)
            local = local[:i] + local[i + 1] + local[i] + local[i + 2:]
        else:
            provider = PROVIDER_TYPOS.get(provider, provider)
        return f"{local}@{provider}"

    def typo_digits(self, digits: str, share: float) -> str:
        if self.rng.random() >= share:
            return digits
        i = int(self.rng.integers(len(digits)))
        return digits[:i] + str((int(digits[i]) + 1 + int(self.rng.integers(8))) % 10) + digits[i + 1:]

    def first_name(self, name: str | None, share: float) -> str | None:
        if name and self.rng.random() < share:
            nick = self.nick.pick(name, self.rng)
            return nick.title() if nick else name
        return name


def national(d: str | None, rng: np.random.Generator) -> str | None:
    if d is None:
        return None
    return f"({d[:3]}) {d[3:6]}-{d[6:]}" if rng.random() < 0.7 else f"{d[:3]}-{d[3:6]}-{d[6:]}"


def international(d: str | None, rng: np.random.Generator) -> str | None:
    if d is None:
        return None
    return f"+1 {d[:3]} {d[3:6]} {d[6:]}" if rng.random() < 0.5 else f"+1{d}"


def till_format(d: str | None, rng: np.random.Generator) -> str | None:
    """As typed at a till: bare digits or with dashes."""
    if d is None:
        return None
    return d if rng.random() < 0.6 else f"{d[:3]}-{d[3:6]}-{d[6:]}"


def iso_date(us_date: str | None) -> str | None:
    """MM/DD/YYYY -> YYYY-MM-DD; a value noise made unreadable is passed on as it is."""
    if us_date is None:
        return None
    parts = us_date.split("/")
    return f"{parts[2]}-{parts[0]}-{parts[1]}" if len(parts) == 3 else us_date


def street(row: pd.Series) -> str | None:
    parts = [_text(row.get(c)) for c in ("street_number", "street_name", "unit_number")]
    text = " ".join(p for p in parts if p)
    return text or None


def build(size: int = DEFAULT_SIZE, seed: int = SEED) -> CustomerLike:
    """The four exports, their mappings and the truth, for about `size` records."""
    truth_people = census(seed, noisy=False)
    candidates = sorted(truth_people.index[pd.to_numeric(truth_people["age"], errors="coerce") >= 16])
    wanted = int(round(size / ROWS_PER_CUSTOMER))
    if wanted > len(candidates):
        raise SystemExit(f"--size {size} needs about {wanted} customers; the bundled pseudopeople sample has "
                         f"{len(candidates)} people aged 16 or more, so at most about {int(len(candidates) * ROWS_PER_CUSTOMER)} records")
    rng = np.random.default_rng(seed)
    customers = sorted(rng.choice(candidates, wanted, replace=False).tolist())
    contacts = Contacts(truth_people, customers, rng, Nicknames())
    copies = {name: census(seed + offset, noisy=True) for name, offset in SOURCE_SEEDS.items()}

    def noisy(source: str, sid: str) -> pd.Series | None:
        frame = copies[source]
        return frame.loc[sid] if sid in frame.index else None  # a row pseudopeople's noise left out

    rows: dict[str, list[dict]] = {"crm.contacts": [], "esp.subscribers": [], "loyalty.members": [], "social.followers": []}
    truth: dict[str, str] = {}

    def add(key: str, sid: str, record: dict) -> None:
        record = {PRIMARY_KEY: f"{len(rows[key]) + 1}", **record}
        rows[key].append(record)
        truth[f"{key}:{record[PRIMARY_KEY]}"] = sid

    for sid in customers:
        p = contacts.people[sid]
        if rng.random() < 0.85:  # CRM, and a duplicate contact for a few
            for copy in ["crm"] + (["crm_duplicate"] if rng.random() < 0.04 else []):
                row = noisy(copy, sid)
                if row is None:
                    continue
                email = contacts.email(p, 0.15) if rng.random() < 0.9 else None
                phone = contacts.phone(p, 0.25, 0.3) if rng.random() < 0.85 else None
                add("crm.contacts", sid, {
                    "Id": f"003{zlib.crc32(f'{seed}:{copy}:{sid}'.encode()):010d}",
                    "FirstName": contacts.first_name(_text(row["first_name"]), 0.1), "LastName": _text(row["last_name"]),
                    "Email": contacts.typo_email(email, 0.03) if email else None,
                    "Phone": national(contacts.typo_digits(phone, 0.02) if phone else None, rng),
                    "MailingStreet": street(row), "MailingCity": _text(row["city"]), "MailingState": _text(row["state"]),
                    "MailingPostalCode": contacts.typo_digits(p.zip, 0.02),
                    "Birthdate": iso_date(_text(row["date_of_birth"])) if rng.random() < 0.6 else None})
        if rng.random() < 0.85:  # ESP: one row per subscribed personal address
            row = noisy("esp", sid)
            count = 2 if len(p.emails) > 1 and rng.random() < 0.3 else 1
            for email in rng.choice(p.emails, count, replace=False).tolist():
                first = contacts.first_name(_text(row["first_name"]), 0.25) if row is not None and rng.random() < 0.7 else None
                add("esp.subscribers", sid, {
                    "Email Address": email if rng.random() < 0.9 else email.upper(),
                    "First Name": first,
                    "Last Name": _text(row["last_name"]) if row is not None and rng.random() < 0.5 else None,
                    "Phone Number": international(p.mobile, rng) if p.mobile and rng.random() < 0.25 else None,
                    "LEID": str(100000 + len(rows["esp.subscribers"])),
                    "OPTIN_TIME": f"20{int(rng.integers(15, 25))}-{int(rng.integers(1, 13)):02d}-01 10:00:00"})
        if rng.random() < 0.65:  # loyalty, and a replacement card for a few
            row = noisy("loyalty", sid)
            for _ in range(1 + (rng.random() < 0.05)):
                if row is None:
                    break
                phone = contacts.phone(p, 0.2, 0.2) if rng.random() < 0.9 else None
                email = contacts.email(p, 0.2) if rng.random() < 0.4 else None
                birth = _text(row["date_of_birth"])
                add("loyalty.members", sid, {
                    "card_number": f"LC{int(rng.integers(10**9, 10**10))}",
                    "fname": contacts.first_name(_text(row["first_name"]), 0.25),
                    "lname": _text(row["last_name"]),
                    "birth_year": birth[-4:] if birth and rng.random() < 0.7 else None,
                    "mobile": till_format(contacts.typo_digits(phone, 0.02) if phone else None, rng),
                    "email": contacts.typo_email(email, 0.04) if email else None,
                    "zip": p.zip})
        if p.handle:  # social: the people with a handle
            row = noisy("social", sid)
            first = contacts.first_name(_text(row["first_name"]) if row is not None else p.first, 0.4) or p.first
            last = (_text(row["last_name"]) if row is not None else None) or p.last
            display = [f"{first} {last}", f"{first} {last[0]}.", first, f"{first} {last}".lower(), p.handle][
                int(rng.choice(5, p=[0.45, 0.2, 0.15, 0.1, 0.1]))]
            handle = [f"@{p.handle}", p.handle, f"https://instagram.com/{p.handle}"][int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
            add("social.followers", sid, {
                "username": handle, "display_name": display,
                "email": contacts.email(p, 0.1) if rng.random() < 0.25 else None,
                "city": _text(row["city"]) if row is not None and rng.random() < 0.5 else None,
                "followed_at": f"20{int(rng.integers(18, 26))}-{int(rng.integers(1, 13)):02d}-15"})
    for hid, email in sorted(contacts.family_email.items()):  # the family address on the newsletter
        sid = contacts.members[hid][int(rng.integers(len(contacts.members[hid])))]
        add("esp.subscribers", sid, {"Email Address": email, "First Name": None, "Last Name": contacts.people[sid].last,
                                     "Phone Number": None, "LEID": str(100000 + len(rows["esp.subscribers"])),
                                     "OPTIN_TIME": "2020-01-01 10:00:00"})
    tables = {key: pa.Table.from_pylist(records).cast(pa.schema([(c, pa.string()) for c in records[0]]))
              for key, records in rows.items() if records}
    return CustomerLike(tables, mappings(), truth, describe(tables, truth, contacts, size, seed))


def mappings() -> dict[str, dict]:
    """How a user following destinations/profiles/README.md maps the four exports."""
    return {
        "crm.contacts": {
            "identifiers": {"Id": "customer_id:crm", "Email": "email", "Phone": "phone"},
            "traits": {"first_name": "FirstName", "last_name": "LastName", "birth_date": "Birthdate"},
            "address": {"line1": "MailingStreet", "city": "MailingCity", "region": "MailingState", "postal_code": "MailingPostalCode"},
            "cleaning": {"phone_region": "US", "date_formats": {"Birthdate": "%Y-%m-%d"}}},
        "esp.subscribers": {
            "identifiers": {"Email Address": "email", "Phone Number": "phone"},
            "traits": {"first_name": "First Name", "last_name": "Last Name"},
            "cleaning": {"phone_region": "US"}},
        "loyalty.members": {
            "identifiers": {"card_number": "loyalty_card", "mobile": "phone", "email": "email"},
            "traits": {"first_name": "fname", "last_name": "lname", "birth_year": "birth_year"},
            "address": {"postal_code": "zip"},
            "cleaning": {"phone_region": "US"}},
        "social.followers": {
            "identifiers": {"username": "social_handle", "email": "email"},
            "traits": {"full_name": "display_name"},
            "address": {"city": "city"},
            "cleaning": {"phone_region": "US"}},
    }


def describe(tables: dict[str, pa.Table], truth: dict[str, str], contacts: Contacts, size: int, seed: int) -> str:
    counts = ", ".join(f"{k} {t.num_rows}" for k, t in tables.items())
    per_person = Counter(truth.values())
    return (f"customer-like seed {seed} size {size}: {len(truth)} records of {len(per_person)} people ({counts}); "
            f"pseudopeople 2020 census sample at {NOISE_FACTOR}x default noise, one noisy copy per source; contact "
            f"layer: 1-3 emails per person from names and numbers, family emails in {len(contacts.family_email)} and "
            f"home phones in {len(contacts.home_phone)} households, stale (25%) and recycled (40% of those) phones, "
            f"national and international formats, nicknames from the nicknames package, handles from names, email "
            f"and digit typos, loyalty birth year only; truth simulant_id kept out of the tables")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    data = build(args.size, args.seed)
    print(data.description)
    for what, why in data.unmapped.items():
        print(f"not mapped: {what}: {why}")
    for key, table in data.tables.items():
        print(key, table.num_rows, "rows;", "columns:", ", ".join(table.column_names))


if __name__ == "__main__":
    main()
