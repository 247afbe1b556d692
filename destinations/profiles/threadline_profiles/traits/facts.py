"""Facts: the orders, events, tickets and campaign results of every profile, typed and linked,
in work tables.

A stream mapped with an `orders`, `events`, `tickets` or `results` block is a stream of records like any
other: its identifiers resolve it into a profile (`tl_members`). Here each of its rows becomes
a fact of that profile, with the mapped columns read into fixed types whatever the source
gave: timestamps as UTC wall-clock TIMESTAMPs, amounts as DOUBLE, everything else as text.

    tl_work_f_orders   profile_id, record_key, order_key, order_id, timestamp, amount, currency, category
    tl_work_f_events   profile_id, record_key, name, timestamp
    tl_work_f_tickets  profile_id, record_key, ticket_key, ticket_id, status, timestamp, is_open
    tl_work_f_results  profile_id, record_key, campaign, result, channel, timestamp, source

A result is one of `config.RESULTS` (delivered, bounced, opened, clicked, unsubscribed), read
from the mapped `action` column's values (rows with other values, or without a campaign, are
no result: an events stream holds orders too); `source` is the mapping's key, so results can
be credited to the activations that mapping names.

Only facts up to `as_of` are kept (tickets without a timestamp too), so a build with a fixed
`as_of` gives the same traits whatever landed later. Text timestamps must be ISO 8601
(`2024-05-01`, `2024-05-01T10:00:00Z`, with or without an offset); others are left out.
An order's key is its stream and order id, so a stream of order lines counts each order once;
a row without an order id is no order (an event stream mapped as orders holds other events too).
"""

from __future__ import annotations

from datetime import datetime

from threadline_profiles.config import StreamMapping
from threadline_profiles.engines.base import Engine, lit, quote, work_table
from threadline_profiles.land.landing import LandedStream

ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
ISO_WITH_OFFSET = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
WORK_TABLES = ("tl_work_f_orders", "tl_work_f_events", "tl_work_f_tickets", "tl_work_f_results")

COLUMNS = {
    "tl_work_f_orders": [("order_key", "VARCHAR"), ("order_id", "VARCHAR"), ("timestamp", "TIMESTAMP"),
                         ("amount", "DOUBLE"), ("currency", "VARCHAR"), ("category", "VARCHAR")],
    "tl_work_f_events": [("name", "VARCHAR"), ("timestamp", "TIMESTAMP")],
    "tl_work_f_tickets": [("ticket_key", "VARCHAR"), ("ticket_id", "VARCHAR"), ("status", "VARCHAR"),
                          ("timestamp", "TIMESTAMP"), ("is_open", "BOOLEAN")],
    "tl_work_f_results": [("campaign", "VARCHAR"), ("result", "VARCHAR"), ("channel", "VARCHAR"), ("timestamp", "TIMESTAMP"),
                          ("source", "VARCHAR")],
}


def ts_literal(value: datetime) -> str:
    return f"CAST({lit(value.isoformat(sep=' ', timespec='microseconds'))} AS TIMESTAMP)"


def timestamp_expr(col: str, db_type: str) -> str:
    """Column expression `col` (of database type `db_type`) as a UTC TIMESTAMP, NULL when
    unreadable."""
    t = db_type.upper()
    if "TIME ZONE" in t and "WITHOUT" not in t or t == "TIMESTAMPTZ":
        return f"({col} AT TIME ZONE 'UTC')"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"CAST({col} AS TIMESTAMP)"
    if t in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "UBIGINT", "UINTEGER"):
        # epoch seconds, or milliseconds when the number is too large to be seconds
        return (f"(TO_TIMESTAMP(CASE WHEN {col} > 100000000000 THEN {col} / 1000.0 ELSE CAST({col} AS DOUBLE) END) "
                "AT TIME ZONE 'UTC')")
    if t in ("VARCHAR", "TEXT", "CHARACTER VARYING"):
        text = f"TRIM({col})"
        return (f"CASE WHEN NOT REGEXP_MATCHES({text}, {lit(ISO)}) THEN NULL "
                f"WHEN REGEXP_MATCHES({text}, {lit(ISO_WITH_OFFSET)}) THEN (CAST({text} AS TIMESTAMPTZ) AT TIME ZONE 'UTC') "
                f"ELSE CAST({text} AS TIMESTAMP) END")
    return "CAST(NULL AS TIMESTAMP)"


def number_expr(col: str, db_type: str) -> str:
    """Column expression `col` as DOUBLE, NULL when it is text that is not a plain decimal number."""
    t = db_type.upper()
    if t in ("VARCHAR", "TEXT", "CHARACTER VARYING"):
        return f"CASE WHEN REGEXP_MATCHES(TRIM({col}), {lit(NUMBER)}) THEN CAST(TRIM({col}) AS DOUBLE) END"
    if any(t.startswith(n) for n in ("DECIMAL", "NUMERIC", "DOUBLE", "REAL", "FLOAT", "BIGINT", "INTEGER", "SMALLINT",
                                     "HUGEINT", "UBIGINT", "UINTEGER", "TINYINT")):
        return f"CAST({col} AS DOUBLE)"
    return "CAST(NULL AS DOUBLE)"


def text_expr(col: str) -> str:
    return f"NULLIF(TRIM(CAST({col} AS VARCHAR)), '')"


def word_expr(sql: str) -> str:
    """A text value compared as a word: lower-case, spaces and dashes as underscores (as
    `config.consent_word` does in Python)."""
    return f"REPLACE(REPLACE(LOWER(TRIM({sql})), ' ', '_'), '-', '_')"


def member_join(stream: LandedStream) -> str:
    """The raw table `r` of a stream joined to the profiles its records belong to (`m`)."""
    return (f"FROM {stream.table} AS r JOIN tl_members AS m ON m.source = {lit(stream.source)} "
            f"AND m.stream = {lit(stream.stream)} AND m.pk = r._tl_key")


def _typed(column: str | None, types: dict[str, str], kind: str) -> str:
    if column is None:
        return {"timestamp": "CAST(NULL AS TIMESTAMP)", "number": "CAST(NULL AS DOUBLE)"}.get(kind, "CAST(NULL AS VARCHAR)")
    ref, db_type = f"r.{quote(column)}", types.get(column, "VARCHAR")
    if kind == "timestamp":
        return timestamp_expr(ref, db_type)
    if kind == "number":
        return number_expr(ref, db_type)
    return text_expr(ref)


def _empty(table: str) -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {quote(n)}" for n, t in [("profile_id", "VARCHAR"), ("record_key", "VARCHAR"),
                                                                      *COLUMNS[table]])
    return f"SELECT {cols} WHERE 1 = 0"


def orders_select(stream: LandedStream, mapping: StreamMapping, types: dict[str, str]) -> str:
    o = mapping.orders
    assert o is not None
    order_id = _typed(o.order_id, types, "text")
    return (
        f"SELECT m.profile_id, m.record_key, {lit(stream.key + ':')} || {order_id} AS order_key, {order_id} AS order_id, "
        f"{_typed(o.timestamp, types, 'timestamp')} AS {quote('timestamp')}, {_typed(o.amount, types, 'number')} AS amount, "
        f"{_typed(o.currency, types, 'text')} AS currency, {_typed(o.category, types, 'text')} AS category "
        f"{member_join(stream)}"
    )


def events_select(stream: LandedStream, mapping: StreamMapping, types: dict[str, str]) -> str:
    e = mapping.events
    assert e is not None
    return (f"SELECT m.profile_id, m.record_key, {_typed(e.name, types, 'text')} AS name, "
            f"{_typed(e.timestamp, types, 'timestamp')} AS {quote('timestamp')} {member_join(stream)}")


def tickets_select(stream: LandedStream, mapping: StreamMapping, types: dict[str, str]) -> str:
    k = mapping.tickets
    assert k is not None
    ticket_id, status = _typed(k.ticket_id, types, "text"), _typed(k.status, types, "text")
    open_list = ", ".join(lit(s) for s in k.open_statuses) or "NULL"
    return (
        f"SELECT m.profile_id, m.record_key, {lit(stream.key + ':')} || {ticket_id} AS ticket_key, {ticket_id} AS ticket_id, "
        f"{status} AS status, {_typed(k.timestamp, types, 'timestamp')} AS {quote('timestamp')}, "
        f"COALESCE({word_expr(status)} IN ({open_list}), FALSE) AS is_open {member_join(stream)}"
    )


def results_select(stream: LandedStream, mapping: StreamMapping, types: dict[str, str]) -> str:
    r = mapping.results
    assert r is not None
    if r.every_record is not None:
        result = lit(r.every_record)
    else:
        word = word_expr(_typed(r.action, types, "text"))
        result = "CASE " + " ".join(f"WHEN {word} IN ({', '.join(lit(w) for w in words)}) THEN {lit(name)}"
                                    for name, words in r.actions.items() if words) + " END"
    return (f"SELECT m.profile_id, m.record_key, {_typed(r.campaign, types, 'text')} AS campaign, {result} AS result, "
            f"{lit(r.channel)} AS channel, {_typed(r.timestamp, types, 'timestamp')} AS {quote('timestamp')}, "
            f"{lit(stream.key)} AS source {member_join(stream)}")


SELECTS = {"tl_work_f_orders": ("orders", orders_select), "tl_work_f_events": ("events", events_select),
           "tl_work_f_tickets": ("tickets", tickets_select), "tl_work_f_results": ("results", results_select)}


def facts_sql(engine: Engine, streams: list[tuple[LandedStream, StreamMapping]], as_of: datetime) -> list[str]:
    """The statements that make the fact tables (work tables)."""
    types = {s.table: engine.column_types(s.table) for s, _ in streams}
    cutoff = f"{quote('timestamp')} <= {ts_literal(as_of)}"
    out = []
    for table, (block, select) in SELECTS.items():
        parts = [select(s, m, types[s.table]) for s, m in streams if getattr(m, block) is not None] or [_empty(table)]
        keep = f"({quote('timestamp')} IS NULL OR {cutoff})" if block == "tickets" else cutoff
        if block == "orders":  # an event stream mapped as orders: only its rows with an order id are orders
            keep += " AND order_id IS NOT NULL"
        if block == "results":  # an events stream mapped as results: only email events of a campaign are
            keep += " AND result IS NOT NULL AND campaign IS NOT NULL"
        out.append(work_table(table, f"AS SELECT * FROM ({' UNION ALL '.join(parts)}) AS f WHERE {keep}"))
    return out
