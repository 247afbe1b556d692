"""The records of the shared population (`threadline.sandbox.people`): a person, and what
they did and said, as plain immutable values. Everything happens before `AS_OF`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

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
