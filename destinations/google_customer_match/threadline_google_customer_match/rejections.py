"""Members Google will not take, reported by member id with Google's reason (never the value)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import RowRejection

from threadline_google_customer_match.errors import GoogleError
from threadline_google_customer_match.identifiers import identifier_counts

NO_IDENTIFIER = ("MISSING_USER_IDENTIFIER: no email, phone, or first name + last name + country + postal code "
                 "(Google matches an address only whole)")


def split_unmatchable(rows: pa.Table) -> tuple[pa.Table, list[RowRejection]]:
    """(rows with at least one identifier, rejections for the others) — Google refuses a
    member without identifiers, so it is not sent at all."""
    matchable = pc.greater(identifier_counts(rows), 0)
    if pc.all(matchable).as_py() is not False:
        return rows, []
    unmatchable = rows.filter(pc.invert(matchable)).column("member_id").to_pylist()
    return rows.filter(matchable), [RowRejection(member_id, NO_IDENTIFIER) for member_id in unmatchable]


def rejections_for(rows: pa.Table, errors: list[GoogleError]) -> list[RowRejection]:
    """One rejection per member an error names (by its index in `rows`); several errors about
    one member are joined."""
    ids = rows.column("member_id")
    reasons: dict[int, list[str]] = {}
    for error in errors:
        if error.index is not None and 0 <= error.index < rows.num_rows:
            reasons.setdefault(error.index, []).append(error.reason())
    return [RowRejection(str(ids[i].as_py()), "; ".join(text)) for i, text in sorted(reasons.items())]


def without(rows: pa.Table, rejected: list[RowRejection]) -> pa.Table:
    """`rows` minus the rejected members."""
    if not rejected:
        return rows
    gone = pa.array([r.member_id for r in rejected], pa.string())
    return rows.filter(pc.invert(pc.is_in(rows.column("member_id"), value_set=gone)))
