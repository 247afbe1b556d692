"""One population of customers that every vendor sandbox draws its records from.

    from threadline.sandbox.people import population, members_of
    people = population(size=5000)          # seed 2026: the same people on every call
    buyers = members_of("shopify", 2000)    # the first 2000 people the shop has an account for

Why one population: real customer data overlaps. Kelly Neal is a contact in the CRM, signed
up to the newsletter as kelly.neal@gmail.com, follows the brand as @kneal1985, holds two
loyalty cards and has an open ticket about a damaged parcel. If every sandbox invented its
own people, identity resolution would find nothing to join. Here each vendor sandbox takes
the people its system knows (`members_of`) and renders them with its own quirks, so the same
person shows up in several vendors, differently each time, as in real exports.

Person `n` is made from its own `random.Random`, seeded by (seed, n): the same person for any
`size`, so a sandbox asked for 50 customers and one asked for 5000 share their first people.
Person 0 is always Kelly Neal, the persona of the README's demo, known to every system.
A few thousand people take well under a second; populations are cached per seed.

Quirks, and the real exports they mirror:

- Names: accents (Zoë, José, Jürgen, Côté), apostrophes (O'Brien), particles and hyphens
  (van der Berg, Gonzalez-Pérez); a formal name with nicknames: Katherine in the CRM is Kate
  in the shop (`Contact.first_name` is what a system was told).
- Emails: one to three per person: personal (freemail, mostly Gmail), work (employer's
  domain), an old one (aol.com and the like); about one person in fourteen shares a household
  inbox, an address and a landline with the next person (two people, one email: a join on
  email alone merges them). Each system knows the one it was given (`Contact.email`).
  Addresses are unique per person otherwise.
- Phones: E.164 here (`+15125550134`); a mobile, sometimes a landline, sometimes a stale old
  number, and a stale number is now and then someone else's current one (numbers are
  recycled). Sandboxes write them in their own formats.
- Postal addresses: mostly US, some GB, CA, DE; real city, region and postal code triples;
  ZIP codes with leading zeros (02110); apartments and flats; German street-number order.
- Birth dates for everyone (1950 to 2004): systems rarely know them.
- Social: about half have a handle, loosely made from the name and birth year (kneal1985),
  from the name (kelly_neal), or unrelated (moon_runner); a display name (full, initials,
  emoji) and a free-text location ("ATX", "NYC 🗽", "somewhere").
- Loyalty cards: twelve-digit numbers; about one member in five holds two or three.
- Behaviour, from a segment: loyal (buys every 8 to 14 weeks), regular (every 4 to 7 months),
  lapsed (bought every 2 to 4 months, then stopped 7 to 15 months ago), one-time, new (first order in
  the last two months), cart abandoner (started checkout, never bought) and prospect (no
  orders). Orders, checkouts (converted or abandoned), email opens and clicks, and service
  tickets run over the two years before `AS_OF` (2026-11-20). Some buyers abandoned a cart
  recently and bought anyway a few days later (they must leave an abandoned-cart audience).
- Consent with timestamps: email (subscribed, unsubscribed, cleaned after a bounce, a few
  unsubscribed then subscribed again: latest wins), SMS, advertising (granted, denied or never
  asked; denied more often in Germany), and CRM opt-outs (sticky: once opted out in the CRM,
  still opted out after a later re-subscribe at the email tool).
- Systems: which vendors know the person (`Person.systems`), driven by behaviour: the shop
  knows buyers, the help desk people with tickets, LoyaltyLion loyalty members, X people with
  a handle who follow the brand. Mailchimp holds the newsletter (campaigns every two weeks),
  Klaviyo the shop's promotions (weekly): an open belongs to one of them (`EmailEvent.esp`).
"""

from __future__ import annotations

import functools
import random
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

from typing import NamedTuple, TypeVar

from threadline.sandbox import people_data as data

T = TypeVar("T")

POPULATION_SEED = 2026
AS_OF = datetime(2026, 11, 20, tzinfo=UTC)  # the population's "today": every event is before it
HISTORY_START = AS_OF - timedelta(days=730)  # orders, tickets and consent changes begin here
KLAVIYO_CONNECTED = AS_OF - timedelta(days=216)  # Klaviyo set up: the list imported, the shop connected
KLAVIYO_SINCE = AS_OF - timedelta(days=126)  # Klaviyo's weekly promotions start here
MAILCHIMP_SINCE = AS_OF - timedelta(days=182)  # the newsletter's campaigns in Mailchimp's activity
ORDER_ID_BASE = 4_000_000_000_000

SYSTEMS = ("hubspot", "salesforce", "zendesk", "shopify", "mailchimp", "klaviyo", "x", "loyaltylion")
SEGMENTS = {"loyal": 0.05, "regular": 0.09, "lapsed": 0.09, "one_time": 0.18, "new": 0.03, "cart_abandoner": 0.04,
            "prospect": 0.52}
BUYERS = ("loyal", "regular", "lapsed", "one_time", "new")


class Address(NamedTuple):
    line1: str
    line2: str | None
    city: str
    region: str  # state or province code (TX, ON, BY); GB: ENG, SCT, WLS
    region_name: str
    postal_code: str
    country: str  # ISO 3166 alpha-2
    country_name: str


class Phone(NamedTuple):
    number: str  # E.164, +15125550134
    kind: str  # mobile | home
    stale: bool = False  # no longer the person's (and perhaps someone else's now)


class Email(NamedTuple):
    address: str
    kind: str  # personal | work | household | old


class Item(NamedTuple):
    sku: str
    title: str
    category: str
    price: float
    quantity: int


class Order(NamedTuple):
    id: int  # the shop's order id: unique, and larger for later orders
    at: datetime
    items: tuple[Item, ...]
    subtotal: float
    discount: float
    tax: float
    total: float  # what the customer paid: subtotal - discount + tax
    channel: str  # web | pos
    status: str  # paid | refunded (cancelled) | partially_refunded

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.category for i in self.items))


class Checkout(NamedTuple):
    at: datetime
    items: tuple[Item, ...]
    value: float
    order_id: int | None  # None: abandoned


class EmailEvent(NamedTuple):
    at: datetime
    action: str  # open | click | bounce
    esp: str  # mailchimp | klaviyo
    campaign_id: str
    subject: str
    url: str | None = None


class Ticket(NamedTuple):
    key: int  # unique in the population
    opened_at: datetime
    updated_at: datetime
    status: str  # new | open | pending | hold | solved | closed
    subject: str
    topic: str
    channel: str  # email | web | chat | phone
    priority: str | None
    order_id: int | None
    rating: str | None  # good | bad, on some solved tickets


class Consent(NamedTuple):
    status: str  # email: subscribed|unsubscribed|cleaned|never; sms: subscribed|not_subscribed; ads: granted|denied|unknown
    at: datetime | None  # when the status was set
    history: tuple[tuple[datetime, str], ...] = ()  # every change, oldest first (email only)

    def as_of(self, moment: datetime) -> tuple[str, datetime | None]:
        """The status and its time as a system that last synced at `moment` holds it."""
        if not self.history:
            return self.status, self.at
        for at, status in reversed(self.history):
            if at <= moment:
                return status, at
        return "never", None


class Social(NamedTuple):
    handle: str  # without @
    display_name: str
    location: str | None
    bio: str
    created_at: datetime


class Contact(NamedTuple):
    """How one system knows the person: what they typed there and when they arrived."""

    email: str | None
    phone: str | None  # E.164; the sandbox picks the format
    first_name: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Person:
    number: int
    first_name: str  # the formal one
    last_name: str
    nickname: str | None
    birth_date: date
    address: Address
    emails: tuple[Email, ...]  # personal first
    phones: tuple[Phone, ...]  # the current mobile first
    company: str | None
    job_title: str | None
    household: int | None  # the person this one shares an inbox, address and landline with
    social: Social | None
    loyalty_cards: tuple[str, ...]
    segment: str
    first_seen: datetime
    orders: tuple[Order, ...]
    checkouts: tuple[Checkout, ...]
    email_events: tuple[EmailEvent, ...]
    tickets: tuple[Ticket, ...]
    email_consent: Consent
    sms_consent: Consent
    ad_consent: Consent
    crm_opted_out_at: datetime | None
    shop_account: bool  # False: a guest at checkout (orders with an email, no customer record)
    systems: frozenset[str]
    contacts: Mapping[str, Contact] = field(default_factory=dict)  # system -> how it knows the person

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def email(self) -> str:
        return self.emails[0].address

    @property
    def mobile(self) -> str | None:
        return next((p.number for p in self.phones if p.kind == "mobile" and not p.stale), None)

    def email_of(self, kind: str) -> str | None:
        return next((e.address for e in self.emails if e.kind == kind), None)

    def lifetime_value(self) -> float:
        return round(sum(o.total for o in self.orders if o.status != "refunded"), 2)

    @property
    def abandoned_checkouts(self) -> tuple[Checkout, ...]:
        return tuple(c for c in self.checkouts if c.order_id is None)

    @property
    def open_tickets(self) -> tuple[Ticket, ...]:
        return tuple(t for t in self.tickets if t.status in ("new", "open", "pending", "hold"))


# ---------------------------------------------------------------------- the population


class _Population:
    """The people of one seed, made in order and kept: person n depends only on those before it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.people: list[Person] = []
        self.handles: set[str] = set()
        self.addresses: set[str] = set()
        self.lock = threading.Lock()

    def grow(self, size: int) -> list[Person]:
        with self.lock:
            while len(self.people) < size:
                n = len(self.people)
                previous = self.people[-1] if self.people else None
                self.people.append(_make_person(self, n, previous))
            return self.people


_POPULATIONS: dict[int, _Population] = {}
_POPULATIONS_LOCK = threading.Lock()


def _of(seed: int) -> _Population:
    with _POPULATIONS_LOCK:
        return _POPULATIONS.setdefault(seed, _Population(seed))


def population(seed: int = POPULATION_SEED, size: int = 5000) -> tuple[Person, ...]:
    """The first `size` people of the population of `seed` (the same ones on every call)."""
    return tuple(_of(seed).grow(size)[:size])


def members_of(system: str, count: int, seed: int = POPULATION_SEED,
               where: Callable[[Person], bool] | None = None) -> list[Person]:
    """The first `count` people `system` knows (and `where` accepts), in population order."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}: one of {', '.join(SYSTEMS)}")
    found: list[Person] = []
    pop = _of(seed)
    start = 0
    while len(found) < count:
        people = pop.grow(start + max(500, 2 * (count - len(found))))
        for person in people[start:]:
            if system in person.systems and (where is None or where(person)):
                found.append(person)
                if len(found) == count:
                    break
        start = len(people)
    return found


def format_phone(number: str, style: str) -> str:
    """An E.164 number as people and systems write it. Styles: e164 (+15125550134),
    international (+1 512-555-0134 / +44 20 7946 0958), national ((512) 555-0134 / 020 7946 0958),
    dotted (512.555.0134), digits (5125550134 / 02079460958)."""
    if style == "e164":
        return number
    if number.startswith("+1"):
        d = number[2:]
        return {"international": f"+1 {d[:3]}-{d[3:6]}-{d[6:]}", "national": f"({d[:3]}) {d[3:6]}-{d[6:]}",
                "dotted": f"{d[:3]}.{d[3:6]}.{d[6:]}", "digits": d}[style]
    code = "44" if number.startswith("+44") else "49"
    rest = number[1 + len(code):]
    if code == "44":  # 07700 900123, 020 7946 0958, 0161 496 0123
        cut = 4 if rest.startswith("7") else 2 if rest.startswith(("20", "29")) else 3
        tail = rest[cut:]
        tail = tail if rest.startswith("7") else f"{tail[:-4]} {tail[-4:]}"
    else:  # 0151 12345678, 030 1234567, 0221 123456
        cut = 3 if rest.startswith(("15", "16", "17", "221", "341")) else 2
        tail = rest[cut:]
    head = rest[:cut]
    return {"international": f"+{code} {head} {tail}", "national": f"0{head} {tail}",
            "dotted": f"0{head}.{tail.replace(' ', '.')}", "digits": f"0{rest}"}[style]


def population_seed(sandbox_seed: int) -> int:
    """The population a vendor sandbox with this `seed` draws from: seed 0 is population 2026,
    so sandboxes started with one seed share their people."""
    return POPULATION_SEED + sandbox_seed


def shopify_customer_id(person: Person) -> int:
    """The person's customer id at the shop: LoyaltyLion (a Shopify app) refers to it as
    `merchant_id`, so it is the population's, not one sandbox's."""
    return 7_100_000_000_000 + person.number * 11


def loyalty_points(person: Person) -> int:
    """Points the loyalty program has approved for the person: 5 per unit spent; 0 for non-members."""
    return int(person.lifetime_value() * 5) if person.loyalty_cards else 0


def loyalty_tier(person: Person) -> str | None:
    """The loyalty tier (Bronze below 500 points, Silver below 2000, Gold above), as every
    system that copies it from the loyalty program shows it; None for non-members."""
    if not person.loyalty_cards:
        return None
    points = loyalty_points(person)
    return "Gold" if points >= 2000 else "Silver" if points >= 500 else "Bronze"


def in_threes(moments: Sequence[datetime]) -> list[datetime]:
    """`moments` (to the second), each moved forward to the latest of its group of three in time
    order: records share `updated_at` values as when a batch job touches several at once, so
    incremental cursors land on ties, as they do in real APIs. Order is kept; nothing moves back."""
    order = sorted(range(len(moments)), key=moments.__getitem__)
    out = [m.replace(microsecond=0) for m in moments]
    for start in range(0, len(order), 3):
        group = order[start:start + 3]
        latest = max(out[i] for i in group)
        for i in group:
            out[i] = latest
    return out


def ascii_fold(text: str) -> str:
    """Letters without accents, as people type them into an email or a handle (ß -> ss, ø -> o)."""
    text = text.translate(_FOLD)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


_FOLD = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ı": "i", "æ": "ae", "œ": "oe"})
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"})


# ---------------------------------------------------------------------- one person

_KELLY = {"first_name": "Kelly", "last_name": "Neal", "birth_date": date(1985, 4, 12), "country": "US",
          "address": Address("2210 S 1st St", "Apt 4B", "Austin", "TX", "Texas", "78704", "US", "United States"),
          "emails": (Email("kelly.neal@gmail.com", "personal"), Email("kelly.neal@brightline-logistics.example", "work"),
                     Email("kneal85@aol.com", "old")),
          "phones": (Phone("+15125550134", "mobile"), Phone("+15124410987", "mobile", stale=True)),
          "company": "Brightline Logistics", "job_title": "Office Manager",
          "social": ("kneal1985", "Kelly Neal ☕", "Austin, TX", "Home barista ☕", datetime(2011, 3, 2, 18, 4, tzinfo=UTC)),
          "loyalty_cards": ("627400118514", "627400297730")}


def _make_person(pop: _Population, n: int, previous: Person | None) -> Person:
    rng = random.Random(pop.seed * 1_000_003 + n)
    kelly = _KELLY if n == 0 else None
    partner = previous is not None and previous.household == n
    if kelly:
        country = "US"
    elif partner:
        country = previous.address.country
    else:
        country = _weighted(rng, {c: share for c, (share, _) in data.COUNTRIES.items()})
    first = kelly["first_name"] if kelly else _pick(rng, data.FIRST_NAMES[country])
    if kelly:
        last = kelly["last_name"]
    elif partner and rng.random() < 0.6:
        last = previous.last_name
    else:
        last = _pick(rng, data.LAST_NAMES[country])
    shorts = data.NICKNAMES.get(first, ())
    nickname = _pick(rng, shorts) if shorts and rng.random() < 0.75 else None
    birth = kelly["birth_date"] if kelly else date(1950, 1, 1) + timedelta(days=_int(rng, 0, 55 * 365))
    address = kelly["address"] if kelly else previous.address if partner else _address(rng, country)
    company, title = (kelly["company"], kelly["job_title"]) if kelly else _job(rng)
    starts_household = not kelly and not partner and rng.random() < 0.075
    household = n + 1 if starts_household else (n - 1 if partner else None)

    if kelly:
        emails, phones = kelly["emails"], kelly["phones"]
        pop.addresses.update(e.address for e in emails)
    else:
        emails = _emails(rng, pop, first, nickname, last, birth, country, company, previous if partner else None,
                         starts_household)
        phones = _phones(rng, country, address, previous, partner)

    segment = "loyal" if kelly else _weighted(rng, SEGMENTS)
    first_seen = _first_seen(rng, segment)
    favourites = _favourites(rng)
    orders, checkouts = _purchases(rng, n, segment, first_seen, country, favourites)
    if orders:
        first_seen = min(first_seen, orders[0].at - timedelta(days=rng.uniform(0, 3)))
    if checkouts:
        first_seen = min(first_seen, checkouts[0].at - timedelta(hours=rng.uniform(1, 48)))

    social = _social(rng, pop, first, nickname, last, birth, address, kelly)
    wants_tickets = bool(kelly) or rng.random() < (0.35 if orders else 0.08)
    tickets = _tickets(rng, n, orders, first_seen, recent_open=bool(kelly)) if wants_tickets else ()
    systems = set(_systems(rng, segment, orders, checkouts, company, tickets, social)) if not kelly else set(SYSTEMS)
    shop_account = bool(kelly) or rng.random() < (0.88 if orders else 0.6)
    cards = kelly["loyalty_cards"] if kelly else (_cards(rng) if "loyaltylion" in systems else ())

    on_list = bool(systems & {"mailchimp", "klaviyo"})
    email_consent = _email_consent(rng, segment, on_list, first_seen, keep_subscribed=bool(kelly))
    events = _email_events(rng, n, segment, systems, email_consent)
    sms = _sms_consent(rng, phones, first_seen)
    ads = Consent("granted", first_seen + timedelta(days=1)) if kelly else _ad_consent(rng, country, first_seen)
    crm_opt_out = _crm_opt_out(rng, email_consent)

    person = Person(
        number=n, first_name=first, last_name=last, nickname=nickname, birth_date=birth, address=address,
        emails=emails, phones=phones, company=company, job_title=title, household=household, social=social,
        loyalty_cards=cards, segment=segment, first_seen=first_seen, orders=orders, checkouts=checkouts,
        email_events=events, tickets=tickets, email_consent=email_consent, sms_consent=sms, ad_consent=ads,
        crm_opted_out_at=crm_opt_out, shop_account=shop_account, systems=frozenset(systems),
    )
    object.__setattr__(person, "contacts", MappingProxyType(_contacts(rng, person)))
    return person


# Picks with rng.random() alone: several times faster than choice() and randrange(), and
# a few hundred picks a person is what the population's speed depends on.

def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def _int(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high)."""
    return low + int(rng.random() * (high - low))


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    roll = rng.random() * sum(weights.values())
    for key, weight in weights.items():
        roll -= weight
        if roll < 0:
            return key
    return key


def _address(rng: random.Random, country: str) -> Address:
    city, region, region_name, postcodes, _ = _pick(rng, data.PLACES[country])
    street, number = _pick(rng, data.STREETS[country]), _int(rng, 1, 4000 if country in ("US", "CA") else 120)
    line2 = None
    if country == "DE":
        line1 = f"{street} {number}"
        if rng.random() < 0.3:
            line2 = f"{_int(rng, 1, 5)}. OG"
    elif country == "GB":
        line1 = f"{number} {street}"
        if rng.random() < 0.35:
            line1, line2 = f"Flat {_int(rng, 1, 30)}", line1
    else:
        line1 = f"{number} {street}"
        if rng.random() < 0.3:
            line2 = _pick(rng, ["Apt ", "Unit ", "#", "Suite "]) + f"{_int(rng, 1, 40)}{_pick(rng, ['', '', 'A', 'B'])}"
    country_name = data.COUNTRIES[country][1]
    return Address(line1, line2, city, region, region_name, _pick(rng, postcodes), country, country_name)


def _job(rng: random.Random) -> tuple[str | None, str | None]:
    if rng.random() < 0.38:
        return _pick(rng, data.COMPANIES)[0], _pick(rng, data.JOB_TITLES)
    return None, None


@functools.lru_cache(maxsize=8192)
def _local(text: str, german: bool = False) -> str:
    """A name as an email local part or handle: ASCII, no spaces or apostrophes."""
    if german:
        text = text.translate(_GERMAN)
    return "".join(ch for ch in ascii_fold(text).lower() if ch.isalnum() or ch == "-")


def _emails(rng: random.Random, pop: _Population, first: str, nickname: str | None, last: str, birth: date,
            country: str, company: str | None, partner_of: Person | None, starts_household: bool) -> tuple[Email, ...]:
    german = country == "DE" and rng.random() < 0.5
    f, l, yy, year = _local(first, german), _local(last, german).replace("-", ""), f"{birth.year % 100:02d}", birth.year
    nick = _local(nickname) if nickname else f
    style = rng.random()
    local = (f"{f}.{l}" if style < 0.3 else f"{f}{l}" if style < 0.42 else f"{f[0]}{l}" if style < 0.52
             else f"{f}.{l}{yy}" if style < 0.64 else f"{nick}{l}{year}" if style < 0.72 else f"{l}.{f}" if style < 0.8
             else f"{f}_{l}" if style < 0.88 else f"{nick}.{l}{_int(rng, 1, 99)}")
    domains = data.PERSONAL_DOMAINS[country]
    emails = [Email(_unique(rng, pop, local, _pick(rng, domains)), "personal")]
    if partner_of is not None:
        shared = partner_of.email_of("household")
        if shared:
            emails.append(Email(shared, "household"))
    elif starts_household:
        local = _pick(rng, [f"{l}family", f"the{l}s", f"{l}.household", f"{l}home{yy}"])
        emails.append(Email(_unique(rng, pop, local, _pick(rng, domains)), "household"))
    if company:
        domain = next(d for c, d in data.COMPANIES if c == company)
        emails.append(Email(_unique(rng, pop, _pick(rng, [f"{f}.{l}", f"{f[0]}{l}", f"{f}"]), domain), "work"))
    if rng.random() < 0.15:
        emails.append(Email(_unique(rng, pop, _pick(rng, [f"{f}{l}{yy}", f"{nick}{year}", f"{l}{f[0]}"]),
                                    _pick(rng, data.OLD_DOMAINS)), "old"))
    return tuple(emails)


def _unique(rng: random.Random, pop: _Population, local: str, domain: str) -> str:
    address = f"{local}@{domain}"
    while address in pop.addresses:  # two people never share a personal address by accident
        address = f"{local}{_int(rng, 2, 999)}@{domain}"
    pop.addresses.add(address)
    return address


def _phone_number(rng: random.Random, country: str, area: str, mobile: bool) -> str:
    if country in ("US", "CA"):
        exchange = _int(rng, 201, 999)
        while exchange == 555 or exchange % 100 == 11:
            exchange = _int(rng, 201, 999)
        return f"+1{area}{exchange}{_int(rng, 0, 10000):04d}"
    code = "44" if country == "GB" else "49"
    if mobile:
        prefix = _pick(rng, data.MOBILE_PREFIXES[country])
        digits = 10 - len(prefix) if country == "GB" else 8
        return f"+{code}{prefix}{_int(rng, 10 ** (digits - 1), 10 ** digits)}"
    digits = 10 - len(area) if country == "GB" else 7 if len(area) == 2 else 6
    first = _pick(rng, data.LOCAL_FIRST_DIGITS.get(area, "2345678"))
    return f"+{code}{area}{first}{_int(rng, 0, 10 ** (digits - 1)):0{digits - 1}d}"


def _phones(rng: random.Random, country: str, address: Address, previous: Person | None,
            partner: bool) -> tuple[Phone, ...]:
    areas = next(p[4] for p in data.PLACES[country] if p[0] == address.city)
    phones = []
    if rng.random() < 0.95:
        phones.append(Phone(_phone_number(rng, country, _pick(rng, areas), mobile=True), "mobile"))
    landline = previous and partner and next((p for p in previous.phones if p.kind == "home"), None)
    if landline:
        phones.append(landline)  # the household's one landline
    elif rng.random() < 0.22:
        phones.append(Phone(_phone_number(rng, country, _pick(rng, areas), mobile=False), "home"))
    if rng.random() < 0.15:
        recycled = previous is not None and not partner and previous.mobile and rng.random() < 0.25
        old = previous.mobile if recycled else _phone_number(rng, country, _pick(rng, areas), mobile=True)
        phones.append(Phone(old, "mobile", stale=True))  # the number they had before
    return tuple(phones)


def _social(rng: random.Random, pop: _Population, first: str, nickname: str | None, last: str, birth: date,
            address: Address, kelly: dict | None) -> Social | None:
    if kelly:
        handle, display, location, bio, created = kelly["social"]
        pop.handles.add(handle)
        return Social(handle, display, location, bio, created)
    if rng.random() > (0.7 if birth.year >= 1980 else 0.45):
        return None
    f, l, given = _local(first), _local(last).replace("-", ""), nickname or first
    g = _local(given)
    style = rng.random()
    if style < 0.35:
        handle = f"{f[0]}{l}{birth.year}"  # kneal1985
    elif style < 0.6:
        handle = _pick(rng, [f"{g}{l}", f"{g}_{l}", f"{g}{l}{_int(rng, 1, 99)}"])
    elif style < 0.75:
        handle = f"{g}_{_int(rng, 1, 100)}"
    else:
        handle = f"{_pick(rng, ['', 'the', 'its', 'just'])}{_pick(rng, data.HANDLE_WORDS)}_{_pick(rng, data.HANDLE_WORDS)}"
    handle = handle[:15]
    while handle.lower() in pop.handles:  # handles are unique on X
        handle = f"{handle[:11]}{_int(rng, 100, 9999)}"
    pop.handles.add(handle.lower())
    shape = rng.random()
    display = (f"{given} {last}" if shape < 0.45 else f"{given} {last[0]}." if shape < 0.6
               else f"{given} {_pick(rng, ['☕', '✨', '🌱', '🏳️‍🌈'])}" if shape < 0.7 else given if shape < 0.8
               else handle if shape < 0.9 else f"{given[0]}. {last}")
    place = rng.random()
    city = address.city
    location = (None if place < 0.3 else city if place < 0.55 else f"{city}, {address.region}" if place < 0.7
                else _pick(rng, data.NICKNAMED_CITIES.get(city, (address.region_name,))) if place < 0.85
                else address.country_name if place < 0.93 else _pick(rng, data.NOWHERE))
    created = datetime(2008, 1, 1, tzinfo=UTC) + timedelta(seconds=_int(rng, 0, 16 * 365 * 86400))
    return Social(handle, display, location, _pick(rng, data.BIOS), created)


def _cards(rng: random.Random) -> tuple[str, ...]:
    count = 1 if rng.random() < 0.8 else _pick(rng, [2, 2, 3])
    return tuple(f"6274{_int(rng, 0, 10 ** 8):08d}" for _ in range(count))


# ---------------------------------------------------------------------- behaviour


def _at(rng: random.Random, day: datetime) -> datetime:
    """A moment in the waking hours of `day`."""
    return day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(seconds=_int(rng, 7 * 3600, 23 * 3600))


def _soon_after(rng: random.Random, since: datetime, days: float) -> datetime:
    """A moment up to `days` after `since`, and before `AS_OF`."""
    room = min(days * 86400.0, (AS_OF - since).total_seconds() - 3600)
    return since + timedelta(seconds=rng.uniform(0, max(room, 0)))


def _first_seen(rng: random.Random, segment: str) -> datetime:
    """When the brand first heard of the person (a signup, an account, a first order: the
    earliest of them wins once the orders are made)."""
    if segment in ("prospect", "cart_abandoner", "new"):
        back = {"prospect": (30, 1100), "cart_abandoner": (20, 400), "new": (60, 120)}[segment]
        return _at(rng, AS_OF - timedelta(days=rng.uniform(*back)))
    return _at(rng, HISTORY_START - timedelta(days=rng.uniform(0, 400)))


def _favourites(rng: random.Random) -> dict[str, float]:
    weights = {"coffee": 6.0, "brewing": 1.0, "accessories": 1.5, "tea": 0.8, "gift_cards": 0.3, "subscriptions": 0.8}
    for category in rng.sample(data.CATEGORIES, k=_pick(rng, [1, 1, 2])):
        weights[category] *= rng.uniform(2.5, 6)
    return weights


_BY_CATEGORY = {c: [p for p in data.CATALOG if p[2] == c] for c in data.CATEGORIES}
_TAX = {"US": 0.07, "CA": 0.13, "GB": 0.0, "DE": 0.0}  # GB and DE prices include VAT


def _basket(rng: random.Random, favourites: dict[str, float]) -> tuple[Item, ...]:
    items: dict[str, Item] = {}
    for _ in range(_pick(rng, [1, 1, 1, 2, 2, 3])):
        sku, title, category, price = _pick(rng, _BY_CATEGORY[_weighted(rng, favourites)])
        quantity = _pick(rng, [1, 1, 1, 2, 3]) if category == "coffee" else 1
        items[sku] = Item(sku, title, category, price, quantity)
    return tuple(items.values())


def _order(rng: random.Random, n: int, at: datetime, items: tuple[Item, ...], country: str) -> Order:
    subtotal = round(sum(i.price * i.quantity for i in items), 2)
    discount = round(subtotal * 0.1, 2) if rng.random() < 0.12 else 0.0
    tax = round((subtotal - discount) * _TAX[country], 2)
    roll = rng.random()
    status = "refunded" if roll < 0.04 else "partially_refunded" if roll < 0.06 else "paid"
    order_id = ORDER_ID_BASE + int((at - HISTORY_START).total_seconds()) * 100_000 + n % 100_000
    return Order(order_id, at, items, subtotal, discount, tax, round(subtotal - discount + tax, 2),
                 "pos" if rng.random() < 0.12 else "web", status)


def _order_days(rng: random.Random, segment: str) -> list[datetime]:
    span = (AS_OF - HISTORY_START).days
    if segment in ("loyal", "regular", "lapsed"):
        gap = {"loyal": (55, 95), "regular": (120, 210), "lapsed": (60, 120)}[segment]
        every = rng.uniform(*gap)
        stop = AS_OF - timedelta(days=rng.uniform(210, 460)) if segment == "lapsed" else AS_OF - timedelta(days=1)
        day = HISTORY_START + timedelta(days=rng.uniform(0, every if segment != "lapsed" else 60))
        days = []
        while day < stop:
            days.append(day)
            day += timedelta(days=every * rng.uniform(0.75, 1.3))
        return days
    if segment == "one_time":
        return [HISTORY_START + timedelta(days=rng.uniform(0, span - 20))]
    if segment == "new":
        first = AS_OF - timedelta(days=rng.uniform(4, 60))
        return [first] + ([first + timedelta(days=rng.uniform(2, 3))] if rng.random() < 0.3 else [])
    return []


def _purchases(rng: random.Random, n: int, segment: str, first_seen: datetime, country: str,
               favourites: dict[str, float]) -> tuple[tuple[Order, ...], tuple[Checkout, ...]]:
    orders, checkouts = [], []
    for day in _order_days(rng, segment):
        order = _order(rng, n, _at(rng, day), _basket(rng, favourites), country)
        orders.append(order)
        if order.channel == "web" and rng.random() < 0.85:
            started = order.at - timedelta(minutes=rng.uniform(3, 45))
            checkouts.append(Checkout(started, order.items, order.subtotal, order.id))
    recent_cart = segment == "cart_abandoner" or (segment in BUYERS and rng.random() < 0.18) or \
        (segment == "prospect" and rng.random() < 0.04)
    if recent_cart:
        for _ in range(_pick(rng, [1, 1, 2]) if segment == "cart_abandoner" else 1):
            at = _at(rng, AS_OF - timedelta(days=rng.uniform(1, 40 if segment == "prospect" else 25)))
            items = _basket(rng, favourites)
            checkouts.append(Checkout(at, items, round(sum(i.price * i.quantity for i in items), 2), None))
            if segment in BUYERS and rng.random() < 0.4 and at < AS_OF - timedelta(days=6):  # came back and bought
                bought = _order(rng, n, at + timedelta(days=rng.uniform(1, 5)), items, country)
                orders.append(bought)
                checkouts.append(Checkout(bought.at - timedelta(minutes=rng.uniform(3, 30)), items, bought.subtotal,
                                          bought.id))
    orders.sort(key=lambda o: o.at)
    checkouts.sort(key=lambda c: c.at)
    return tuple(orders), tuple(checkouts)


def _tickets(rng: random.Random, n: int, orders: tuple[Order, ...], first_seen: datetime,
             recent_open: bool) -> tuple[Ticket, ...]:
    tickets = []
    count = 1 if rng.random() < 0.7 else _pick(rng, [2, 2, 3])
    for k in range(count):
        order = _pick(rng, orders) if orders else None
        if order is not None:
            opened = order.at + timedelta(days=rng.uniform(1, 20))
            subject, topic = _pick(rng, data.TICKET_SUBJECTS)
        else:
            opened = first_seen + timedelta(days=rng.uniform(0, 30))
            subject, topic = _pick(rng, data.PRESALE_SUBJECTS)
        if recent_open and k == 0:
            opened, subject, topic = AS_OF - timedelta(days=rng.uniform(2, 6)), "Order arrived damaged", "damaged"
            order = orders[-1] if orders else None
        if opened >= AS_OF:
            opened = AS_OF - timedelta(hours=rng.uniform(2, 60))
        age = (AS_OF - opened).days
        if (recent_open and k == 0) or (age < 10 and rng.random() < 0.85):
            status = _pick(rng, ["new", "open", "open", "pending"])
        elif age < 40 and rng.random() < 0.3:
            status = _pick(rng, ["open", "pending", "hold"])
        else:
            status = "closed" if age > 30 and rng.random() < 0.6 else "solved"
            if rng.random() < 0.03:
                status = "pending"  # waiting on the customer for months
        done = status in ("solved", "closed")
        updated = opened + timedelta(days=rng.uniform(0.05, 6) if done else rng.uniform(0, min(age, 3)))
        rating = None
        if done and rng.random() < 0.4:
            rating = "bad" if rng.random() < (0.45 if topic in ("damaged", "delivery") else 0.15) else "good"
        tickets.append(Ticket(n * 10 + k, opened, min(updated, AS_OF - timedelta(minutes=5)), status, subject, topic,
                              _pick(rng, ["email", "email", "web", "chat", "phone"]),
                              _pick(rng, [None, "low", "normal", "normal", "high", "urgent"]),
                              order.id if order else None, rating))
    return tuple(sorted(tickets, key=lambda t: t.opened_at))


def _systems(rng: random.Random, segment: str, orders: tuple[Order, ...], checkouts: tuple[Checkout, ...],
             company: str | None, tickets: tuple[Ticket, ...], social: Social | None) -> Iterable[str]:
    buyer = bool(orders)
    if buyer or checkouts or rng.random() < 0.15:
        yield "shopify"
    if rng.random() < (0.72 if buyer else 0.62):
        yield "hubspot"
    if rng.random() < (0.6 if company else 0.35 if segment in ("loyal", "regular") else 0.12):
        yield "salesforce"
    if tickets or rng.random() < (0.35 if buyer else 0.18):  # help-centre accounts without a ticket
        yield "zendesk"
    if rng.random() < (0.55 if buyer else 0.5 if checkouts else 0.38):
        yield "mailchimp"
    if rng.random() < (0.5 if buyer else 0.65 if checkouts else 0.2):
        yield "klaviyo"
    if social is not None and rng.random() < 0.85:
        yield "x"
    if rng.random() < ({"loyal": 0.97, "regular": 0.92}.get(segment, 0.82) if buyer else 0.3 if checkouts else 0.2):
        yield "loyaltylion"


def _email_consent(rng: random.Random, segment: str, on_list: bool, first_seen: datetime,
                   keep_subscribed: bool) -> Consent:
    if not on_list:
        return Consent("never", None)
    signup = _soon_after(rng, first_seen, 20)
    history = [(signup, "subscribed")]
    roll = rng.random()
    unsubscribe = 0.3 if segment == "lapsed" else 0.14
    later = lambda since: since + (AS_OF - since) * rng.uniform(0.1, 0.95)  # noqa: E731
    if keep_subscribed:
        pass
    elif roll < unsubscribe:
        history.append((later(signup), "unsubscribed"))
    elif roll < unsubscribe + 0.05:
        history.append((later(signup), "cleaned"))  # the address bounced hard
    elif roll < unsubscribe + 0.1:
        out = later(signup)
        history += [(out, "unsubscribed"), (later(out), "subscribed")]  # changed their mind
    last_at, status = history[-1]
    return Consent(status, last_at, tuple(history))


def _campaigns(esp: str) -> list[tuple[str, datetime, str]]:
    every, since, subjects = ((14, MAILCHIMP_SINCE, data.NEWSLETTER_SUBJECTS) if esp == "mailchimp"
                              else (7, KLAVIYO_SINCE, data.PROMO_SUBJECTS))
    sends = []
    at = since + timedelta(hours=15)
    k = 0
    while at < AS_OF:
        sends.append((f"{'mc' if esp == 'mailchimp' else 'kl'}-{at:%Y%m%d}", at, subjects[k % len(subjects)]))
        at += timedelta(days=every)
        k += 1
    return sends


CAMPAIGNS = {esp: _campaigns(esp) for esp in ("mailchimp", "klaviyo")}  # esp -> (campaign id, sent at, subject)
_OPEN_RATES = {"loyal": (0.3, 0.8), "regular": (0.15, 0.5), "new": (0.2, 0.6), "lapsed": (0.0, 0.15),
               "one_time": (0.0, 0.3), "cart_abandoner": (0.1, 0.4), "prospect": (0.0, 0.4)}


def _email_events(rng: random.Random, n: int, segment: str, systems: set[str], consent: Consent) -> tuple[EmailEvent, ...]:
    if consent.status == "never":
        return ()
    opens = rng.uniform(*_OPEN_RATES[segment])
    clicks = rng.uniform(0.05, 0.35)
    events = []
    for esp in ("mailchimp", "klaviyo"):
        if esp not in systems:
            continue
        for campaign, sent, subject in CAMPAIGNS[esp]:
            status, _ = consent.as_of(sent)
            if status == "cleaned":
                cleaned_at = next(at for at, s in consent.history if s == "cleaned")
                if sent - cleaned_at < timedelta(days=14 if esp == "mailchimp" else 7):
                    events.append(EmailEvent(sent + timedelta(minutes=1), "bounce", esp, campaign, subject))
                continue
            if status != "subscribed" or rng.random() >= opens:
                continue
            seen = sent + timedelta(minutes=rng.expovariate(1 / 600))
            if seen >= AS_OF:
                continue
            events.append(EmailEvent(seen, "open", esp, campaign, subject))
            if rng.random() < clicks:
                events.append(EmailEvent(seen + timedelta(seconds=_int(rng, 5, 300)), "click", esp, campaign,
                                         subject, "https://threadline.example/" + campaign))
    return tuple(sorted(events, key=lambda e: e.at))


def _sms_consent(rng: random.Random, phones: tuple[Phone, ...], first_seen: datetime) -> Consent:
    if not any(p.kind == "mobile" and not p.stale for p in phones):
        return Consent("not_subscribed", None)
    if rng.random() < 0.2:
        return Consent("subscribed", _soon_after(rng, first_seen, 200))
    return Consent("not_subscribed", None)


def _ad_consent(rng: random.Random, country: str, first_seen: datetime) -> Consent:
    roll = rng.random()
    denied = 0.45 if country == "DE" else 0.22
    at = _soon_after(rng, first_seen, 300)
    if roll < denied:
        return Consent("denied", at)
    if roll < 0.72:
        return Consent("granted", at)
    return Consent("unknown", None)


def _crm_opt_out(rng: random.Random, consent: Consent) -> datetime | None:
    out = next((at for at, status in consent.history if status == "unsubscribed"), None)
    if out is not None and rng.random() < 0.8:
        return out + timedelta(hours=rng.uniform(0.1, 30))  # the CRM sync picked it up, and keeps it
    if rng.random() < 0.03:
        return AS_OF - timedelta(days=rng.uniform(1, 700))  # asked the sales team directly
    return None


# ---------------------------------------------------------------------- how each system knows them

# system -> weights of the email kind it was given (a missing kind falls back to personal)
_EMAIL_KINDS = {
    "shopify": {"personal": 0.8, "household": 0.15, "work": 0.05},
    "loyaltylion": {"personal": 0.85, "household": 0.1, "work": 0.05},
    "mailchimp": {"personal": 0.72, "household": 0.14, "work": 0.08, "old": 0.06},
    "klaviyo": {"personal": 0.85, "household": 0.1, "work": 0.05},
    "hubspot": {"personal": 0.6, "work": 0.32, "old": 0.08},
    "salesforce": {"work": 0.8, "personal": 0.2},
    "zendesk": {"personal": 0.7, "work": 0.2, "old": 0.1},
}
# system -> (share that was given a phone at all, share of those given a stale one)
_PHONE_GIVEN = {"shopify": (0.6, 0.05), "loyaltylion": (0.8, 0.05), "mailchimp": (0.35, 0.1), "klaviyo": (0.5, 0.05),
                "hubspot": (0.75, 0.15), "salesforce": (0.85, 0.2), "zendesk": (0.6, 0.1)}
_NICKNAME_USE = {"shopify": 0.6, "loyaltylion": 0.6, "mailchimp": 0.5, "klaviyo": 0.6, "hubspot": 0.3,
                 "salesforce": 0.1, "zendesk": 0.5, "x": 0.7}


def _contacts(rng: random.Random, person: Person) -> dict[str, Contact]:
    by_kind = {e.kind: e.address for e in reversed(person.emails)}
    first_event = {
        "shopify": min([o.at for o in person.orders] + [c.at for c in person.checkouts], default=person.first_seen),
        "zendesk": person.tickets[0].opened_at if person.tickets else person.first_seen,
        "mailchimp": person.email_consent.history[0][0] if person.email_consent.history else person.first_seen,
        "loyaltylion": person.orders[0].at if person.orders else person.first_seen,
    }
    imported = KLAVIYO_CONNECTED + timedelta(seconds=rng.uniform(0, 7200))  # the list was imported in one go
    first_event["klaviyo"] = max(first_event["mailchimp"], imported)
    contacts = {}
    for system in SYSTEMS:
        if system not in person.systems:
            continue
        email = None
        if system != "x":
            kind = _weighted(rng, _EMAIL_KINDS[system])
            email = by_kind.get(kind, person.email)
            if system == "loyaltylion" and "shopify" in contacts:
                email = contacts["shopify"].email  # a Shopify app: it has the shop's address
        phone = None
        given, stale_share = _PHONE_GIVEN.get(system, (0, 0))
        if person.phones and rng.random() < given:
            stale = [p.number for p in person.phones if p.stale]
            current = [p.number for p in person.phones if not p.stale]
            phone = _pick(rng, stale) if stale and (rng.random() < stale_share or not current) else \
                (current[0] if rng.random() < 0.85 or len(current) == 1 else current[-1])
        first = person.nickname if person.nickname and rng.random() < _NICKNAME_USE[system] else person.first_name
        since = first_event.get(system, person.first_seen - timedelta(days=rng.uniform(0, 20)))
        contacts[system] = Contact(email, phone, first, min(since, AS_OF - timedelta(hours=1)))
    return contacts
