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
A few thousand people take well under a second; populations are cached per seed. The records
are in `people_model`, how one person is made in `people_make`, the word lists in `people_data`.

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
  from the name (kelly_neal), or unrelated (moon_runner), of letters, digits and _ only (at
  most 15, as X allows: Seo-yeon is seoyeon); a display name (full, initials,
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

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from threadline.sandbox.people_make import CAMPAIGNS, Taken, make_person
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

__all__ = [
    "AS_OF", "BUYERS", "CAMPAIGNS", "HISTORY_START", "KLAVIYO_CONNECTED", "KLAVIYO_SINCE", "MAILCHIMP_SINCE",
    "ORDER_ID_BASE", "POPULATION_SEED", "SEGMENTS", "SYSTEMS", "Address", "Checkout", "Consent", "Contact", "Email",
    "EmailEvent", "Item", "Order", "Person", "Phone", "Social", "Ticket", "format_phone", "in_threes",
    "loyalty_points", "loyalty_tier", "members_of", "population", "population_seed", "shopify_customer_id",
]

POPULATION_SEED = 2026


class _Population:
    """The people of one seed, made in order and kept: person n depends only on those before it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.people: list[Person] = []
        self.taken = Taken()
        self.lock = threading.Lock()

    def grow(self, size: int) -> list[Person]:
        with self.lock:
            while len(self.people) < size:
                n = len(self.people)
                previous = self.people[-1] if self.people else None
                self.people.append(make_person(self.seed, n, previous, self.taken))
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
    """Points the person earned in the loyalty program: 5 per unit spent; 0 for non-members."""
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
