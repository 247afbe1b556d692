"""Stage 7, audiences: who is in each audience at each build, and who a push may reach.

An audience's members are the profiles whose traits match its `where` filter (expr.py),
minus members of the audiences it `exclude`s, minus people on a suppression list, minus
those without consent for its `requires_consent` channels — counted in that order, so each
left-out profile is counted once, by the first reason. The consent a *destination's* channel
needs is applied when a push selects members (`select_members`), since one audience may go
to several channels.

Membership history is stored as intervals, `tl_audience_members (audience, profile_id,
from_seq, to_seq)`: a profile is a member at evaluation `s` when from_seq <= s < to_seq
(to_seq NULL: still a member). A stable audience costs one row per member however many
builds run, and a change costs one row, so the history of a 1M-member audience over a year of
daily builds stays near 1M rows instead of 365M; a diff between any two evaluations is one
query (`changes`). `tl_audience_evaluations` numbers the evaluations (seq ↔ build id) and
`tl_audience_sizes` keeps each audience's figures per evaluation, for plots.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from threadline.contracts import (
    MEMBER_COLUMNS,
    MEMBER_SCHEMA,
    ConfigError,
    ThreadlineError,
)

from threadline_profiles.audiences import expr, suppression
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.config.audiences import CHANNELS, evaluation_order
from threadline_profiles.engines.base import lit, quote, work_table
from threadline_profiles.traits import compute, consent
from threadline_profiles.traits.facts import ts_literal

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

PERSISTENT = [
    "CREATE TABLE IF NOT EXISTS tl_audience_evaluations (seq BIGINT, build_id VARCHAR, evaluated_at TIMESTAMP, "
    "as_of TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS tl_audience_members (audience VARCHAR, profile_id VARCHAR, from_seq BIGINT, to_seq BIGINT)",
    "CREATE TABLE IF NOT EXISTS tl_audience_sizes (seq BIGINT, audience VARCHAR, size BIGINT, matched BIGINT, "
    "excluded_by_exclusion BIGINT, excluded_suppressed BIGINT, excluded_no_consent BIGINT, added BIGINT, "
    "removed BIGINT, min_size BIGINT, status VARCHAR, definition VARCHAR)",
]
WORK_TABLES = ("tl_work_a_eval", "tl_work_a_supp_keys", "tl_work_a_supp")
DROPPED_BY = ("exclusion", "suppression", "consent")


@dataclass
class AudienceSize:
    """One audience at one evaluation."""

    audience: str
    build_id: str
    size: int  # members (after exclusions, suppression and required consent)
    matched: int  # profiles matching `where`
    excluded_by_exclusion: int
    excluded_suppressed: int
    excluded_no_consent: int  # lacking a `requires_consent` channel
    added: int  # since the previous evaluation
    removed: int
    min_size: int
    status: str  # ok | below_min_size


@dataclass
class Selection:
    """An audience's members who consent to one channel, as a push receives them."""

    audience: str
    channel: str
    build_id: str  # the evaluation the members come from
    members: pa.Table  # MEMBER_SCHEMA: member_id (= profile_id) and the golden identifiers, strings
    size_before_consent: int
    excluded_no_consent: int
    excluded_suppressed: int
    excluded_by_exclusion: int


# --------------------------------------------------------------------------- checking


def check_audiences(config: ProfilesConfig) -> dict[str, expr.Node]:
    """Parse every audience's filter against the traits this config provides; raise a
    ConfigError naming `audiences.<name>.where`, the position, and a caret under it."""
    compute.check_traits(config)
    catalog = compute.catalog(config)
    nodes = {}
    for name, audience in config.audiences.items():
        try:
            nodes[name] = expr.parse(audience.where, catalog)
        except expr.ExpressionError as exc:
            raise ConfigError(f"audience {name!r} (audiences.{name}.where): {exc.message}\n{exc.display()}",
                              field=f"audiences.{name}.where",
                              hint="the filter language and every trait are in the profiles README (Audiences)") from None
    return nodes


def check_config(config: ProfilesConfig) -> None:
    """Everything about traits, audiences and suppression that can be checked before a run:
    filters, trait names, suppression files."""
    check_audiences(config)
    suppression.check_lists(config.suppression)


# --------------------------------------------------------------------------- evaluation


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _require_traits(store: ProfileStore, nodes: dict[str, expr.Node]) -> dict[str, str]:
    """Trait name -> column of tl_traits, after checking the published traits have every
    trait the filters use (a trait declared since the last build is not there yet)."""
    have = set(store.engine.table_columns("tl_traits"))
    if not have:
        raise ThreadlineError("the store has no traits yet", hint="run `threadline profiles build` (or a sync) first")
    catalog = compute.catalog(store.config)
    refs: dict[str, str] = {}
    for name, node in nodes.items():
        for trait in expr.traits_used(node):
            if catalog[trait].origin == "profile":
                continue
            if trait not in have:
                raise ThreadlineError(f"audience {name!r} uses trait {trait!r}, which the last build did not compute",
                                      hint="run `threadline profiles build` so the store has it")
            refs[trait] = f"t.{quote(trait)}"
    return refs


def _matching_sql(name: str, node: expr.Node, refs: dict[str, str], catalog: dict[str, compute.TraitInfo],
                  as_of: datetime) -> str:
    """SELECT profile_id of the profiles matching one filter."""
    refs = dict(refs)
    joins = []
    for i, trait in enumerate(sorted(t for t in expr.traits_used(node) if catalog[t].origin == "profile")):
        joins.append(f"LEFT JOIN tl_golden AS g{i} ON g{i}.profile_id = t.profile_id AND g{i}.field = {lit(trait)}")
        refs[trait] = f"g{i}.value"
    return f"SELECT t.profile_id FROM tl_traits AS t {' '.join(joins)} WHERE {expr.to_sql(node, refs, as_of)}"


def _evaluate(store: ProfileStore) -> dict[str, int]:
    """Fill tl_work_a_eval (audience, profile_id, dropped_by): every matching profile of
    every audience, with why it was left out (NULL: a member). Returns the unusable
    suppression values per list."""
    engine, config = store.engine, store.config
    nodes = check_audiences(config)
    refs = _require_traits(store, nodes)
    catalog = compute.catalog(config)
    as_of = compute.latest_as_of(store) or _now()
    keys, unusable = suppression.suppression_table(config.suppression)
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in WORK_TABLES])
    engine.load_table("tl_work_a_supp_keys", keys, temp=True)
    engine.run([
        work_table(
            "tl_work_a_supp",
            "AS SELECT DISTINCT s.list, m.profile_id FROM tl_work_a_supp_keys AS s "
            "JOIN tl_record_values AS v ON v.field = s.field AND v.match_key = s.key "
            "JOIN tl_members AS m ON m.record_key = v.record_key WHERE v.status IN ('ok', 'blocked')"),
        work_table("tl_work_a_eval", "(audience VARCHAR, profile_id VARCHAR, dropped_by VARCHAR)"),
    ])
    nothing = "(SELECT CAST(NULL AS VARCHAR) AS profile_id WHERE 1 = 0)"
    for name in evaluation_order(config.audiences):
        spec = config.audiences[name]
        excluded = (f"(SELECT DISTINCT profile_id FROM tl_work_a_eval WHERE dropped_by IS NULL AND audience IN "
                    f"({', '.join(lit(a) for a in spec.exclude)}))") if spec.exclude else nothing
        lists = [n for n, s in config.suppression.items() if s.audiences is None or name in s.audiences]
        suppressed = (f"(SELECT DISTINCT profile_id FROM tl_work_a_supp WHERE list IN ({', '.join(lit(n) for n in lists)}))"
                      if lists else nothing)
        matching = _matching_sql(name, nodes[name], refs, catalog, as_of)
        lacking = " UNION ".join(consent.lacking_consent_sql(f"({matching})", ch, spec.purpose, config.consent)
                                 for ch in dict.fromkeys(spec.requires_consent))
        no_consent = f"({lacking})" if lacking else nothing
        engine.execute(
            f"INSERT INTO tl_work_a_eval SELECT {lit(name)} AS audience, x.profile_id, CASE "
            "WHEN ex.profile_id IS NOT NULL THEN 'exclusion' WHEN sp.profile_id IS NOT NULL THEN 'suppression' "
            "WHEN nc.profile_id IS NOT NULL THEN 'consent' END AS dropped_by "
            f"FROM ({matching}) AS x LEFT JOIN {excluded} AS ex ON ex.profile_id = x.profile_id "
            f"LEFT JOIN {suppressed} AS sp ON sp.profile_id = x.profile_id "
            f"LEFT JOIN {no_consent} AS nc ON nc.profile_id = x.profile_id"
        )
    return unusable


def _figures(store: ProfileStore) -> dict[str, dict[str, int]]:
    rows = store.engine.rows(
        "SELECT audience, COUNT(*) AS matched, COUNT(CASE WHEN dropped_by IS NULL THEN 1 END) AS size, "
        "COUNT(CASE WHEN dropped_by = 'exclusion' THEN 1 END) AS excluded_by_exclusion, "
        "COUNT(CASE WHEN dropped_by = 'suppression' THEN 1 END) AS excluded_suppressed, "
        "COUNT(CASE WHEN dropped_by = 'consent' THEN 1 END) AS excluded_no_consent FROM tl_work_a_eval GROUP BY audience")
    return {r.pop("audience"): {k: int(v) for k, v in r.items()} for r in rows}


def ensure_tables(store: ProfileStore) -> None:
    store.engine.run([*PERSISTENT, consent.CREATE_PUBLISHED])


def evaluate_audiences(store: ProfileStore, build_id: str) -> list[AudienceSize]:
    """Evaluate every audience against the published traits and store the membership of this
    build (called at the end of each build; a second call for the same build returns what the
    first stored). Audiences no longer declared end here: their members' intervals close."""
    engine, config = store.engine, store.config
    ensure_tables(store)
    if engine.scalar(f"SELECT COUNT(*) FROM tl_audience_evaluations WHERE build_id = {lit(build_id)}"):
        return sizes_at(store, build_id)
    open_before = engine.scalar("SELECT COUNT(*) FROM tl_audience_members WHERE to_seq IS NULL") or 0
    if not config.audiences and not open_before:
        return []
    if config.audiences:
        _evaluate(store)
    else:  # every audience was removed from the config: close what is still open
        engine.run(["DROP TABLE IF EXISTS tl_work_a_eval",
                    work_table("tl_work_a_eval", "(audience VARCHAR, profile_id VARCHAR, dropped_by VARCHAR)")])
    figures = _figures(store)
    current = "SELECT audience, profile_id FROM tl_work_a_eval WHERE dropped_by IS NULL"
    added = {r["audience"]: r["n"] for r in engine.rows(
        f"SELECT e.audience, COUNT(*) AS n FROM ({current}) AS e WHERE NOT EXISTS (SELECT 1 FROM tl_audience_members AS a "
        "WHERE a.to_seq IS NULL AND a.audience = e.audience AND a.profile_id = e.profile_id) GROUP BY e.audience")}
    removed = {r["audience"]: r["n"] for r in engine.rows(
        "SELECT a.audience, COUNT(*) AS n FROM tl_audience_members AS a WHERE a.to_seq IS NULL AND NOT EXISTS "
        f"(SELECT 1 FROM ({current}) AS e WHERE e.audience = a.audience AND e.profile_id = a.profile_id) GROUP BY a.audience")}
    seq = (engine.scalar("SELECT MAX(seq) FROM tl_audience_evaluations") or 0) + 1
    as_of = compute.latest_as_of(store) or _now()
    sizes = []
    for name, spec in config.audiences.items():
        f = figures.get(name, {"matched": 0, "size": 0, "excluded_by_exclusion": 0, "excluded_suppressed": 0,
                               "excluded_no_consent": 0})
        sizes.append(AudienceSize(name, build_id, f["size"], f["matched"], f["excluded_by_exclusion"],
                                  f["excluded_suppressed"], f["excluded_no_consent"], added.get(name, 0),
                                  removed.get(name, 0), spec.min_size,
                                  "below_min_size" if f["size"] < spec.min_size else "ok"))
    with engine.transaction():
        engine.run([
            f"INSERT INTO tl_audience_evaluations VALUES ({seq}, {lit(build_id)}, {ts_literal(_now())}, {ts_literal(as_of)})",
            f"UPDATE tl_audience_members SET to_seq = {seq} WHERE to_seq IS NULL AND NOT EXISTS (SELECT 1 FROM ({current}) "
            "AS e WHERE e.audience = tl_audience_members.audience AND e.profile_id = tl_audience_members.profile_id)",
            f"INSERT INTO tl_audience_members SELECT e.audience, e.profile_id, {seq}, NULL FROM ({current}) AS e "
            "WHERE NOT EXISTS (SELECT 1 FROM tl_audience_members AS a WHERE a.to_seq IS NULL AND a.audience = e.audience "
            "AND a.profile_id = e.profile_id)",
            *[f"INSERT INTO tl_audience_sizes VALUES ({seq}, {lit(s.audience)}, {s.size}, {s.matched}, "
              f"{s.excluded_by_exclusion}, {s.excluded_suppressed}, {s.excluded_no_consent}, {s.added}, {s.removed}, "
              f"{s.min_size}, {lit(s.status)}, {lit(json.dumps(config.audiences[s.audience].model_dump(), sort_keys=True))})"
              for s in sizes],
        ])
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in WORK_TABLES])
    return sizes


# --------------------------------------------------------------------------- reading


def _latest(store: ProfileStore) -> tuple[int, str] | None:
    if not store.engine.table_exists("tl_audience_evaluations"):
        return None
    rows = store.engine.rows("SELECT seq, build_id FROM tl_audience_evaluations ORDER BY seq DESC LIMIT 1")
    return (rows[0]["seq"], rows[0]["build_id"]) if rows else None


def _seq_of(store: ProfileStore, build_id: str) -> int:
    seq = store.engine.scalar(f"SELECT seq FROM tl_audience_evaluations WHERE build_id = {lit(build_id)}") \
        if store.engine.table_exists("tl_audience_evaluations") else None
    if seq is None:
        raise ThreadlineError(f"no audience evaluation for build {build_id!r}",
                              hint="`threadline audiences list` shows the evaluated builds")
    return int(seq)


def _unknown_audience(config: ProfilesConfig, audience: str) -> ConfigError:
    close = difflib.get_close_matches(audience, list(config.audiences), n=1)
    return ConfigError(f"no audience named {audience!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                       hint=f"audiences declared: {', '.join(config.audiences) or '(none)'}")


def sizes_at(store: ProfileStore, build_id: str) -> list[AudienceSize]:
    seq = _seq_of(store, build_id)
    rows = store.engine.rows(
        "SELECT audience, size, matched, excluded_by_exclusion, excluded_suppressed, excluded_no_consent, added, removed, "
        f"min_size, status FROM tl_audience_sizes WHERE seq = {seq} ORDER BY audience")
    return [AudienceSize(r.pop("audience"), build_id, **{k: (int(v) if k != "status" else v) for k, v in r.items()})
            for r in rows]


def size_history(store: ProfileStore) -> list[dict[str, Any]]:
    """Every audience's figures at every evaluation, oldest first (for plots)."""
    if not store.engine.table_exists("tl_audience_sizes"):
        return []
    as_of = ("(SELECT MAX(t.as_of) FROM tl_trait_builds AS t WHERE t.build_id = e.build_id)"
             if store.engine.table_exists("tl_trait_builds") else "CAST(NULL AS TIMESTAMP)")
    return store.engine.rows(
        f"SELECT e.seq, e.build_id, e.evaluated_at, {as_of} AS as_of, s.audience, s.size, s.added, s.removed, s.status "
        "FROM tl_audience_sizes AS s JOIN tl_audience_evaluations AS e ON e.seq = s.seq ORDER BY e.seq, s.audience")


def _members_at_sql(audience: str, seq: int) -> str:
    return (f"SELECT profile_id FROM tl_audience_members WHERE audience = {lit(audience)} AND from_seq <= {seq} "
            f"AND (to_seq IS NULL OR to_seq > {seq})")


def members_at(store: ProfileStore, audience: str, build_id: str) -> list[str]:
    """Profile ids in `audience` at the evaluation of `build_id`, sorted."""
    seq = _seq_of(store, build_id)
    return sorted(r["profile_id"] for r in store.engine.rows(_members_at_sql(audience, seq)))


def changes(store: ProfileStore, audience: str, since_build: str, until_build: str | None = None) -> tuple[list[str], list[str]]:
    """(added, removed) profile ids of `audience` between two evaluations (default: the latest)."""
    a = _seq_of(store, since_build)
    latest = _latest(store)
    b = _seq_of(store, until_build) if until_build else (latest[0] if latest else a)
    before, after = _members_at_sql(audience, a), _members_at_sql(audience, b)
    added = store.engine.rows(f"SELECT profile_id FROM ({after} EXCEPT {before}) AS x ORDER BY profile_id")
    removed = store.engine.rows(f"SELECT profile_id FROM ({before} EXCEPT {after}) AS x ORDER BY profile_id")
    return [r["profile_id"] for r in added], [r["profile_id"] for r in removed]


GOLDEN_OF_MEMBER = {c: c for c in MEMBER_COLUMNS if c != "member_id"}


def select_members(store: ProfileStore, audience: str, channel: str) -> Selection:
    """The members of `audience` at the latest evaluation who consent to `channel` (for the
    audience's purpose, by record or by the channel's default), with their golden values."""
    config, engine = store.config, store.engine
    spec = config.audiences.get(audience)
    if spec is None:
        raise _unknown_audience(config, audience)
    if channel not in CHANNELS:
        raise ConfigError(f"unknown consent channel {channel!r}", hint=f"channels: {', '.join(CHANNELS)}")
    latest = _latest(store)
    if latest is None:
        raise ThreadlineError(f"audience {audience!r} has not been evaluated yet",
                              hint="run `threadline profiles build` (or a sync) first")
    seq, build_id = latest
    figures = engine.rows(f"SELECT size, excluded_by_exclusion, excluded_suppressed FROM tl_audience_sizes "
                          f"WHERE seq = {seq} AND audience = {lit(audience)}")
    if not figures:
        raise ThreadlineError(f"audience {audience!r} was declared after the last build",
                              hint="run `threadline profiles build` so it is evaluated")
    current = f"SELECT profile_id FROM tl_audience_members WHERE audience = {lit(audience)} AND to_seq IS NULL"
    lacking = consent.lacking_consent_sql(f"({current})", channel, spec.purpose, config.consent)
    pivot = ", ".join(f"MAX(CASE WHEN g.field = {lit(f)} THEN g.value END) AS {quote(c)}" for c, f in GOLDEN_OF_MEMBER.items())
    fields = ", ".join(lit(f) for f in GOLDEN_OF_MEMBER.values())
    table = engine.query(
        f"SELECT m.profile_id AS member_id, {pivot} FROM ({current}) AS m LEFT JOIN ({lacking}) AS nc "
        f"ON nc.profile_id = m.profile_id LEFT JOIN tl_golden AS g ON g.profile_id = m.profile_id AND g.field IN ({fields}) "
        "WHERE nc.profile_id IS NULL GROUP BY m.profile_id ORDER BY m.profile_id")
    members = pa.table({c: table.column(c).cast(pa.string()) if table.num_rows else pa.array([], pa.string())
                        for c in MEMBER_COLUMNS}, schema=MEMBER_SCHEMA)
    before = int(figures[0]["size"])
    return Selection(audience, channel, build_id, members, before, before - members.num_rows,
                     int(figures[0]["excluded_suppressed"]), int(figures[0]["excluded_by_exclusion"]))


# --------------------------------------------------------------------------- preview


def mask_email(email: str | None) -> str:
    """s***@example.com: enough to recognise a test address, not enough to read one."""
    if not email or "@" not in email:
        return ""
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"


@dataclass
class Preview:
    """What `threadline audiences preview` shows, evaluated now against the published traits."""

    audience: str
    where: str
    as_of: datetime | None
    size: int
    matched: int
    excluded_by_exclusion: int
    excluded_suppressed: int
    excluded_no_consent: int  # lacking a requires_consent channel
    lacking_consent: dict[str, int]  # of the members: how many a push on each channel would leave out
    overlap: dict[str, int]  # other audience -> members in both
    sample: list[dict[str, Any]] = field(default_factory=list)  # profile_id, masked email, traits used
    unusable_suppression: dict[str, int] = field(default_factory=dict)
    min_size: int = 0
    decisions: dict[str, dict[str, int]] = field(default_factory=dict)  # campaign -> reason -> people (decisions/preview.py)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


def preview(store: ProfileStore, audience: str, sample: int = 5, keep_work: bool = False) -> Preview:
    """Evaluate every audience as the config says now (nothing is stored) and describe one.
    With `keep_work` the evaluation (`tl_work_a_eval`) is left for the caller to read and drop."""
    config, engine = store.config, store.engine
    spec = config.audiences.get(audience)
    if spec is None:
        raise _unknown_audience(config, audience)
    unusable = _evaluate(store)
    try:
        figures = _figures(store).get(audience, {"matched": 0, "size": 0, "excluded_by_exclusion": 0,
                                                 "excluded_suppressed": 0, "excluded_no_consent": 0})
        members = f"(SELECT profile_id FROM tl_work_a_eval WHERE audience = {lit(audience)} AND dropped_by IS NULL)"
        lacking = {ch: int(engine.scalar(f"SELECT COUNT(*) FROM ({consent.lacking_consent_sql(members, ch, spec.purpose, config.consent)}) AS x") or 0)
                   for ch in CHANNELS}
        overlap = {r["audience"]: int(r["n"]) for r in engine.rows(
            f"SELECT e.audience, COUNT(*) AS n FROM tl_work_a_eval AS e JOIN {members} AS m ON m.profile_id = e.profile_id "
            f"WHERE e.dropped_by IS NULL AND e.audience <> {lit(audience)} GROUP BY e.audience")}
        overlap = {name: overlap.get(name, 0) for name in config.audiences if name != audience}
        used = sorted(t for t in expr.traits_used(check_audiences(config)[audience])
                      if compute.catalog(config)[t].origin != "profile")
        columns = "".join(f", t.{quote(t)}" for t in used)
        rows = engine.rows(
            f"SELECT m.profile_id, g.value AS email{columns} FROM {members} AS m JOIN tl_traits AS t ON t.profile_id = m.profile_id "
            f"LEFT JOIN tl_golden AS g ON g.profile_id = m.profile_id AND g.field = 'email' ORDER BY m.profile_id LIMIT {int(sample)}")
        for row in rows:
            row["email"] = mask_email(row["email"])
    finally:
        engine.run([] if keep_work else [f"DROP TABLE IF EXISTS {t}" for t in WORK_TABLES])
    return Preview(audience, spec.where, compute.latest_as_of(store), figures["size"], figures["matched"],
                   figures["excluded_by_exclusion"], figures["excluded_suppressed"], figures["excluded_no_consent"],
                   lacking, overlap, rows, {k: v for k, v in unusable.items() if v}, spec.min_size)


def latest_sizes(store: ProfileStore) -> dict[str, dict[str, Any]]:
    """Audience -> its figures at the latest evaluation (with the previous size), for listings."""
    latest = _latest(store)
    if latest is None:
        return {}
    seq = latest[0]
    rows = store.engine.rows(
        "SELECT s.audience, s.size, s.matched, s.excluded_by_exclusion, s.excluded_suppressed, s.excluded_no_consent, "
        "s.added, s.removed, s.status, e.build_id, e.evaluated_at FROM tl_audience_sizes AS s "
        f"JOIN tl_audience_evaluations AS e ON e.seq = s.seq WHERE s.seq = {seq}")
    return {r["audience"]: r for r in rows}
