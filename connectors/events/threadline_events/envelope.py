"""What the log holds: each accepted event as one flat JSON line, the *envelope*.

The collector turns every call (a Segment message, a Shopify order, a Klaviyo event, a
Mailchimp unsubscribe) into the same flat shape once, when it accepts it. It has to look at
each event then anyway (to check it), and a flat shape is what lets the source read the log
with `pyarrow.json` in bulk, with no Python per record. Nested objects are kept whole as JSON
text (`properties`, `traits`, `context`), so nothing the sender said is lost.

An event that names nobody (no user id, anonymous id, email or phone) cannot join a profile:
it is refused with `Unusable`, and the collector quarantines it with the reason.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa

UTC = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema([
    pa.field("message_id", pa.string(), nullable=False),
    pa.field("type", pa.string()),  # identify, track, page, screen, group, alias
    pa.field("event", pa.string()),  # a track's event name; a page's or screen's name
    pa.field("user_id", pa.string()),
    pa.field("anonymous_id", pa.string()),
    pa.field("email", pa.string()),
    pa.field("phone", pa.string()),
    pa.field("first_name", pa.string()),
    pa.field("last_name", pa.string()),
    pa.field("group_id", pa.string()),
    pa.field("previous_id", pa.string()),  # an alias's earlier id
    pa.field("order_id", pa.string()),
    pa.field("total", pa.float64()),
    pa.field("currency", pa.string()),
    pa.field("timestamp", UTC),  # when it happened, as the sender says
    pa.field("received_at", UTC),  # when the collector accepted it
    pa.field("properties", pa.string()),  # JSON text
    pa.field("traits", pa.string()),  # JSON text
    pa.field("context", pa.string()),  # JSON text
])
FIELDS = tuple(SCHEMA.names)

SEGMENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")


class Unusable(ValueError):
    """An event the log cannot take; the message is the reason kept with it in quarantine."""


# What pyarrow.json reads as a timestamp: ISO 8601, up to microseconds, an optional zone. A
# sender's text in this form is kept as it is (checked by datetime.fromisoformat, which knows
# that February has no 30th); any other form is parsed and rewritten.
_ARROW_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$")


def event_time(value: Any) -> str | None:
    """A sender's timestamp as text pyarrow reads, or None when it is not a time."""
    if type(value) is str and _ARROW_ISO.match(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
        return value
    moment = parse_time(value)
    return timestamp_text(moment) if moment else None


def timestamp_text(moment: datetime) -> str:
    """UTC, microseconds, `Z`: the form pyarrow reads as timestamp[us, UTC]."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 text (with or without a zone; none means UTC), or None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _text(value: Any) -> str | None:
    if type(value) is str:
        return value.strip() or None
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value).strip() or None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _json(value: Any) -> str | None:
    return orjson.dumps(value, default=str).decode() if value else None


def content_id(prefix: str, payload: Any) -> str:
    """A message id made from the content, for senders that give none: a resent copy gets the
    same id, so it is deduplicated like a retried Segment call."""
    canonical = payload if isinstance(payload, bytes) else orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
    return f"{prefix}:{hashlib.sha256(canonical).hexdigest()[:32]}"


def envelope(**values: Any) -> dict[str, Any]:
    """A complete envelope: every field, None where not given. Raises Unusable when it names nobody."""
    return _usable({name: values.get(name) for name in FIELDS})


def _usable(row: dict[str, Any]) -> dict[str, Any]:
    if not (row["user_id"] or row["anonymous_id"] or row["email"] or row["phone"]):
        raise Unusable("no identifier: the event has no userId, anonymousId, email or phone, so it cannot join a profile")
    if not row["message_id"]:
        raise Unusable("no message id")
    return row


def from_segment(message: Any, received_at: str, *, kind: str | None = None,
                 batch_context: dict[str, Any] | None = None) -> dict[str, Any]:
    """One message of Segment's tracking API (what `analytics.track(...)` and friends send).
    `received_at` is the collector's time for the request, as `timestamp_text` writes it."""
    if not isinstance(message, dict):
        raise Unusable(f"an event must be a JSON object, not {type(message).__name__}")
    kind = kind or message.get("type")
    if kind not in SEGMENT_TYPES:
        raise Unusable(f"unknown event type {kind!r}; expected one of {', '.join(SEGMENT_TYPES)}")
    if kind == "track" and not _text(message.get("event")):
        raise Unusable("a track call needs an `event` name")
    context = message.get("context")
    context = context if type(context) is dict else {}
    if batch_context:
        context = {**batch_context, **context}
    traits = message.get("traits")
    traits = traits if type(traits) is dict else {}
    properties = message.get("properties")
    properties = properties if type(properties) is dict else {}
    context_traits = context.get("traits")
    known = {**context_traits, **traits} if type(context_traits) is dict else traits
    when = event_time(message.get("timestamp")) or event_time(message.get("originalTimestamp")) or received_at
    name = message.get("event") if kind == "track" else message.get("name") if kind in ("page", "screen") else None
    get = properties.get
    total = get("total")
    if total is None:
        total = get("revenue") if get("revenue") is not None else get("value")
    # built as a literal, in FIELDS order: this runs for every event the collector takes
    return _usable({
        "message_id": _text(message.get("messageId")) or content_id("tl", message),
        "type": kind,
        "event": _text(name),
        "user_id": _text(message.get("userId")),
        "anonymous_id": _text(message.get("anonymousId")),
        "email": _text(known.get("email") or get("email")),
        "phone": _text(known.get("phone") or get("phone")),
        "first_name": _text(known.get("firstName") or known.get("first_name")),
        "last_name": _text(known.get("lastName") or known.get("last_name")),
        "group_id": _text(message.get("groupId")),
        "previous_id": _text(message.get("previousId")),
        "order_id": _text(get("order_id") or get("orderId")),
        "total": _number(total),
        "currency": _text(get("currency")),
        "timestamp": when,
        "received_at": received_at,
        "properties": _json(properties),
        "traits": _json(traits),
        "context": _json(context),
    })


def line(row: dict[str, Any]) -> bytes:
    """One envelope as a log line. JSON escapes newlines inside strings, so a line is an event."""
    return orjson.dumps(row) + b"\n"
