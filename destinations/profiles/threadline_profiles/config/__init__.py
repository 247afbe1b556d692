"""The profile store's configuration: where it lives, how each source stream maps onto
identifiers and traits, and how records are resolved into profiles.

A job file carries it under ``destinations.<name>.config``::

    engine: duckdb
    path: profiles.duckdb
    mappings:
      crm.contacts:
        identifiers: {email: email, mobile: phone, id: "customer_id:crm"}
        traits: {first_name: first_name, last_name: last_name, birth_date: dob}
        cleaning: {phone_region: US, date_formats: {dob: ["%m/%d/%Y"]}, priority: 10}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from threadline.contracts import Spec

from threadline_profiles.config.activations import NAME_PATTERN, Activation
from threadline_profiles.config.audiences import (
    AudienceConfig,
    Channel,
    Consent,
    ConsentSettings,
    SuppressionList,
    TraitsConfig,
    check_references,
)
from threadline_profiles.config.decisions import Decisions
from threadline_profiles.config.decisions import check_references as check_decision_references

try:  # relative paths are taken from the job file's folder once the core offers it
    from threadline.contracts import JobPath
except ImportError:  # pragma: no cover - older core
    JobPath = Path  # type: ignore[misc]

# Identifier types a column can be mapped to; `customer_id:<system>` names the system.
# national_id: a government id people type in (SSN, tax or passport number): typos happen, so
# it has no per-profile limit and the agreement rule compares it fuzzily.
IDENTIFIER_TYPES = ("email", "phone", "loyalty_card", "social_handle", "device_id", "national_id")
CUSTOMER_ID = re.compile(r"^customer_id:[a-z0-9_]+$")

# Traits the store understands (each is normalized by its kind); any other trait name is
# kept as text. Address parts are traits too, set through the `address` block.
TRAIT_KINDS = {
    "first_name": "name",
    "last_name": "name",
    "middle_name": "name",
    "full_name": "name",
    "birth_date": "date",
    "birth_year": "year",  # a source that only has the year (a loyalty sign-up form)
    "address_line1": "address_line",
    "address_line2": "address_line",
    "city": "place",
    "region": "place",
    "postal_code": "postal_code",
    "country": "country",
}

SURVIVORSHIP = Literal["source_priority", "most_recent", "most_frequent", "first_non_null"]


def _has_day(date_format: str) -> bool:
    """Whether a strptime format reads a day (of the month or of the year, or a locale's whole date)."""
    return any(d in date_format for d in ("%d", "%-d", "%j", "%c", "%x"))


def identifier_kind(id_type: str) -> str:
    """The normalizer an identifier type uses: customer ids of every system share one."""
    return "customer_id" if id_type.startswith("customer_id:") else id_type


class AddressMapping(Spec):
    """Which columns hold the parts of a postal address."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def columns(self) -> dict[str, str]:
        """Trait name -> column, for the parts that are mapped."""
        names = {"line1": "address_line1", "line2": "address_line2"}
        return {names.get(k, k): v for k, v in self.model_dump().items() if v}


class EventMapping(Spec):
    """A stream of things a person did (page views, opens, clicks)."""

    timestamp: str
    name: str | None = None


class OrderMapping(Spec):
    """A stream of purchases."""

    order_id: str
    timestamp: str
    amount: str | None = None
    currency: str | None = None
    category: str | None = None  # product category, for `top_categories`


class TicketMapping(Spec):
    """A stream of service tickets; `open_tickets` counts those whose status is open."""

    ticket_id: str
    status: str
    timestamp: str | None = None
    open_statuses: list[str] = Field(default_factory=lambda: ["new", "open", "pending", "hold", "on_hold", "waiting"])

    @field_validator("open_statuses")
    @classmethod
    def _lower_case(cls, value: list[str]) -> list[str]:
        return [consent_word(v) for v in value]


RESULTS = ("delivered", "bounced", "opened", "clicked", "unsubscribed")
Result = Literal["delivered", "bounced", "opened", "clicked", "unsubscribed"]
# the values platforms write for each result (compared as `consent_word`s): Mailchimp's sent-to
# status and email-activity actions, Klaviyo's metric names
RESULT_WORDS = {
    "delivered": ["sent", "delivered", "received", "received_email"],
    "bounced": ["bounce", "bounced", "hard", "soft", "hard_bounce", "soft_bounce", "bounced_email"],
    "opened": ["open", "opened", "opened_email"],
    "clicked": ["click", "clicked", "clicked_email"],
    "unsubscribed": ["unsub", "unsubscribe", "unsubscribed", "unsubscribed_from_email", "unsubscribed_from_list"],
}


class ResultMapping(Spec):
    """A stream of what a platform's campaigns did for each person: delivered, bounced, opened,
    clicked or unsubscribed, with the platform's campaign and when. The `action` column's values
    say which (`actions` lists the values of each; rows with other values are not results), or
    `every_record` is one result (an unsubscribes stream). `activations`: the activations whose
    people these results can be credited to (default: every activation on the channel)."""

    campaign: str
    timestamp: str
    action: str | None = None
    every_record: Result | None = None
    channel: Channel = "email"
    actions: dict[Result, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in RESULT_WORDS.items()})
    activations: list[str] = Field(default_factory=list)

    @field_validator("actions", mode="before")
    @classmethod
    def _compared_as_words(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [consent_word(v) for v in ([vs] if isinstance(vs, str) else vs)] for k, vs in value.items()}
        return value

    @model_validator(mode="after")
    def _action_or_every_record(self) -> ResultMapping:
        if (self.action is None) == (self.every_record is None):
            raise ValueError("give either `action` (a column whose values say what happened) or "
                             f"`every_record: {'|'.join(RESULTS)}`")
        seen: dict[str, str] = {}
        for result, words in self.actions.items():
            for word in words:
                other = seen.setdefault(word, result)
                if other != result:
                    raise ValueError(f"actions: {word!r} is listed under both {other!r} and {result!r}")
        return self

    def columns(self) -> dict[str, str]:
        """Config path (under `results`) -> column."""
        return {k: v for k in ("campaign", "timestamp", "action") if (v := getattr(self, k))}


def consent_word(value: object) -> str:
    """How a status or consent value is compared: text, trimmed, lower-case, `-` and spaces as `_`."""
    return re.sub(r"[ -]", "_", str(value).strip().lower())


class ConsentMapping(Spec):
    """Consent a stream records for one channel and purpose: a `column` whose values grant or
    deny it, or a stream whose `every_record` does (an unsubscribes stream). Values in neither
    list say nothing (e.g. Mailchimp's `pending`). `timestamp` defaults to the mapping's
    `updated_at`, then to when the record landed."""

    channel: Channel
    purpose: str = "marketing"
    column: str | None = None
    every_record: Consent | None = None
    granted: list[str] = Field(default_factory=lambda: ["true", "yes", "y", "1", "subscribed", "opted_in", "opt_in",
                                                        "granted", "consented"])
    denied: list[str] = Field(default_factory=lambda: ["false", "no", "n", "0", "unsubscribed", "opted_out", "opt_out",
                                                       "denied", "revoked"])
    timestamp: str | None = None

    @field_validator("granted", "denied", mode="before")
    @classmethod
    def _compared_as_words(cls, value: object) -> object:
        return [consent_word(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _column_or_every_record(self) -> ConsentMapping:
        if (self.column is None) == (self.every_record is None):
            raise ValueError("give either `column` (values that grant or deny) or `every_record: granted|denied`")
        both = set(self.granted) & set(self.denied)
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is listed as both granted and denied")
        return self


class Cleaning(Spec):
    """How to read this source's values."""

    phone_region: str | None = None  # ISO 3166 alpha-2, for numbers written without +country
    date_formats: dict[str, list[str]] = Field(default_factory=dict)  # column -> strptime formats
    priority: int = 0  # higher wins under the `source_priority` survivorship rule

    @field_validator("date_formats", mode="before")
    @classmethod
    def _one_format_is_a_list(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("phone_region")
    @classmethod
    def _region_is_upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class StreamMapping(Spec):
    """How one source stream (``"source.stream"``) maps onto the profile model."""

    identifiers: dict[str, str] = Field(default_factory=dict)  # column -> identifier type
    traits: dict[str, str] = Field(default_factory=dict)  # trait name -> column
    address: AddressMapping | None = None
    updated_at: str | None = None  # column saying when the record last changed
    events: EventMapping | None = None
    orders: OrderMapping | None = None
    tickets: TicketMapping | None = None
    results: ResultMapping | None = None
    consent: list[ConsentMapping] = Field(default_factory=list)
    cleaning: Cleaning = Field(default_factory=Cleaning)

    @field_validator("consent", mode="before")
    @classmethod
    def _one_block_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    @field_validator("identifiers")
    @classmethod
    def _known_identifier_types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, id_type in value.items():
            if id_type not in IDENTIFIER_TYPES and not CUSTOMER_ID.match(id_type):
                raise ValueError(
                    f"column {column!r} is mapped to unknown identifier type {id_type!r}; "
                    f"use one of {', '.join(IDENTIFIER_TYPES)} or customer_id:<system>"
                )
        return value

    @model_validator(mode="after")
    def _dates_have_days(self) -> StreamMapping:
        # A column read only with formats that hold no day (%Y, %Y-%m) would become January the
        # first of each year: compared as a full birth date, that date differs from the
        # person's real one in every other source, and the conflict guard would part them.
        for trait, column in self.traits.items():
            formats = self.cleaning.date_formats.get(column)
            if TRAIT_KINDS.get(trait) == "date" and formats and not any(_has_day(f) for f in formats):
                better = " as `birth_year` (compared as a year; a year apart counts as a typo)" if trait == "birth_date" else ""
                raise ValueError(
                    f"traits.{trait}: column {column!r} is read with date formats that hold no day "
                    f"({', '.join(formats)}), so every value would become the first of a month; map the column{better} "
                    f"or give a format with the day")
        return self

    def trait_columns(self) -> dict[str, str]:
        """Every trait (address parts included) -> its column."""
        out = dict(self.traits)
        if self.address:
            out.update(self.address.columns())
        return out

    def columns_by_path(self) -> dict[str, str]:
        """Config path (relative to the mapping) -> column, for every column named."""
        paths = {f"identifiers.{c}": c for c in self.identifiers}
        paths.update({f"traits.{t}": c for t, c in self.traits.items()})
        if self.address:
            paths.update({f"address.{k}": v for k, v in self.address.model_dump().items() if v})
        if self.updated_at:
            paths["updated_at"] = self.updated_at
        for block in ("events", "orders", "tickets"):
            value = getattr(self, block)
            if value is not None:
                paths.update({f"{block}.{k}": v for k, v in value.model_dump().items() if v and isinstance(v, str)})
        if self.results is not None:
            paths.update({f"results.{k}": v for k, v in self.results.columns().items()})
        for i, consent in enumerate(self.consent):
            at = f"consent.{i}" if len(self.consent) > 1 else "consent"
            paths.update({f"{at}.{k}": v for k in ("column", "timestamp") if (v := getattr(consent, k))})
        paths.update({f"cleaning.date_formats.{c}": c for c in self.cleaning.date_formats})
        return paths


class IdentityRule(Spec):
    """Records that agree on every field of `match` belong to one person.

    A rule matches either one identifier type (``[email]``, ``[customer_id:crm]``) or
    several single-valued traits together (``[first_name, last_name, birth_date]``).
    """

    name: str
    match: list[str]

    @model_validator(mode="after")
    def _identifier_alone(self) -> IdentityRule:
        ids = [m for m in self.match if m in IDENTIFIER_TYPES or m == "email_canonical" or CUSTOMER_ID.match(m)]
        if ids and len(self.match) > 1:
            raise ValueError(
                f"rule {self.name!r}: identifier {ids[0]!r} can only be matched on its own; "
                "combine traits (first_name, last_name, birth_date, postal_code, ...) instead"
            )
        return self


# The built-in composite rules, used when the mapped traits allow them. Each tolerates an
# error in the field it leaves out.
DEFAULT_TRAIT_RULES = (
    IdentityRule(name="name_birth_date", match=["first_name", "last_name", "birth_date"]),
    IdentityRule(name="name_postal_code_address", match=["first_name", "last_name", "postal_code", "address_line1"]),
    IdentityRule(name="first_name_birth_date_postal_code", match=["first_name", "birth_date", "postal_code"]),
    IdentityRule(name="last_name_birth_date_postal_code", match=["last_name", "birth_date", "postal_code"]),
    IdentityRule(name="name_address", match=["first_name", "last_name", "address_line1"]),
    IdentityRule(name="first_name_birth_date_address", match=["first_name", "birth_date", "address_line1"]),
    IdentityRule(name="last_name_birth_date_address", match=["last_name", "birth_date", "address_line1"]),
)

DEFAULT_LIMITS = {"customer_id:*": 1, "loyalty_card": 3, "email": 10, "phone": 10}


class AgreementRule(Spec):
    """Fuzzy, weighted matching for records that share no identifier and no exact trait
    combination (a Fellegi–Sunter model; see `agreement.py`).

    Candidate pairs share every field of one `block_on` entry; blocks of more than
    `max_block` records are skipped (and counted), and blocks of more than `refine_over`
    pair only records that share the entry's refined form as well (its `field:n` parts in
    full, or one more field; counted too), so the cost stays linear in records. Each of
    `fields` is compared at four levels — exact, close (one edit, day and month swapped,
    first and last name swapped), near (two edits), different — and each level weighs how
    much likelier it is between one person's records than between two people's, both
    estimated from the data (EM and value frequencies; never from labels). A pair is linked
    when its match probability reaches `match_probability`, unless it is a conflict the
    data makes believable (family members: see `conflict_guard`). The rule runs when at
    least `min_fields` of `fields` are mapped, a first name or a birth date among them."""

    fields: list[str] = Field(default_factory=lambda: ["first_name", "middle_name", "last_name", "birth_date", "birth_year",
                                                       "address_line1", "address_line2", "postal_code", "city",
                                                       "national_id", "email", "username", "handle_year"])
    min_fields: int = 3
    # `field:n` is the field's first n characters: a birth date and an initial make blocks of a
    # few records where the birth date alone makes blocks of dozens in a large store.
    block_on: list[list[str]] = Field(default_factory=lambda: [
        ["first_name", "last_name"], ["birth_date", "first_name:1"], ["birth_date", "last_name:1"],
        ["birth_date", "postal_code"], ["birth_date", "city"], ["postal_code", "first_name:1"],
        ["postal_code", "last_name:1"], ["postal_code", "city"], ["address_line1"], ["national_id"],
        ["last_name", "first_name:1"], ["first_name", "last_name:1"], ["last_name", "birth_year"], ["email_local"], ["username"],
    ])
    max_block: int = 100
    # Blocks of more than this many records (and at most max_block) pair only the records
    # that also agree on the key's refined form (agreement.refined: birth date and first name
    # for birth date and first initial), so a record's pairs stay about as many in a store of
    # 10M records as of 1M. At or over max_block: off.
    refine_over: int = Field(default=8, ge=1)
    # Where a record lacks a first or a last name, read it from its display name, email
    # local part or social handle (kneal1985 -> k, neal), for matching only (`hints.py`).
    name_hints: bool = True
    match_probability: float = Field(default=0.95, gt=0, lt=1)


class Resolution(Spec):
    """How records become profiles."""

    rules: list[IdentityRule] | None = None  # priority order; None = the defaults
    max_records_per_value: int = 50  # an identifier shared by more records than this is blocked
    blocked_values: list[str] = Field(default_factory=list)  # normalized values never used to link
    blocked_patterns: list[str] = Field(default_factory=list)  # regexes over normalized values
    limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_LIMITS))  # type -> max values per profile
    always_merge: list[tuple[str, str]] = Field(default_factory=list)  # record refs "source.stream:pk"
    never_merge: list[tuple[str, str]] = Field(default_factory=list)
    agreement: AgreementRule | None = Field(default_factory=AgreementRule)  # null turns it off
    # Links between records that look like two people (first names and birth dates disagree;
    # different first names at one home) are dropped where the data shows such conflicts more
    # often than typos explain: family inboxes, home phones, twins (see conflicts.py).
    conflict_guard: bool = True

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocked pattern {pattern!r} is not a regular expression: {exc}") from exc
        return value


class Survivorship(Spec):
    """Which value of a field wins in the golden record."""

    default: SURVIVORSHIP = "source_priority"
    fields: dict[str, SURVIVORSHIP] = Field(default_factory=dict)

    def rule_for(self, field: str) -> str:
        return self.fields.get(field, self.default)


class SparkConfig(Spec):
    """Where an `engine: spark` store lives (engines/spark_engine.py)."""

    master: str = "local[*]"  # local[*], spark://host:7077, yarn, k8s://...; ignored when `remote` is set
    remote: str | None = None  # a Spark Connect server (sc://host:15002), e.g. Databricks Connect's
    catalog: str | None = None  # a catalog of the session (Unity, Glue, Iceberg); default: the session's own
    database: str = "threadline_profiles"  # the database (schema) holding the store's tables
    warehouse: JobPath | None = None  # spark.sql.warehouse.dir of a session this process starts
    conf: dict[str, str] = Field(default_factory=dict)  # more Spark settings, e.g. spark.sql.shuffle.partitions

    @field_validator("database", "catalog")
    @classmethod
    def _a_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} must be letters, digits and underscores")
        return value


class ProfilesConfig(Spec):
    """Configuration of the `profiles` destination."""

    engine: Literal["duckdb", "postgres", "spark"] = "duckdb"
    path: JobPath = Path("profiles.duckdb")  # DuckDB file
    dsn: str = "postgresql://postgres@127.0.0.1:5432/test"  # Postgres connection string
    db_schema: str = Field(default="threadline_profiles", alias="schema")  # Postgres schema
    spark: SparkConfig = Field(default_factory=SparkConfig)  # engine: spark
    memory_limit: str | None = "1GB"  # DuckDB's memory limit; beyond it, work spills to disk
    # A new store's encryption at rest (DuckDB: engines/duckdb_crypto.py; Postgres: sealed tables,
    # engines/postgres_crypto.py): "on" (the default) creates it encrypted or not at all, "off"
    # opts out. An existing store opens as it is either way.
    encryption: Literal["on", "off"] = "on"
    # An encrypted Postgres store's key file, when $THREADLINE_STORE_KEY is not set (default:
    # `<database>.<schema>.key` in the job file's folder). A DuckDB store's is `<path>.key`.
    key_file: JobPath | None = None
    mappings: dict[str, StreamMapping] = Field(default_factory=dict)  # "source.stream" -> mapping
    resolution: Resolution = Field(default_factory=Resolution)
    survivorship: Survivorship = Field(default_factory=Survivorship)
    resolve_on_finish: bool = True  # resolve once the run has landed every stream
    full_rebuild: bool = False  # resolve every record in every build (default: only around what changed)
    incremental_up_to: float = Field(default=0.5, gt=0, le=1)  # a build whose scope holds more of the records runs as a full one
    report_dir: JobPath | None = None  # default: "<store>_reports" next to the DuckDB file, or ./
    activations: dict[str, Activation] = Field(default_factory=dict)  # name -> audience pushed to a destination
    traits: TraitsConfig = Field(default_factory=TraitsConfig)  # computed traits (audience_config.py)
    consent: ConsentSettings = Field(default_factory=ConsentSettings)  # defaults without a consent record
    suppression: dict[str, SuppressionList] = Field(default_factory=dict)  # name -> emails/phones never targeted
    audiences: dict[str, AudienceConfig] = Field(default_factory=dict)  # name -> filter over traits
    decisions: Decisions = Field(default_factory=Decisions)  # campaigns, priority groups, caps, holdouts

    @model_validator(mode="after")
    def _audiences_refer_to_audiences(self) -> ProfilesConfig:
        check_references(self.audiences, self.suppression)
        check_decision_references(self.decisions, self.audiences, self.activations)
        for key, mapping in self.mappings.items():
            for name in mapping.results.activations if mapping.results else []:
                if name not in self.activations:
                    raise ValueError(f"mappings.{key}.results.activations: activation {name!r} is not declared under "
                                     f"activations (declared: {', '.join(self.activations) or 'none'})")
        return self

    @model_validator(mode="after")
    def _postgres_key_file(self, info: ValidationInfo) -> ProfilesConfig:
        if self.key_file is not None and not self.key_file.name.endswith(".key"):
            raise ValueError(f"key_file: {self.key_file} must end with .key")
        if self.key_file is None and self.engine == "postgres":
            base = (info.context or {}).get("base_dir")
            self.key_file = Path(base or ".").absolute() / f"{dsn_database(self.dsn)}.{self.db_schema}.key"
        return self

    @field_validator("encryption", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `encryption: off` as false (and `on` as true)
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("mappings")
    @classmethod
    def _keys_are_source_dot_stream(cls, value: dict[str, StreamMapping]) -> dict[str, StreamMapping]:
        for key in value:
            if key.count(".") < 1:
                raise ValueError(f"mapping key {key!r} must be 'source.stream'")
        return value

    @field_validator("activations")
    @classmethod
    def _activation_names(cls, value: dict[str, Activation]) -> dict[str, Activation]:
        for name in value:
            if not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(f"activation name {name!r} must be lower-case letters, digits and underscores")
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema_is_a_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", value):
            raise ValueError(f"schema {value!r} must be lower-case letters, digits and underscores")
        return value

    def mapping_for(self, source: str, stream: str) -> StreamMapping | None:
        return self.mappings.get(f"{source}.{stream}")

    def reports_path(self) -> Path:
        if self.report_dir is not None:
            return self.report_dir
        if self.engine == "duckdb":
            return self.path.parent / f"{self.path.stem}_reports"
        return Path("profiles_reports")


def dsn_database(dsn: str) -> str:
    """The database a Postgres connection string names (libpq's default: the user's name)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - an unreadable dsn fails clearly when it connects
        return "postgres"
    return str(parts.get("dbname") or parts.get("user") or "postgres")
