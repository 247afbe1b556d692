"""Stage 6, traits: one row per profile in `tl_traits`, one column per trait, all in SQL.

Built-in traits are computed whenever what they need is mapped (orders, events, tickets);
traits declared under `traits.computed` aggregate a profile's facts over a window. Every
trait is computed at `as_of` (default: when the build runs): facts after it are left out and
windows end there, so a fixed `as_of` gives the same traits on every run.

The work happens in temp tables; `tl_traits` and `tl_consent` are built under new names and
swapped in together in one transaction, so readers see the last complete set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from threadline_profiles.config import IDENTIFIER_TYPES, ProfilesConfig
from threadline_profiles.config.audiences import (
    CHANNELS,
    FACT_FIELDS,
    ComputedTrait,
    TraitsConfig,
    window_delta,
)
from threadline_profiles.engines.base import lit, quote, work_table
from threadline_profiles.land.landing import landed_streams
from threadline_profiles.resolve.values import mapped_streams
from threadline_profiles.traits import consent, facts
from threadline_profiles.traits.facts import ts_literal, word_expr
from threadline_profiles.traits.types import BOOLEAN, FIELD_TYPES, INTEGER, LIST, NUMBER, TEXT, TIMESTAMP, TraitInfo

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

@dataclass(frozen=True)
class BuiltIn:
    name: str
    type: str
    needs: str  # a feature of the mappings (see `features`), "" = always
    description: str


BUILT_INS = (
    BuiltIn("orders_count", INTEGER, "orders", "orders up to as_of (distinct order ids)"),
    BuiltIn("lifetime_value", NUMBER, "orders.amount", "sum of all order amounts"),
    BuiltIn("average_order_value", NUMBER, "orders.amount", "lifetime_value over the orders that have an amount"),
    BuiltIn("first_order_at", TIMESTAMP, "orders", "time of the first order"),
    BuiltIn("last_order_at", TIMESTAMP, "orders", "time of the latest order"),
    BuiltIn("days_since_last_order", INTEGER, "orders", "calendar days from the latest order to as_of"),
    BuiltIn("repeat_buyer", BOOLEAN, "orders", "two orders or more"),
    BuiltIn("median_days_between_orders", NUMBER, "orders", "the customer's own rhythm: median gap between orders"),
    BuiltIn("churn_risk", TEXT, "orders",
            "low / medium / high: days since the last order against the customer's median gap (× churn_medium, × churn_high)"),
    BuiltIn("recency_score", INTEGER, "orders", "1–5 quintile of days since the last order (5 = most recent)"),
    BuiltIn("frequency_score", INTEGER, "orders", "1–5 quintile of orders_count (5 = most orders)"),
    BuiltIn("monetary_score", INTEGER, "orders.amount", "1–5 quintile of lifetime_value (5 = highest)"),
    BuiltIn("top_categories", LIST, "orders.category", "up to three categories the customer ordered most often"),
    BuiltIn("last_seen_at", TIMESTAMP, "orders|events", "latest order or event"),
    BuiltIn("email_opens_90d", INTEGER, "events.name", "email open events in the 90 days before as_of"),
    BuiltIn("email_clicks_90d", INTEGER, "events.name", "email click events in the 90 days before as_of"),
    BuiltIn("email_engagement_90d", INTEGER, "events.name", "opens + clicks in the 90 days before as_of"),
    BuiltIn("open_tickets", INTEGER, "tickets", "service tickets whose status is open"),
    BuiltIn("emails_received_7d", INTEGER, "results", "campaign emails delivered in the 7 days before as_of"),
    BuiltIn("last_campaign", TEXT, "results", "the platform's campaign of the latest delivery (any channel)"),
    BuiltIn("days_since_contact", INTEGER, "results", "calendar days from the latest delivery of a campaign to as_of"),
    BuiltIn("reachable_channels", LIST, "", "channels with an identifier and consent (marketing): "
            + ", ".join(CHANNELS)),
)
BUILT_IN_NAMES = {b.name for b in BUILT_INS}
NEEDS_TEXT = {
    "orders": "a stream mapped with `orders: {order_id, timestamp}`",
    "orders.amount": "a stream mapped with `orders: {..., amount}`",
    "orders.category": "a stream mapped with `orders: {..., category}`",
    "orders|events": "a stream mapped with `orders` or `events`",
    "events.name": "a stream mapped with `events: {timestamp, name}`",
    "tickets": "a stream mapped with `tickets: {ticket_id, status}`",
    "results": "a stream mapped with `results: {campaign, timestamp, action}`",
}


def features(config: ProfilesConfig) -> set[str]:
    """What the mappings provide, in the vocabulary of `BuiltIn.needs`."""
    out = {""}
    for m in config.mappings.values():
        if m.orders is not None:
            out |= {"orders", "orders|events"}
            out |= {"orders.amount"} if m.orders.amount else set()
            out |= {"orders.category"} if m.orders.category else set()
        if m.events is not None:
            out |= {"events", "orders|events"} | ({"events.name"} if m.events.name else set())
        if m.tickets is not None:
            out.add("tickets")
        if m.results is not None:
            out.add("results")
    return out


def computed_type(aggregate: str, field_type: str | None) -> str:
    if aggregate == "count":
        return INTEGER
    if aggregate == "sum":
        return NUMBER
    if aggregate == "distinct":
        return LIST
    return FIELD_TYPES[field_type or "text"]


def catalog(config: ProfilesConfig) -> dict[str, TraitInfo]:
    """Every name an audience filter may use with this config: built-in traits (with what
    they need when it is not mapped), computed traits, then golden-record fields (text),
    which a trait of the same name hides."""
    have = features(config)
    out: dict[str, TraitInfo] = {}
    for m in config.mappings.values():
        for name in [*m.trait_columns(), *(t for t in m.identifiers.values() if t in IDENTIFIER_TYPES)]:
            out[name] = TraitInfo(name, TEXT, "golden-record value", "profile")
    for b in BUILT_INS:
        out[b.name] = TraitInfo(b.name, b.type, b.description, "built-in", "" if b.needs in have else NEEDS_TEXT[b.needs])
    for name, spec in config.traits.computed.items():
        field_type = FACT_FIELDS[spec.facts].get(spec.field or "")
        window = f" over {spec.window}" if spec.window else ""
        out[name] = TraitInfo(name, computed_type(spec.aggregate, field_type), f"{spec.aggregate} of {spec.of}{window}",
                              "computed", "" if spec.facts in have else NEEDS_TEXT.get(spec.facts, f"a stream mapped with `{spec.facts}`"))
    return out


def check_traits(config: ProfilesConfig) -> None:
    """Raise ConfigError for a declared trait that takes a built-in trait's name."""
    from threadline.contracts import ConfigError

    for name in config.traits.computed:
        if name in BUILT_IN_NAMES:
            raise ConfigError(f"computed trait {name!r} has the name of a built-in trait", field=f"traits.computed.{name}",
                              hint="give it another name; the built-in traits are listed in the profiles README")


def published_traits(config: ProfilesConfig) -> list[str]:
    """The columns of `tl_traits` (after profile_id) this config produces."""
    have = features(config)
    return [b.name for b in BUILT_INS if b.needs in have] + list(config.traits.computed)


# --------------------------------------------------------------------------- SQL


def _money(sql: str) -> str:
    """Rounded to cents on both engines (Postgres has no ROUND(double, n))."""
    return f"CAST(CAST({sql} AS DECIMAL(18, 2)) AS DOUBLE)"


def _score(order_by: str, partition: str = "") -> str:
    """1–5: the fifth of profiles (ties together) a value falls in, counting from the bottom.
    ceil(5 × rank-with-ties / n) in exact arithmetic: 5.0 × k / n is exact when it is whole."""
    over = f"PARTITION BY {partition} " if partition else ""
    return (f"CAST(CEIL(5.0 * COUNT(*) OVER ({over}ORDER BY {order_by}) / COUNT(*) OVER ({over.strip()})) AS INTEGER)")


def order_stats_sql(as_of: datetime) -> list[str]:
    """Per order, per profile, the gaps between orders, and the RFM scores."""
    at = ts_literal(as_of)
    ts = quote("timestamp")
    return [
        work_table("tl_work_t_order", f"AS SELECT profile_id, order_key, MIN({ts}) AS ts, SUM(amount) AS amount, "
                                      "COUNT(amount) AS priced FROM tl_work_f_orders GROUP BY profile_id, order_key"),
        work_table(
            "tl_work_t_ostats",
            "AS SELECT profile_id, COUNT(*) AS orders_count, "
            f"{_money('SUM(amount)')} AS lifetime_value, COUNT(CASE WHEN priced > 0 THEN 1 END) AS priced_orders, "
            f"MIN(ts) AS first_order_at, MAX(ts) AS last_order_at, DATE_DIFF('day', MAX(ts), {at}) AS days_since_last_order "
            "FROM tl_work_t_order GROUP BY profile_id"),
        work_table(
            "tl_work_t_gap",
            "AS SELECT profile_id, "
            "(EPOCH(ts) - EPOCH(LAG(ts) OVER (PARTITION BY profile_id ORDER BY ts, order_key))) / 86400.0 AS gap "
            "FROM tl_work_t_order"),
        work_table("tl_work_t_rhythm", "AS SELECT profile_id, MEDIAN(gap) AS median_gap FROM tl_work_t_gap "
                                       "WHERE gap IS NOT NULL GROUP BY profile_id"),
        # one-order customers are measured against the rhythm of everyone's repeat orders
        work_table("tl_work_t_pop", "AS SELECT MEDIAN(gap) AS median_gap FROM tl_work_t_gap WHERE gap IS NOT NULL"),
        work_table(
            "tl_work_t_rfm",
            "AS SELECT profile_id, "
            f"{_score('days_since_last_order DESC')} AS recency_score, {_score('orders_count')} AS frequency_score, "
            f"CASE WHEN priced_orders > 0 THEN {_score('lifetime_value', 'priced_orders > 0')} END AS monetary_score "
            "FROM tl_work_t_ostats"),
    ]


def categories_sql() -> str:
    return (
        work_table(
            "tl_work_t_cat",
            "AS SELECT profile_id, ARRAY_AGG(category ORDER BY rn) AS top_categories FROM ("
            "SELECT profile_id, category, ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY n DESC, category) AS rn FROM ("
            "SELECT profile_id, category, COUNT(DISTINCT order_key) AS n FROM tl_work_f_orders WHERE category IS NOT NULL "
            "GROUP BY profile_id, category) AS c) AS r WHERE rn <= 3 GROUP BY profile_id")
    )


def events_sql(settings: TraitsConfig, as_of: datetime) -> str:
    since = ts_literal(as_of - timedelta(days=90))
    word = word_expr("name")
    opens = ", ".join(lit(v.strip().lower().replace(" ", "_").replace("-", "_")) for v in settings.email_events.opens) or "NULL"
    clicks = ", ".join(lit(v.strip().lower().replace(" ", "_").replace("-", "_")) for v in settings.email_events.clicks) or "NULL"
    ts = quote("timestamp")
    return (
        work_table(
            "tl_work_t_events",
            "AS SELECT profile_id, "
            f"COUNT(CASE WHEN {ts} > {since} AND {word} IN ({opens}) THEN 1 END) AS opens, "
            f"COUNT(CASE WHEN {ts} > {since} AND {word} IN ({clicks}) THEN 1 END) AS clicks, "
            f"MAX({ts}) AS last_event_at FROM tl_work_f_events GROUP BY profile_id")
    )


def tickets_sql() -> str:
    return (
        work_table(
            "tl_work_t_tickets",
            "AS SELECT profile_id, COUNT(*) AS open_tickets FROM ("
            f"SELECT profile_id, is_open, ROW_NUMBER() OVER (PARTITION BY profile_id, ticket_key ORDER BY {quote('timestamp')} "
            "DESC, record_key DESC) AS rn FROM tl_work_f_tickets) AS t WHERE rn = 1 AND is_open GROUP BY profile_id")
    )


def results_sql(as_of: datetime) -> list[str]:
    """Per profile: emails delivered in the last 7 days, and the latest delivery (its campaign)."""
    ts = quote("timestamp")
    since = ts_literal(as_of - timedelta(days=7))
    return [
        work_table(
            "tl_work_t_results",
            "AS SELECT profile_id, "
            f"COUNT(CASE WHEN channel = 'email' AND {ts} > {since} THEN 1 END) AS emails_7d, "
            f"DATE_DIFF('day', MAX({ts}), {ts_literal(as_of)}) AS days_since "
            "FROM tl_work_f_results WHERE result = 'delivered' GROUP BY profile_id"),
        work_table(
            "tl_work_t_lastc",
            "AS SELECT profile_id, campaign FROM (SELECT profile_id, campaign, "
            f"ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY {ts} DESC, campaign DESC) AS rn FROM tl_work_f_results "
            "WHERE result = 'delivered') AS x WHERE rn = 1"),
    ]


def reach_sql(config: ProfilesConfig) -> str:
    parts = [f"SELECT profile_id, {lit(ch)} AS channel FROM ({consent.reachable_sql(ch, 'marketing', config.consent, 'tl_work_consent')}) AS r{i}"
             for i, ch in enumerate(CHANNELS)]
    return (work_table("tl_work_t_reach", f"AS SELECT profile_id, ARRAY_AGG(channel ORDER BY channel) AS channels "
                                          f"FROM ({' UNION ALL '.join(parts)}) AS u GROUP BY profile_id"))


FACT_TABLES = {"orders": "tl_work_f_orders", "events": "tl_work_f_events", "tickets": "tl_work_f_tickets",
               "results": "tl_work_f_results"}
FACT_KEYS = {"orders": "order_key", "tickets": "ticket_key"}


def computed_sql(index: int, spec: ComputedTrait, as_of: datetime) -> str:
    """tl_work_t_c<index>: (profile_id, v) for one declared trait."""
    table, ts = FACT_TABLES[spec.facts], quote("timestamp")
    where = []
    if spec.window:
        where.append(f"{ts} > {ts_literal(as_of - window_delta(spec.window))}")
    for name, values in spec.filter.items():
        where.append(f"LOWER(CAST({quote(name)} AS VARCHAR)) IN ({', '.join(lit(v.lower()) for v in values)})")
    field = quote(spec.field) if spec.field else None
    if field:
        where.append(f"{field} IS NOT NULL")
    cond = " AND ".join(where) or "TRUE"
    table_out = f"tl_work_t_c{index}"
    agg = spec.aggregate
    if agg in ("count", "sum", "min", "max", "distinct"):
        value = {
            "count": f"COUNT(DISTINCT {FACT_KEYS[spec.facts]})" if spec.facts in FACT_KEYS else "COUNT(*)",
            "sum": _money(f"SUM({field})"),
            "min": f"MIN({field})",
            "max": f"MAX({field})",
            "distinct": f"ARRAY_AGG(DISTINCT CAST({field} AS VARCHAR) ORDER BY CAST({field} AS VARCHAR))",
        }[agg]
        return work_table(
            table_out,
            f"AS SELECT profile_id, {value} AS v FROM {table} WHERE {cond} GROUP BY profile_id")
    if agg in ("first", "last"):
        direction = "ASC" if agg == "first" else "DESC"
        return work_table(
            table_out,
            f"AS SELECT profile_id, v FROM (SELECT profile_id, {field} AS v, ROW_NUMBER() OVER ("
            f"PARTITION BY profile_id ORDER BY {ts} {direction}, record_key {direction}) AS rn FROM {table} "
            f"WHERE {cond}) AS x WHERE rn = 1")
    # most_frequent: ties go to the value seen most recently, then the smallest
    return work_table(
        table_out,
        f"AS SELECT profile_id, v FROM (SELECT profile_id, v, ROW_NUMBER() OVER (PARTITION BY profile_id "
        "ORDER BY n DESC, latest DESC, v) AS rn FROM (SELECT profile_id, "
        f"{field} AS v, COUNT(*) AS n, MAX({ts}) AS latest FROM {table} WHERE {cond} GROUP BY profile_id, {field}) AS c) "
        "AS x WHERE rn = 1")


def traits_select(config: ProfilesConfig) -> str:
    """The SELECT filling tl_traits: every profile, one column per trait."""
    have = features(config)
    settings = config.traits
    rhythm = "COALESCE(g.median_gap, pop.median_gap)"
    rhythm = f"CASE WHEN {rhythm} < 1 THEN 1.0 ELSE {rhythm} END"  # orders on one day: a one-day rhythm
    days = "o.days_since_last_order"
    last_seen = {
        frozenset({"orders", "events"}): "CASE WHEN e.last_event_at IS NULL THEN o.last_order_at WHEN o.last_order_at IS NULL "
                                         "OR e.last_event_at >= o.last_order_at THEN e.last_event_at ELSE o.last_order_at END",
        frozenset({"orders"}): "o.last_order_at",
        frozenset({"events"}): "e.last_event_at",
    }.get(frozenset(have & {"orders", "events"}), "CAST(NULL AS TIMESTAMP)")
    exprs = {
        "orders_count": "COALESCE(o.orders_count, 0)",
        "lifetime_value": "COALESCE(o.lifetime_value, 0.0)",
        "average_order_value": f"CASE WHEN o.priced_orders > 0 THEN {_money('o.lifetime_value / o.priced_orders')} END",
        "first_order_at": "o.first_order_at",
        "last_order_at": "o.last_order_at",
        "days_since_last_order": days,
        "repeat_buyer": "COALESCE(o.orders_count, 0) >= 2",
        "median_days_between_orders": "g.median_gap",
        "churn_risk": (f"CASE WHEN o.profile_id IS NULL OR COALESCE(g.median_gap, pop.median_gap) IS NULL THEN NULL "
                       f"WHEN {days} <= {settings.churn_medium!r} * ({rhythm}) THEN 'low' "
                       f"WHEN {days} <= {settings.churn_high!r} * ({rhythm}) THEN 'medium' ELSE 'high' END"),
        "recency_score": "r.recency_score",
        "frequency_score": "r.frequency_score",
        "monetary_score": "r.monetary_score",
        "top_categories": "COALESCE(c.top_categories, CAST([] AS VARCHAR[]))",
        "last_seen_at": last_seen,
        "email_opens_90d": "COALESCE(e.opens, 0)",
        "email_clicks_90d": "COALESCE(e.clicks, 0)",
        "email_engagement_90d": "COALESCE(e.opens, 0) + COALESCE(e.clicks, 0)",
        "open_tickets": "COALESCE(k.open_tickets, 0)",
        "emails_received_7d": "COALESCE(res.emails_7d, 0)",
        "last_campaign": "lc.campaign",
        "days_since_contact": "res.days_since",
        "reachable_channels": "COALESCE(ch.channels, CAST([] AS VARCHAR[]))",
    }
    columns = [f"{exprs[b.name]} AS {quote(b.name)}" for b in BUILT_INS if b.needs in have]
    joins = ["LEFT JOIN tl_work_t_reach AS ch ON ch.profile_id = p.profile_id"]
    if "orders" in have:
        joins += ["LEFT JOIN tl_work_t_ostats AS o ON o.profile_id = p.profile_id",
                  "LEFT JOIN tl_work_t_rhythm AS g ON g.profile_id = p.profile_id",
                  "LEFT JOIN tl_work_t_rfm AS r ON r.profile_id = p.profile_id", "CROSS JOIN tl_work_t_pop AS pop"]
    if "orders.category" in have:
        joins.append("LEFT JOIN tl_work_t_cat AS c ON c.profile_id = p.profile_id")
    if "events" in have:
        joins.append("LEFT JOIN tl_work_t_events AS e ON e.profile_id = p.profile_id")
    if "tickets" in have:
        joins.append("LEFT JOIN tl_work_t_tickets AS k ON k.profile_id = p.profile_id")
    if "results" in have:
        joins += ["LEFT JOIN tl_work_t_results AS res ON res.profile_id = p.profile_id",
                  "LEFT JOIN tl_work_t_lastc AS lc ON lc.profile_id = p.profile_id"]
    for i, (name, spec) in enumerate(config.traits.computed.items()):
        empty = {"count": "0", "sum": "0.0", "distinct": "CAST([] AS VARCHAR[])"}.get(spec.aggregate)
        columns.append(f"{f'COALESCE(c{i}.v, {empty})' if empty else f'c{i}.v'} AS {quote(name)}")
        joins.append(f"LEFT JOIN tl_work_t_c{i} AS c{i} ON c{i}.profile_id = p.profile_id")
    return f"SELECT p.profile_id, {', '.join(columns)} FROM tl_profiles AS p {' '.join(joins)}"


def stage_sql(config: ProfilesConfig, as_of: datetime) -> list[str]:
    """The statements computing every trait into temp tables (facts and consent first)."""
    have = features(config)
    out = [reach_sql(config)]
    if "orders" in have:
        out += order_stats_sql(as_of)
    if "orders.category" in have:
        out.append(categories_sql())
    if "events" in have:
        out.append(events_sql(config.traits, as_of))
    if "tickets" in have:
        out.append(tickets_sql())
    if "results" in have:
        out += results_sql(as_of)
    out += [computed_sql(i, spec, as_of) for i, spec in enumerate(config.traits.computed.values())]
    return out


WORK_TABLES = (
    "tl_work_t_reach", "tl_work_t_order", "tl_work_t_ostats", "tl_work_t_gap", "tl_work_t_rhythm", "tl_work_t_pop",
    "tl_work_t_rfm", "tl_work_t_cat", "tl_work_t_events", "tl_work_t_tickets", "tl_work_t_results", "tl_work_t_lastc",
)
TRAIT_BUILDS = ("CREATE TABLE IF NOT EXISTS tl_trait_builds (build_id VARCHAR, as_of TIMESTAMP, computed_at TIMESTAMP, "
                "profiles BIGINT, traits BIGINT, seconds DOUBLE)")


@dataclass
class TraitsResult:
    as_of: datetime
    traits: list[str]
    profiles: int
    seconds: float


def _drop_work(config: ProfilesConfig) -> list[str]:
    tables = [*facts.WORK_TABLES, *consent.WORK_TABLES, *WORK_TABLES,
              *(f"tl_work_t_c{i}" for i in range(len(config.traits.computed))), "tl_next_traits", "tl_next_consent"]
    return [f"DROP TABLE IF EXISTS {t}" for t in tables]


def publish_traits(store: ProfileStore, build_id: str, now: datetime | None = None) -> TraitsResult:
    """Compute every trait and consent from the published profiles; swap `tl_traits` and
    `tl_consent` in together."""
    started = time.monotonic()
    engine, config = store.engine, store.config
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    as_of = config.traits.as_of or now
    streams = mapped_streams(config, landed_streams(store))
    engine.run(_drop_work(config))
    engine.run(facts.facts_sql(engine, streams, as_of))
    engine.run(consent.consent_sql(engine, streams))
    engine.run(stage_sql(config, as_of))
    engine.run([f"CREATE TABLE tl_next_traits AS {traits_select(config)}",
                f"CREATE TABLE tl_next_consent AS {consent.PUBLISHED_SELECT}", TRAIT_BUILDS])
    names = published_traits(config)
    profiles = engine.scalar("SELECT COUNT(*) FROM tl_next_traits") or 0
    seconds = round(time.monotonic() - started, 3)
    with engine.transaction():
        engine.run(["DROP TABLE IF EXISTS tl_traits", "ALTER TABLE tl_next_traits RENAME TO tl_traits",
                    "DROP TABLE IF EXISTS tl_consent", "ALTER TABLE tl_next_consent RENAME TO tl_consent",
                    f"INSERT INTO tl_trait_builds VALUES ({lit(build_id)}, {ts_literal(as_of)}, {ts_literal(now)}, "
                    f"{profiles}, {len(names)}, {seconds!r})"])
    engine.run(_drop_work(config))
    return TraitsResult(as_of, names, profiles, seconds)


def latest_as_of(store: ProfileStore) -> datetime | None:
    """The as_of of the traits now published (None before the first traits build)."""
    if not store.engine.table_exists("tl_trait_builds"):
        return None
    return store.engine.scalar("SELECT as_of FROM tl_trait_builds ORDER BY computed_at DESC LIMIT 1")
