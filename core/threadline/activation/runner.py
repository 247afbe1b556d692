"""The generic push runner: one audience, one platform, as a diff against a ledger.

    members ─► minimum? ─► dest.prepare ─► ledger.diff ─► writer.remove … writer.add … finish
                                                            │ each confirmed answer
                                                            ▼
                                                     ledger.apply (or, for a platform that
                                                     applies nothing until its upload job
                                                     runs, every answer at the end)

A push killed midway resumes where the platform's state is known: the ledger only moves with
answers the platform gave, so nobody it holds is sent again and a removal stays pending until
the platform took it. A mirror sends every member and replaces the ledger at the end.

Where the ledger lives is the store's business (`Ledger` below): the profile store keeps it
in its own engine and computes the diff there, so a million-member ledger never travels
through Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import (
    MEMBER_SCHEMA,
    AudienceDestination,
    AudienceTarget,
    PushMode,
    PushReport,
    PushResult,
    ThreadlineError,
)


class Ledger(Protocol):
    """What a platform is known to hold for one activation, as prepared rows (`member_id`
    first). Rows the platform refused are remembered and not offered again by `diff` until
    the member's prepared identifiers change."""

    skipped_refused: int  # set by `diff`: members held back because the platform refused them before

    def diff(self, current: pa.Table) -> tuple[pa.Table, pa.Table]:
        """(rows to add, ledger rows to remove): members new or changed, and members gone or changed."""

    def apply(self, op: str, chunk: pa.Table, result: PushResult) -> None:
        """Move the ledger by one confirmed request: removed rows leave, accepted adds enter,
        refused adds are remembered, a refused removal stays."""

    def replace(self, rows: pa.Table) -> None:
        """After a mirror: the ledger is exactly these rows."""


@dataclass(kw_only=True)
class PushTally:
    """What one push did, counted as it went (a store adds its own bookkeeping around it)."""

    outcome: str = "pushed"  # pushed | below_minimum (a failure raises)
    message: str = ""
    members: int = 0
    adds: int = 0
    removes: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    match_estimate: int | None = None
    skipped_refused: int = 0  # refused before with the same identifiers: not sent again
    rejection_reasons: dict[str, int] = field(default_factory=dict)

    def count(self, result: PushResult) -> None:
        self.accepted += result.accepted
        self.rejected += len(result.rejected)
        self.sent += result.accepted + len(result.rejected)
        for r in result.rejected:
            self.rejection_reasons[r.reason] = self.rejection_reasons.get(r.reason, 0) + 1

    def merge(self, report: PushReport) -> None:
        # the platform's end-of-push figures (a job's final counts) win over the per-request sums
        if report.sent:
            self.sent, self.accepted, self.rejected = report.sent, report.accepted, report.rejected
        self.match_estimate = report.match_estimate
        if report.details.get("file"):  # a file destination: say where the list is (summary, report)
            self.message = f"wrote {report.details['file']}"


def push_audience(dest: AudienceDestination, dest_config: Any, members: pa.Table, target: AudienceTarget, *,
                  ledger_for: Callable[[pa.Schema], Ledger], minimum: int = 0, batch_rows: int | None = None,
                  tally: PushTally | None = None) -> PushTally:
    """Diff `members` (MEMBER_SCHEMA) against the ledger `ledger_for(schema)` gives and push.
    Raises on failure; the ledger keeps what the platform confirmed. `target.adds` and
    `target.removes` are filled in here, once the diff is known."""
    tally = tally or PushTally()
    members = members.select(list(MEMBER_SCHEMA.names)).cast(MEMBER_SCHEMA)
    tally.members = members.num_rows
    minimum = max(dest.min_members, minimum)
    if members.num_rows < minimum:
        tally.outcome = "below_minimum"
        tally.message = (f"audience {target.audience!r} has {members.num_rows:,} consenting "
                         f"member{'' if members.num_rows == 1 else 's'}; "
                         f"{dest.name} needs at least {minimum:,}, so nothing was sent (the platform keeps the last push)")
        return tally
    prepared = dest.prepare(dest_config, members)
    if prepared.column_names[:1] != ["member_id"] or prepared.num_rows != members.num_rows:
        raise ThreadlineError(f"{dest.name}.prepare() must return one row per member with member_id first")
    # a destination that only mirrors never needs to remove anyone by their identifiers, so
    # its ledger keeps member ids only (no plain names and addresses of a direct-mail file)
    keep = prepared.column_names if PushMode.DIFF in dest.modes else ["member_id"]
    ledger = ledger_for(prepared.select(keep).schema)
    mirror = target.mode == PushMode.MIRROR
    adds, removes = (prepared, prepared.slice(0, 0)) if mirror else ledger.diff(prepared)
    tally.adds, tally.removes, tally.skipped_refused = adds.num_rows, removes.num_rows, ledger.skipped_refused
    if not adds.num_rows and not removes.num_rows and not mirror:
        return tally
    size = min(batch_rows or dest.max_batch_rows, dest.max_batch_rows)
    target = AudienceTarget(target.activation, target.audience, target.mode, target.run_id, adds.num_rows, removes.num_rows)
    writer = dest.open_audience(dest_config, target)
    answered: list[tuple[str, pa.Table, PushResult]] = []
    try:
        for op, rows in (("remove", removes), ("add", adds)):
            for offset in range(0, rows.num_rows, size):
                chunk = rows.slice(offset, size)
                result = getattr(writer, op)(chunk)
                tally.count(result)
                if dest.applies_each_batch and not mirror:
                    ledger.apply(op, chunk, result)
                else:
                    answered.append((op, chunk, result))
        report = writer.finish()
    except BaseException:
        writer.abort()
        raise
    if mirror:
        accepted = [without_rejected(chunk, result).select(keep) for _, chunk, result in answered]
        ledger.replace(pa.concat_tables(accepted) if accepted else prepared.select(keep).slice(0, 0))
    else:
        for op, chunk, result in answered:
            ledger.apply(op, chunk, result)
    tally.merge(report)
    return tally


def without_rejected(rows: pa.Table, result: PushResult) -> pa.Table:
    """`rows` less those the platform refused in `result`."""
    if not result.rejected:
        return rows
    rejected = pa.array(sorted({r.member_id for r in result.rejected}), pa.string())
    return rows.filter(pc.invert(pc.is_in(rows.column("member_id"), value_set=rejected)))
