"""The profile store's `traits:`, `consent:`, `suppression:` and `audiences:` blocks.

    traits:
      as_of: 2024-06-30              # default: when the build runs
      computed:
        spend_90d: {aggregate: sum, of: orders.amount, window: 90d}
        page_views_30d: {aggregate: count, of: events, window: 30d, filter: {name: [page_view]}}
    consent:
      defaults: {email: denied, sms: denied, advertising: denied, direct_mail: granted}
    suppression:
      do_not_contact: {file: suppress.csv}           # every audience
    audiences:
      loyal:
        where: "orders_count >= 5 and recency_score >= 4"
        exclude: [recent_buyers]
        requires_consent: [email]
        min_size: 100

The stream-level blocks (`orders`, `events`, `tickets`, `consent` of a mapping) are in
config.py; what the expressions mean is in expr.py and the README.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from threadline.contracts import Spec

try:
    from threadline.contracts import JobPath
except ImportError:  # pragma: no cover - older core
    JobPath = Path  # type: ignore[misc]

# The channels an activation can need consent for (an audience destination declares one).
CHANNELS = ("email", "sms", "advertising", "direct_mail")
Channel = Literal["email", "sms", "advertising", "direct_mail"]
Consent = Literal["granted", "denied"]

# Without any consent record: email and SMS marketing need an opt-in (GDPR/ePrivacy in the EU,
# CASL in Canada, TCPA for US texts), and so does uploading people to ad platforms (Google's
# and Meta's customer-list terms require consent; the EU's DMA makes Google ask for it).
# Postal marketing is allowed on legitimate interest with an opt-out (GDPR recital 47, the
# mail preference services), so direct mail defaults to granted; a recorded opt-out wins.
DEFAULT_CONSENT: dict[str, str] = {"email": "denied", "sms": "denied", "advertising": "denied", "direct_mail": "granted"}

NAME = re.compile(r"^[a-z][a-z0-9_]*\Z")  # \Z: "$" would let a trailing newline through
WINDOW = re.compile(r"^(\d+)([hdwy])$")
_UNIT_DAYS = {"h": 1 / 24, "d": 1, "w": 7, "y": 365}
MAX_WINDOW_DAYS = 200 * 365


def window_delta(window: str) -> timedelta:
    """`90d` (hours h, days d, weeks w, years y of 365 days) as a timedelta."""
    match = WINDOW.match(window)
    if not match:
        raise ValueError(f"window {window!r} must be a number and a unit: 24h, 90d, 12w or 1y")
    days = int(match.group(1)) * _UNIT_DAYS[match.group(2)]
    if days > MAX_WINDOW_DAYS:  # beyond this, dates before year 1 (and timedelta's overflow)
        raise ValueError(f"window {window!r} is longer than {MAX_WINDOW_DAYS // 365} years; no record is older")
    return timedelta(days=days)


def utc_naive(value: datetime) -> datetime:
    """A UTC wall-clock time without tzinfo, as the store's TIMESTAMP columns hold them."""
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


# Facts a computed trait can aggregate, their fields and field types. `count` of orders and
# tickets counts distinct ids; of events, rows.
FACT_FIELDS: dict[str, dict[str, str]] = {
    "orders": {"order_id": "text", "timestamp": "timestamp", "amount": "number", "currency": "text", "category": "text"},
    "events": {"name": "text", "timestamp": "timestamp"},
    "tickets": {"ticket_id": "text", "status": "text", "timestamp": "timestamp"},
    "results": {"campaign": "text", "result": "text", "channel": "text", "timestamp": "timestamp"},
}
AGGREGATES = ("count", "sum", "min", "max", "first", "last", "most_frequent", "distinct")


class ComputedTrait(Spec):
    """One trait aggregated over a profile's orders, events or tickets."""

    aggregate: Literal["count", "sum", "min", "max", "first", "last", "most_frequent", "distinct"]
    of: str  # "orders", "events", "tickets", "results", or "<facts>.<field>" (e.g. orders.amount)
    window: str | None = None  # only the last 24h / 90d / 12w / 1y before as_of
    filter: dict[str, list[str]] = Field(default_factory=dict)  # field -> values kept (case-insensitive)

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str | None) -> str | None:
        if value is not None:
            window_delta(value)
        return value

    @field_validator("filter", mode="before")
    @classmethod
    def _one_value_is_a_list(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _fields_exist(self) -> ComputedTrait:
        facts, _, field = self.of.partition(".")
        if facts not in FACT_FIELDS:
            raise ValueError(f"`of: {self.of}` must start with one of {', '.join(FACT_FIELDS)}")
        fields = FACT_FIELDS[facts]
        for name in [field] if field else []:
            if name not in fields:
                raise ValueError(f"{facts} have no field {name!r}; they have {', '.join(fields)}")
        for name in self.filter:
            if name not in fields:
                raise ValueError(f"filter field {name!r}: {facts} have {', '.join(fields)}")
        if self.aggregate != "count" and not field:
            raise ValueError(f"`{self.aggregate}` needs a field: of: {facts}.<{'|'.join(fields)}>")
        if self.aggregate == "sum" and field and fields[field] != "number":
            raise ValueError(f"`sum` needs a number; {facts}.{field} is {fields[field]}")
        if self.aggregate == "distinct" and field and fields[field] != "text":
            raise ValueError(f"`distinct` lists text values; {facts}.{field} is {fields[field]}")
        return self

    @property
    def facts(self) -> str:
        return self.of.partition(".")[0]

    @property
    def field(self) -> str | None:
        return self.of.partition(".")[2] or None


class EmailEvents(Spec):
    """Event names (compared lower-case, spaces as underscores) that count as email opens
    and clicks for `email_engagement_90d`."""

    opens: list[str] = Field(default_factory=lambda: ["email_opened", "opened_email", "email_open", "open", "opened"])
    clicks: list[str] = Field(default_factory=lambda: ["email_clicked", "clicked_email", "email_click", "click", "clicked"])


class TraitsConfig(Spec):
    """Computed traits: the built-in ones (whenever orders, events or tickets are mapped) and
    the ones declared under `computed`."""

    as_of: datetime | None = None  # the time traits are computed at; default: when the build runs
    computed: dict[str, ComputedTrait] = Field(default_factory=dict)
    email_events: EmailEvents = Field(default_factory=EmailEvents)
    # days since the last order over the customer's own median gap: up to `churn_medium` is
    # low risk, up to `churn_high` medium, beyond it high
    churn_medium: float = Field(default=1.5, gt=0)
    churn_high: float = Field(default=3.0, gt=0)

    @field_validator("as_of", mode="before")
    @classmethod
    def _date_is_midnight(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day)
        return value

    @field_validator("as_of")
    @classmethod
    def _as_of_in_utc(cls, value: datetime | None) -> datetime | None:
        return utc_naive(value) if value is not None else None

    @field_validator("computed")
    @classmethod
    def _trait_names(cls, value: dict[str, ComputedTrait]) -> dict[str, ComputedTrait]:
        for name in value:
            if not NAME.match(name):
                raise ValueError(f"trait name {name!r} must be lower-case letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> TraitsConfig:
        if self.churn_high < self.churn_medium:
            raise ValueError("churn_high must be at least churn_medium")
        return self


class ConsentSettings(Spec):
    """What counts when a profile has no consent record for a channel."""

    defaults: dict[Channel, Consent] = Field(default_factory=lambda: dict(DEFAULT_CONSENT))

    @field_validator("defaults")
    @classmethod
    def _every_channel(cls, value: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_CONSENT, **value}

    def granted_by_default(self, channel: str) -> bool:
        return self.defaults.get(channel, "denied") == "granted"


class SuppressionList(Spec):
    """Emails and phones never to put in an audience: listed, or in a CSV file (columns named
    like email/phone/mobile, or a file of bare values). Values are normalized as the store
    normalizes them and compared with every email and phone of a profile's records."""

    values: list[str] = Field(default_factory=list)
    file: JobPath | None = None
    phone_region: str | None = None  # for numbers written without +country code
    audiences: list[str] | None = None  # default: every audience

    @field_validator("values", mode="before")
    @classmethod
    def _values_are_text(cls, value: object) -> object:
        return [str(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _has_values(self) -> SuppressionList:
        if not self.values and self.file is None:
            raise ValueError("a suppression list needs `values` or a `file`")
        if self.phone_region:
            self.phone_region = self.phone_region.upper()
        return self


class AudienceConfig(Spec):
    """A named group of profiles: those matching `where`, minus the members of the `exclude`d
    audiences, minus suppressed people, minus those without the `requires_consent` channels."""

    where: str
    description: str = ""
    exclude: list[str] = Field(default_factory=list)
    requires_consent: list[Channel] = Field(default_factory=list)  # on top of the destination's channel
    purpose: str = "marketing"  # the consent purpose checked
    min_size: int = Field(default=0, ge=0)  # smaller audiences are evaluated but not pushed

    @field_validator("where")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("`where` is empty; write a filter such as `orders_count > 0`")
        return value


def check_references(audiences: dict[str, AudienceConfig], suppression: dict[str, SuppressionList]) -> None:
    """Raise ValueError for a bad name, an exclusion or suppression naming an unknown audience,
    or audiences that exclude each other in a cycle."""
    for name in audiences:
        if not NAME.match(name):
            raise ValueError(f"audience name {name!r} must be lower-case letters, digits and underscores")
    for name, audience in audiences.items():
        for other in audience.exclude:
            if other not in audiences:
                raise ValueError(f"audience {name!r} excludes {other!r}, which is not declared under audiences")
            if other == name:
                raise ValueError(f"audience {name!r} excludes itself")
    for name, spec in suppression.items():
        for other in spec.audiences or []:
            if other not in audiences:
                raise ValueError(f"suppression list {name!r} names audience {other!r}, which is not declared")
    evaluation_order(audiences)


def evaluation_order(audiences: dict[str, AudienceConfig]) -> list[str]:
    """Audiences ordered so that each comes after every audience it excludes."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " → ".join([*path[path.index(name):], name])
            raise ValueError(f"audiences exclude each other in a cycle: {cycle}")
        state[name] = "visiting"
        for other in audiences[name].exclude:
            if other in audiences:
                visit(other, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(audiences):
        visit(name, [])
    return order
