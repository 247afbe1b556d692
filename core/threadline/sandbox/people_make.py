"""How one person of the shared population (`threadline.sandbox.people`) is made: who they
are (names, emails, phones, address, handle, cards), what they did (orders, checkouts, email
opens, tickets), what they consented to, and how each system knows them.

Every pick comes from the person's own `random.Random`; the few things that depend on earlier
people (unique addresses and handles, a household shared with the previous person, a phone
number recycled from them) only look back, so person n is the same for any population size.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import TypeVar

from threadline.sandbox import people_data as data
from threadline.sandbox.people_model import (
    AS_OF,
    BUYERS,
    HISTORY_START,
    KLAVIYO_CONNECTED,
    KLAVIYO_SINCE,
    MAILCHIMP_SINCE,
    ORDER_ID_BASE,
    SEGMENTS,
    SYSTEMS,
    Address,
    Checkout,
    Consent,
    Contact,
    Email,
    EmailEvent,
    Item,
    Order,
    Person,
    Phone,
    Social,
    Ticket,
)

T = TypeVar("T")


class Taken:
    """What earlier people of a population already hold: addresses and handles are unique."""

    def __init__(self) -> None:
        self.addresses: set[str] = set()
        self.handles: set[str] = set()


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


def make_person(seed: int, n: int, previous: Person | None, taken: Taken) -> Person:
    """Person `n` of the population of `seed`; `previous` is person n - 1."""
    rng = random.Random(seed * 1_000_003 + n)
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
        taken.addresses.update(e.address for e in emails)
    else:
        emails = _emails(rng, taken, first, nickname, last, birth, country, company, previous if partner else None,
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

    social = _social(rng, taken, first, nickname, last, birth, address, kelly)
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


def _emails(rng: random.Random, taken: Taken, first: str, nickname: str | None, last: str, birth: date,
            country: str, company: str | None, partner_of: Person | None, starts_household: bool) -> tuple[Email, ...]:
    german = country == "DE" and rng.random() < 0.5
    f, l, yy, year = _local(first, german), _local(last, german).replace("-", ""), f"{birth.year % 100:02d}", birth.year
    nick = _local(nickname) if nickname else f
    style = rng.random()
    local = (f"{f}.{l}" if style < 0.3 else f"{f}{l}" if style < 0.42 else f"{f[0]}{l}" if style < 0.52
             else f"{f}.{l}{yy}" if style < 0.64 else f"{nick}{l}{year}" if style < 0.72 else f"{l}.{f}" if style < 0.8
             else f"{f}_{l}" if style < 0.88 else f"{nick}.{l}{_int(rng, 1, 99)}")
    domains = data.PERSONAL_DOMAINS[country]
    emails = [Email(_unique(rng, taken, local, _pick(rng, domains)), "personal")]
    if partner_of is not None:
        shared = partner_of.email_of("household")
        if shared:
            emails.append(Email(shared, "household"))
    elif starts_household:
        local = _pick(rng, [f"{l}family", f"the{l}s", f"{l}.household", f"{l}home{yy}"])
        emails.append(Email(_unique(rng, taken, local, _pick(rng, domains)), "household"))
    if company:
        domain = next(d for c, d in data.COMPANIES if c == company)
        emails.append(Email(_unique(rng, taken, _pick(rng, [f"{f}.{l}", f"{f[0]}{l}", f"{f}"]), domain), "work"))
    if rng.random() < 0.15:
        emails.append(Email(_unique(rng, taken, _pick(rng, [f"{f}{l}{yy}", f"{nick}{year}", f"{l}{f[0]}"]),
                                    _pick(rng, data.OLD_DOMAINS)), "old"))
    return tuple(emails)


def _unique(rng: random.Random, taken: Taken, local: str, domain: str) -> str:
    address = f"{local}@{domain}"
    while address in taken.addresses:  # two people never share a personal address by accident
        address = f"{local}{_int(rng, 2, 999)}@{domain}"
    taken.addresses.add(address)
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


_NOT_IN_HANDLE = re.compile(r"[^A-Za-z0-9_]")


def _social(rng: random.Random, taken: Taken, first: str, nickname: str | None, last: str, birth: date,
            address: Address, kelly: dict | None) -> Social | None:
    if kelly:
        handle, display, location, bio, created = kelly["social"]
        taken.handles.add(handle)
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
    handle = _NOT_IN_HANDLE.sub("", handle)[:15]  # X's handles: letters, digits and _ only ("seo-yeon" is not one)
    while handle.lower() in taken.handles:  # handles are unique on X
        handle = f"{handle[:11]}{_int(rng, 100, 9999)}"
    taken.handles.add(handle.lower())
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
