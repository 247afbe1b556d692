"""`threadline audiences preview` with decisions: the audience as the job file says now, and
what the decisions would make of it (per campaign carrying it, how many people each reason
leaves out; per sampled member, their reason). Nothing is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline_profiles.audiences import membership
from threadline_profiles.decisions.engine import WORK_TABLES, decide
from threadline_profiles.engines.base import lit

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore


def _evaluated(audience: str) -> str:
    return f"SELECT profile_id FROM tl_work_a_eval WHERE audience = {lit(audience)} AND dropped_by IS NULL"


def preview(store: ProfileStore, audience: str, sample: int = 5) -> membership.Preview:
    """`membership.preview`, plus `decisions` (campaign -> reason -> people) and, on each
    sampled member, `decision` (e.g. `winback: lower priority than loyal_thanks`)."""
    result = membership.preview(store, audience, sample, keep_work=True)
    engine = store.engine
    try:
        campaigns = [n for n, c in store.config.decisions.campaigns.items() if c.audience == audience]
        if not campaigns:
            return result
        decide(store, result.as_of, members_of=_evaluated)
        named = ", ".join(lit(c) for c in campaigns)
        for row in engine.rows(f"SELECT campaign, reason, COUNT(*) AS n FROM tl_work_d_out WHERE campaign IN ({named}) "
                               "GROUP BY campaign, reason ORDER BY campaign, reason"):
            result.decisions.setdefault(row["campaign"], {})[row["reason"]] = int(row["n"])
        ids = ", ".join(lit(r["profile_id"]) for r in result.sample)
        reasons: dict[str, list[str]] = {}
        for row in engine.rows(f"SELECT profile_id, campaign, reason, detail FROM tl_work_d_out WHERE campaign IN ({named}) "
                               f"AND profile_id IN ({ids or 'NULL'}) ORDER BY campaign"):
            text = reason_text(row["reason"], row["detail"])
            reasons.setdefault(row["profile_id"], []).append(f"{row['campaign']}: {text}")
        for row in result.sample:
            row["decision"] = "; ".join(reasons.get(row["profile_id"], []))
    finally:
        engine.run([f"DROP TABLE IF EXISTS {t}" for t in (*WORK_TABLES, *membership.WORK_TABLES)])
    return result


def reason_text(reason: str, detail: str | None) -> str:
    """A decision's reason as people read it."""
    if reason == "lower_priority" and detail:
        return f"lower priority than {detail}"
    return reason.replace("_", " ")
