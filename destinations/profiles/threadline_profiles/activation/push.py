"""Pushing audiences to their destinations as diffs, resumably.

For each activation the store keeps a *ledger* (`tl_ledger_<activation>`): the rows, as the
destination prepared them (hashed), of every member the platform is known to hold. A push

1. selects the audience's members who consent to the destination's channel,
2. prepares them (normalize + hash, in bulk) and compares them with the ledger:
   members not in the ledger, or whose prepared identifiers changed, are added; ledger
   rows whose member left the audience (or was forgotten, or changed) are removed,
3. sends removes, then adds, in the platform's batch size, and moves the ledger with each
   answer (or, for platforms that apply nothing until an upload job runs, at the end).

A push killed midway therefore resumes where the platform's state is known: nobody the
ledger holds is sent again, and a removal stays pending until the platform took it. Rows the
platform rejected stay out of the ledger and go to `tl_refused_<activation>`: they are not sent
again until the member's prepared identifiers change (a new email, a fixed phone). A mirror push sends
every member and replaces the ledger at the end. The ledger holds hashed identifiers, and of
the plain columns a destination declares (`plain_columns`) only what a removal needs: none
at all where the platform finds members by a hash (Mailchimp's subscriber hash,
`ledger_omitted`), encrypted under the store's secret where it needs the address (Klaviyo,
`ledger_encrypted`; see `seal.py`). That is what lets `threadline forget` remove a person
from platforms after the store forgot them, with no address of theirs left in the store.
"""

from __future__ import annotations

import fcntl
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from threadline.activation.runner import PushTally, push_audience, without_rejected
from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    ConfigError,
    PushMode,
    PushResult,
    ThreadlineError,
)
from threadline.secrets import redact

from threadline_profiles.activation.seal import Seal
from threadline_profiles.config.activations import Activation
from threadline_profiles.decisions import contacts
from threadline_profiles.decisions.engine import chosen_sql, decided
from threadline_profiles.engines.base import lit, quote

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

log = logging.getLogger("threadline.profiles.push")

PUSH_TABLES = [
    "CREATE TABLE IF NOT EXISTS tl_pushes (push_id VARCHAR, run_id VARCHAR, activation VARCHAR, audience VARCHAR, "
    "destination VARCHAR, mode VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, outcome VARCHAR, members BIGINT, "
    "adds BIGINT, removes BIGINT, sent BIGINT, accepted BIGINT, rejected BIGINT, match_estimate BIGINT, "
    "excluded_no_consent BIGINT, excluded_suppressed BIGINT, message VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_push_rejections (push_id VARCHAR, activation VARCHAR, reason VARCHAR, rows_rejected BIGINT)",
    # every push whose platform said how many of the people it holds it matched (ad platforms
    # match hashed identifiers to their users): `held` is the ledger after the push
    "CREATE TABLE IF NOT EXISTS tl_match_rates (push_id VARCHAR, activation VARCHAR, destination VARCHAR, channel VARCHAR, "
    "pushed_at TIMESTAMP, held BIGINT, matched BIGINT, match_rate DOUBLE PRECISION)",
]


@dataclass
class PushOutcome(PushTally):
    """What one push of one activation did (outcome: pushed, below_minimum, failed): the
    runner's counts plus the store's bookkeeping."""

    activation: str
    audience: str
    destination: str
    mode: str
    excluded_no_consent: int = 0
    excluded_suppressed: int = 0
    push_id: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6])
    seconds: float = 0.0
    channel_note: str = ""
    excluded_by_decision: int = 0  # members its campaign's decisions left out (lower priority, capped, held out, ...)

    def summary(self) -> str:
        head = f"push {self.activation} ({self.destination}, {self.mode}): "
        if self.outcome != "pushed":
            return head + f"{self.outcome} — {self.message}"
        text = (f"{self.members:,} members; sent +{self.adds:,} −{self.removes:,}; "
                f"{self.accepted:,} accepted, {self.rejected:,} rejected")
        if self.match_estimate is not None:
            text += f"; platform match estimate {self.match_estimate:,}"
        if self.excluded_no_consent:
            text += f"; {self.excluded_no_consent:,} left out for lack of {self.channel_note}consent"
        if self.excluded_by_decision:
            text += f"; {self.excluded_by_decision:,} left out by the campaign's decisions"
        if self.skipped_refused:
            text += f"; {self.skipped_refused:,} not sent again (refused before, identifiers unchanged)"
        if self.rejection_reasons:
            text += " (" + "; ".join(f"{n:,}× {r}" for r, n in self.rejection_reasons.items()) + ")"
        if self.message:  # where a file destination wrote
            text += f"; {self.message}"
        return head + text


class PushLockedError(ThreadlineError):
    """Another push of the same activation is running."""


# --------------------------------------------------------------------------- entry points


def audience_destination(name: str) -> type[AudienceDestination]:
    """The installed audience destination plugin called `name` (ConfigError if none)."""
    from threadline.plugins import registry

    return registry().audience_destination(name)


def check_activations(config: Any, reach: bool = False) -> None:
    """Raise ConfigError (naming `activations.<name>...`) for an activation that names a missing
    audience, an unknown destination, a mode it cannot do, or config its spec rejects. With
    `reach`, also ask each destination to check it can reach the platform."""
    audiences = getattr(config, "audiences", None) or {}
    for name, activation in config.activations.items():
        where = f"activations.{name}"
        if activation.audience not in audiences:
            raise ConfigError(f"activation {name!r} pushes audience {activation.audience!r}, which is not declared",
                              field=f"{where}.audience", hint=f"audiences declared: {', '.join(audiences) or '(none)'}")
        try:
            dest_cls = audience_destination(activation.connector)
        except ConfigError as exc:
            raise ConfigError(exc.message, field=f"{where}.connector", hint=exc.hint) from None
        if activation.mode not in dest_cls.modes:
            raise ConfigError(f"{activation.connector} cannot push in {activation.mode.value} mode",
                              field=f"{where}.mode", hint=f"it can: {', '.join(m.value for m in dest_cls.modes)}")
        dest_config = destination_config(name, activation, dest_cls)
        campaign = config.decisions.campaign_of(name) if getattr(config, "decisions", None) else None
        if campaign and config.decisions.campaigns[campaign].channel != dest_cls.channel:
            raise ConfigError(f"campaign {campaign!r} is on channel {config.decisions.campaigns[campaign].channel!r}, "
                              f"but activation {name!r} pushes to {activation.connector}, a {dest_cls.channel} destination",
                              field=f"decisions.campaigns.{campaign}.channel", hint=f"set channel: {dest_cls.channel}")
        if reach:
            try:
                dest_cls().check(dest_config)
            except ConfigError as exc:
                raise ConfigError(exc.message, field=f"{where}.config.{exc.field}" if exc.field else f"{where}.config",
                                  hint=exc.hint) from None


def destination_config(name: str, activation: Activation, dest_cls: type[AudienceDestination]) -> Any:
    from pydantic import ValidationError

    try:
        context = {"base_dir": activation.base_dir} if activation.base_dir is not None else None
        return dest_cls.spec.model_validate(activation.config, context=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"activation {name!r}: {first['msg']}", field=f"activations.{name}.config.{loc}",
                          hint=f"see the README of {activation.connector} for its config table") from None


def push_all(store: ProfileStore, run_id: str | None = None, only: list[str] | None = None,
             on_build: bool = False, quiet: bool = False) -> list[PushOutcome]:
    """Push every activation (or the `only` ones; after a build, those with push_on_build).
    Each outcome is logged, unless `quiet` (a command that prints them itself)."""
    config = store.config
    unknown = [n for n in only or [] if n not in config.activations]
    if unknown:
        raise ConfigError(f"no activation named {unknown[0]!r}",
                          hint=f"activations declared: {', '.join(config.activations) or '(none)'}")
    outcomes = []
    for name, activation in config.activations.items():
        if (only and name not in only) or (on_build and not activation.push_on_build):
            continue
        outcome = push_activation(store, name, activation, run_id)
        if not quiet:
            (log.info if outcome.outcome == "pushed" else log.warning)("%s", outcome.summary())
        outcomes.append(outcome)
    return outcomes


def push_activation(store: ProfileStore, name: str, activation: Activation, run_id: str | None = None) -> PushOutcome:
    """Select, diff and push one activation; failures are in the outcome, not raised."""
    from threadline_profiles.audiences.membership import select_members

    dest_cls = audience_destination(activation.connector)
    outcome = PushOutcome(name, activation.audience, activation.connector, activation.mode.value)
    outcome.channel_note = f"{dest_cls.channel} "
    started = time.monotonic()
    try:
        with push_lock(store, name):
            dest_config = destination_config(name, activation, dest_cls)
            selection = select_members(store, activation.audience, dest_cls.channel)
            outcome.excluded_no_consent = selection.excluded_no_consent
            outcome.excluded_suppressed = selection.excluded_suppressed
            campaign = store.config.decisions.campaign_of(name)
            members = _follow_decisions(store, campaign, selection.members, outcome)
            try:
                push_members(store, name, activation, dest_cls(), dest_config, members, outcome, run_id)
            finally:  # what the platform confirmed before a failure is contact too
                contacts.record_contacts(store, name, campaign, dest_cls.channel, outcome.push_id)
    except ThreadlineError as exc:  # the message goes to tl_pushes and the report: no secret, no member
        outcome.outcome, outcome.message = "failed", redact(exc.render())
    except Exception as exc:  # a plugin bug must not take the build down; say what broke
        outcome.outcome, outcome.message = "failed", redact(f"{type(exc).__name__} in {activation.connector}: {exc}")
    outcome.seconds = round(time.monotonic() - started, 3)
    record(store, outcome, run_id, dest_cls.channel)
    return outcome


def _follow_decisions(store: ProfileStore, campaign: str | None, members: pa.Table, outcome: PushOutcome) -> pa.Table:
    """The members the latest decisions chose for `campaign` (all of them when the activation
    carries no campaign). Those left out are not sent, and the diff removes them if they were."""
    if campaign is None:
        return members
    if not decided(store, campaign):
        raise ThreadlineError(f"campaign {campaign!r} has not been decided yet",
                              hint="run `threadline profiles build` so the decisions stage takes it")
    chosen = store.engine.query(chosen_sql(campaign)).column(0).combine_chunks().cast(pa.string())
    kept = members.filter(pc.is_in(members.column("member_id"), value_set=chosen))
    outcome.excluded_by_decision = members.num_rows - kept.num_rows
    return kept


def push_members(store: ProfileStore, name: str, activation: Activation, dest: AudienceDestination, dest_config: Any,
                 members: pa.Table, outcome: PushOutcome, run_id: str | None = None) -> PushOutcome:
    """Diff `members` (MEMBER_SCHEMA) against the activation's ledger and push, with the
    generic runner (`threadline.activation.runner`); raises on failure (the ledger keeps what
    the platform confirmed)."""
    target = AudienceTarget(name, activation.audience, activation.mode, run_id or outcome.push_id, 0, 0)
    seal = _seal(store, dest) if PushMode.DIFF in dest.modes else None
    push_audience(dest, dest_config, members, target,
                  ledger_for=lambda schema: Ledger(store, name, schema, dest.ledger_omitted, seal),
                  minimum=_audience_min_size(store, activation.audience), batch_rows=activation.batch_rows,
                  tally=outcome)
    return outcome


# --------------------------------------------------------------------------- the ledger


class Ledger:
    """`tl_ledger_<activation>`: what the platform holds, as prepared rows — without the
    destination's `ledger_omitted` columns, and with its `ledger_encrypted` ones sealed
    (encrypted, plus a keyed digest the diff compares; see `seal.py`)."""

    def __init__(self, store: ProfileStore, activation: str, schema: pa.Schema, omitted: tuple[str, ...] = (),
                 seal: Seal | None = None) -> None:
        self.engine, self.table = store.engine, f"tl_ledger_{activation}"
        # rows the platform refused: not sent again until the member's identifiers change
        self.refused = f"tl_refused_{activation}"
        self.seal = seal
        schema = pa.schema([f for f in schema if f.name not in omitted])
        if seal is not None:
            for digest in seal.digests:
                schema = schema.append(pa.field(digest, pa.string()))
        self.schema = schema
        sealed = set(seal.columns) if seal else set()
        self.compared = [c for c in schema.names if c != "member_id" and c not in sealed]  # what tells a change
        self.skipped_refused = 0
        if not self.engine.table_exists(self.table):
            self.engine.load_table(self.table, schema.empty_table())
        if not self.engine.table_exists(self.refused) or (
                [c.lower() for c in self.engine.table_columns(self.refused)] != [c.lower() for c in schema.names]):
            self.engine.load_table(self.refused, schema.empty_table())
        if [c.lower() for c in self.engine.table_columns(self.table)] != [c.lower() for c in schema.names]:
            self._convert()
        self.columns = schema.names

    def _convert(self) -> None:
        """The destination now keeps other columns (a new plugin version, a column no longer
        kept or now sealed): the rows are rewritten in the new shape, dropped columns gone,
        sealed ones encrypted, new ones empty. Members whose compared columns were added are
        then removed and re-added once by the next diff."""
        old = self.engine.query(f"SELECT * FROM {self.table}")
        count = old.num_rows
        plain = [f for f in self.schema if not f.name.startswith("_tl_digest_")]
        rows = pa.table({f.name: old.column(f.name).cast(f.type) if f.name in old.column_names else pa.nulls(count, f.type)
                         for f in plain})
        self.engine.load_table(self.table, self.stored(rows))

    def stored(self, rows: pa.Table) -> pa.Table:
        """Prepared rows as this ledger keeps them: its columns only, sealed ones sealed."""
        rows = rows.select([c for c in self.schema.names if c in rows.column_names and not c.startswith("_tl_digest_")])
        return (self.seal.seal(rows) if self.seal else rows).select(self.schema.names).cast(self.schema)

    def diff(self, current: pa.Table) -> tuple[pa.Table, pa.Table]:
        """(rows to add, ledger rows to remove): new or changed members, and members gone or
        changed. Runs in the store's own engine, so the ledger never leaves it; the members'
        sealed values are compared by their digests, computed first (in bulk, by DuckDB)."""
        view = f"_tl_push_{uuid.uuid4().hex[:8]}"
        compared = current if self.seal is None else self.seal.with_digests(current)
        self.engine.register_arrow(view, compared)
        try:
            changed = " OR ".join(f"c.{quote(c)} IS DISTINCT FROM l.{quote(c)}" for c in self.compared) or "FALSE"
            # new or changed members, in one pass; those refused before with these very
            # identifiers are held back (marked, then dropped here)
            same = " AND ".join(f"r.{quote(c)} IS NOT DISTINCT FROM c.{quote(c)}" for c in ["member_id", *self.compared])
            candidates = self.engine.query(
                f"SELECT c.*, EXISTS (SELECT 1 FROM {self.refused} AS r WHERE r.member_id = c.member_id AND {same}) "
                f"AS _tl_refused FROM {view} AS c LEFT JOIN {self.table} AS l ON l.member_id = c.member_id "
                f"WHERE l.member_id IS NULL OR {changed} ORDER BY c.member_id")
            held = pc.fill_null(candidates.column("_tl_refused"), False) if candidates.num_rows else pa.array([], pa.bool_())
            self.skipped_refused = int(pc.sum(held).as_py() or 0) if candidates.num_rows else 0
            adds = candidates.filter(pc.invert(held)).drop_columns(["_tl_refused"]) if candidates.num_rows else current.slice(0, 0)
            removes = self.engine.query(
                f"SELECT l.* FROM {self.table} AS l LEFT JOIN {view} AS c ON c.member_id = l.member_id "
                f"WHERE c.member_id IS NULL OR {changed} ORDER BY l.member_id")
        finally:
            self.engine.unregister(view)
        return adds.select(current.column_names).cast(current.schema), self.seal.unseal(removes) if self.seal else removes

    def apply(self, op: str, chunk: pa.Table, result: PushResult) -> None:
        """Move the ledger by one confirmed request: removed rows leave, accepted adds enter."""
        rejected = {r.member_id for r in result.rejected}
        view = f"_tl_push_{uuid.uuid4().hex[:8]}"
        ids = pa.table({"member_id": chunk.column("member_id")})
        self.engine.register_arrow(view + "_ids", ids)
        try:
            with self.engine.transaction():
                if op == "remove":
                    kept = without_rejected(ids, result)  # a refused removal stays pending
                    self.engine.register_arrow(view, kept)
                    try:
                        self.engine.execute(f"DELETE FROM {self.table} WHERE member_id IN (SELECT member_id FROM {view})")
                    finally:
                        self.engine.unregister(view)
                else:
                    self.engine.execute(f"DELETE FROM {self.refused} WHERE member_id IN (SELECT member_id FROM {view}_ids)")
                    if rejected:
                        refused = chunk.filter(pc.is_in(chunk.column("member_id"), value_set=pa.array(sorted(rejected))))
                        self.engine.register_arrow(view + "_ref", self.stored(refused))
                        try:
                            self.engine.execute(f"INSERT INTO {self.refused} SELECT * FROM {view}_ref")
                        finally:
                            self.engine.unregister(view + "_ref")
                    accepted = self.stored(without_rejected(chunk, result) if rejected else chunk)
                    self.engine.execute(f"DELETE FROM {self.table} WHERE member_id IN (SELECT member_id FROM {view}_ids)")
                    self.engine.register_arrow(view, accepted)
                    try:
                        cols = ", ".join(quote(c) for c in self.columns)
                        self.engine.execute(f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {view}")
                    finally:
                        self.engine.unregister(view)
        finally:
            self.engine.unregister(view + "_ids")

    def replace(self, rows: pa.Table) -> None:
        view = f"_tl_push_{uuid.uuid4().hex[:8]}"
        self.engine.register_arrow(view, self.stored(rows))
        try:
            with self.engine.transaction():
                self.engine.run([f"DELETE FROM {self.table}", f"INSERT INTO {self.table} SELECT * FROM {view}"])
        finally:
            self.engine.unregister(view)


def _seal(store: ProfileStore, dest: AudienceDestination) -> Seal | None:
    """The seal for a destination's `ledger_encrypted` columns (the store's secret is made if
    it has none yet); None when it has none."""
    if not dest.ledger_encrypted:
        return None
    from threadline_profiles.activation.secret import store_secret

    secret = store_secret(store, create=True)
    assert secret is not None
    return Seal(tuple(dest.ledger_encrypted), secret)


def ledger_member_ids(store: ProfileStore, activation: str) -> set[str]:
    table = f"tl_ledger_{activation}"
    if not store.engine.table_exists(table):
        return set()
    return set(store.engine.query(f"SELECT member_id FROM {table}").column(0).to_pylist())


# --------------------------------------------------------------------------- bookkeeping


@contextmanager
def push_lock(store: ProfileStore, activation: str) -> Iterator[None]:
    """One push per activation at a time (a second one fails at once, naming the first)."""
    folder = Path(store.config.reports_path()) / ".push-locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{activation}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PushLockedError(f"activation {activation!r} is being pushed right now by {holder}",
                                  hint="wait for it to finish; the next push sends whatever it did not") from None
        handle.seek(0)
        handle.truncate()
        import os

        handle.write(f"pid {os.getpid()} since {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(store: ProfileStore, outcome: PushOutcome, run_id: str | None, channel: str | None = None) -> None:
    """Add the push to `tl_pushes` (and its rejections), and its match rate when the platform gave one."""
    engine = store.engine
    with store.lock:
        engine.run(PUSH_TABLES)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        begun = datetime.fromtimestamp(now.timestamp() - outcome.seconds)
        values = [outcome.push_id, run_id, outcome.activation, outcome.audience, outcome.destination, outcome.mode,
                  begun.isoformat(sep=" "), now.isoformat(sep=" "), outcome.outcome, outcome.members, outcome.adds,
                  outcome.removes, outcome.sent, outcome.accepted, outcome.rejected, outcome.match_estimate,
                  outcome.excluded_no_consent, outcome.excluded_suppressed, outcome.message[:2000]]
        rows = [f"INSERT INTO tl_pushes VALUES ({', '.join(_sql_value(v, i) for i, v in enumerate(values))})"]
        rows += [f"INSERT INTO tl_push_rejections VALUES ({lit(outcome.push_id)}, {lit(outcome.activation)}, {lit(r)}, {n})"
                 for r, n in outcome.rejection_reasons.items()]
        ledger = f"tl_ledger_{outcome.activation}"
        if outcome.outcome == "pushed" and outcome.match_estimate is not None and engine.table_exists(ledger):
            held = int(engine.scalar(f"SELECT COUNT(DISTINCT member_id) FROM {ledger}") or 0)
            rate = "NULL" if held == 0 else repr(outcome.match_estimate / held)
            rows.append(f"INSERT INTO tl_match_rates VALUES ({lit(outcome.push_id)}, {lit(outcome.activation)}, "
                        f"{lit(outcome.destination)}, {lit(channel)}, CAST({lit(now.isoformat(sep=' '))} AS TIMESTAMP), "
                        f"{held}, {int(outcome.match_estimate)}, {rate})")
        with engine.transaction():
            engine.run(rows)


def push_history(store: ProfileStore, limit: int = 200) -> list[dict[str, Any]]:
    store.engine.run(PUSH_TABLES)
    return store.engine.rows(f"SELECT * FROM tl_pushes ORDER BY finished_at DESC LIMIT {int(limit)}")


def _sql_value(value: Any, index: int) -> str:
    if value is None:
        return "NULL"
    if index in (6, 7):
        return f"CAST({lit(value)} AS TIMESTAMP)"
    return lit(value)


def _audience_min_size(store: ProfileStore, audience: str) -> int:
    audiences = getattr(store.config, "audiences", None) or {}
    spec = audiences.get(audience)
    return int(getattr(spec, "min_size", 0) or 0)


def outcome_dict(outcome: PushOutcome) -> dict[str, Any]:
    return asdict(outcome)


def render_pushes(store: ProfileStore, table: Any) -> str:
    """The report's section: each activation's latest push, and the rejection reasons."""
    if not store.engine.table_exists("tl_pushes"):
        return ""
    rows = store.engine.rows(
        "SELECT p.* FROM tl_pushes AS p JOIN (SELECT activation, MAX(finished_at) AS at FROM tl_pushes GROUP BY activation) "
        "AS l ON l.activation = p.activation AND l.at = p.finished_at ORDER BY p.activation")
    if not rows:
        return ""
    shown = [{**r, "change": f"+{r['adds']:,} −{r['removes']:,}", "left out (no consent)": r["excluded_no_consent"],
              "match estimate": r["match_estimate"] if r["match_estimate"] is not None else "",
              "note": (r["message"] or "")[:160]} for r in rows]
    reasons = store.engine.rows(
        "SELECT r.activation, r.reason, SUM(r.rows_rejected) AS rows_rejected FROM tl_push_rejections AS r "
        "JOIN (SELECT activation, MAX(finished_at) AS at FROM tl_pushes GROUP BY activation) AS l ON l.activation = r.activation "
        "JOIN tl_pushes AS p ON p.push_id = r.push_id AND p.finished_at = l.at GROUP BY r.activation, r.reason "
        "ORDER BY r.activation, rows_rejected DESC")
    return ("<h2>Pushes to platforms</h2><p class=muted>each activation's latest push: who was sent (a diff since the "
            "last successful push, or everyone for a mirror) and what the platform accepted</p>"
            + table(shown, ["activation", "audience", "destination", "mode", "outcome", "members", "change", "accepted",
                            "rejected", "match estimate", "left out (no consent)", "note"], "no pushes")
            + "<h3>Why the platforms refused rows</h3>"
            + table(reasons, ["activation", "reason", "rows_rejected"], "no row was refused")
            + render_match_rates(store, table))


def render_match_rates(store: ProfileStore, table: Any) -> str:
    """Each platform's match rate at every push that reported one, oldest first."""
    if not store.engine.table_exists("tl_match_rates"):
        return ""
    rows = store.engine.rows("SELECT * FROM tl_match_rates ORDER BY activation, pushed_at")
    shown = [{**r, "pushed at": str(r["pushed_at"])[:16],
              "match rate": "–" if r["match_rate"] is None else f"{r['match_rate'] * 100:.1f}%"} for r in rows]
    return ("<h3>Match rates across pushes</h3><p class=muted>how many of the people a platform holds for an "
            "activation it matched to its users, as the platform reported it after each push (ad platforms give an "
            "estimate, often rounded down)</p>"
            + table(shown, ["activation", "destination", "channel", "pushed at", "held", "matched", "match rate"],
                    "no platform reported a match"))
