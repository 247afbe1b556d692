"""Vendor webhooks: each vendor's signature check, and its payload as envelopes.

| vendor | how a request proves it is the vendor's | message id (deduplication) |
|---|---|---|
| Shopify | `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body, keyed with the app's secret | `X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id` (a retried delivery keeps it) |
| Klaviyo | `Klaviyo-Signature`: hex HMAC-SHA256 of the raw body followed by `Klaviyo-Timestamp`, keyed with the webhook's secret; `meta.klaviyo_webhook_id` must equal `Klaviyo-Webhook-Id` | each event's `external_id` |
| Mailchimp | nothing: Mailchimp signs no webhook. The only proof it offers is a secret you put in the URL you give it (`/webhooks/mailchimp/<secret>`): anyone who learns the URL can post | a hash of the body (a resent delivery is the same body) |

Every check compares in constant time, over the raw bytes received (never re-serialised
JSON). A request that fails it is answered 401 before its body is parsed, and nothing is kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import orjson
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from threadline_events.envelope import _json, _number, _text, content_id, envelope, parse_time, timestamp_text

# ---------------------------------------------------------------------------- signatures


def shopify_signature(secret: str, body: bytes) -> str:
    """What Shopify sends in X-Shopify-Hmac-Sha256 for `body`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_verified(secret: str, body: bytes, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(shopify_signature(secret, body), header.strip())


def klaviyo_signature(secret: str, body: bytes, timestamp: str) -> str:
    """What Klaviyo sends in Klaviyo-Signature for `body` sent at `timestamp`."""
    return hmac.new(secret.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def klaviyo_verified(secret: str, body: bytes, timestamp: str | None, header: str | None) -> bool:
    return bool(header) and timestamp is not None and hmac.compare_digest(
        klaviyo_signature(secret, body, timestamp), header.strip().lower())


def mailchimp_verified(secret: str, token: str) -> bool:
    return hmac.compare_digest(secret.encode(), token.encode())


# ---------------------------------------------------------------------------- payloads


class BadPayload(ValueError):
    """A signed request whose body is not what the vendor sends (answered 400 with the reason)."""


SHOPIFY_EVENTS = {  # topic → the Segment e-commerce event it is
    "orders/create": "Order Completed",
    "orders/paid": "Order Paid",
    "orders/updated": "Order Updated",
    "orders/cancelled": "Order Cancelled",
    "orders/fulfilled": "Order Fulfilled",
    "checkouts/create": "Checkout Started",
    "checkouts/update": "Checkout Updated",
}
SHOPIFY_IDENTIFY = ("customers/create", "customers/update", "customers/enable", "customers/disable")


def shopify_events(topic: str, body: bytes, headers: dict[str, str], received_at: str) -> list[dict[str, Any]]:
    """One Shopify webhook (an order, a checkout or a customer) as one envelope."""
    payload = _json_object(body)
    delivery = headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id")
    message_id = f"shopify:{delivery}" if delivery else content_id("shopify", body)
    context = {"topic": topic, "shop_domain": headers.get("x-shopify-shop-domain"),
               "api_version": headers.get("x-shopify-api-version")}
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    if topic in SHOPIFY_IDENTIFY:
        customer = payload
    when = parse_time(payload.get("updated_at") if topic != "orders/create" else payload.get("created_at"))
    is_order = topic.startswith("orders/")  # a checkout is not an order until it is paid
    return [envelope(
        message_id=message_id,
        type="identify" if topic in SHOPIFY_IDENTIFY else "track",
        event=None if topic in SHOPIFY_IDENTIFY else SHOPIFY_EVENTS.get(topic, topic),
        user_id=_text(customer.get("id")),
        email=_text(payload.get("email") or payload.get("contact_email") or customer.get("email")),
        phone=_text(payload.get("phone") or customer.get("phone")),
        first_name=_text(customer.get("first_name")),
        last_name=_text(customer.get("last_name")),
        order_id=_text(payload.get("id")) if is_order else None,
        total=_number(payload.get("total_price")) if is_order else None,
        currency=_text(payload.get("currency")) if is_order else None,
        timestamp=timestamp_text(when) if when else received_at,
        received_at=received_at,
        properties=None if topic in SHOPIFY_IDENTIFY else _json(payload),
        traits=_json(customer) if topic in SHOPIFY_IDENTIFY else None,
        context=_json({k: v for k, v in context.items() if v}),
    )]


def klaviyo_events(body: bytes, received_at: str) -> list[dict[str, Any] | Exception]:
    """A Klaviyo system webhook: up to 1,000 events under `data`, each the shape of a Get Event
    answer. An event naming nobody comes back as an exception (to quarantine), not raised."""
    payload = _json_object(body)
    items = payload.get("data")
    if not isinstance(items, list):
        raise BadPayload("a Klaviyo webhook's body has a `data` list of events")
    out: list[dict[str, Any] | Exception] = []
    for item in items:
        try:
            out.append(_klaviyo_event(item, received_at))
        except ValueError as exc:
            out.append(exc)
    return out


def _klaviyo_event(item: Any, received_at: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError("an item of a Klaviyo webhook's `data` must be an object")
    topic = str(item.get("topic") or "")
    event = item.get("payload") if isinstance(item.get("payload"), dict) else {}
    data = event.get("data") if isinstance(event.get("data"), dict) else event
    attributes = data.get("attributes") if isinstance(data.get("attributes"), dict) else {}
    profile_ref = ((data.get("relationships") or {}).get("profile") or {}).get("data") or {}
    included = [i for i in event.get("included") or [] if isinstance(i, dict)]
    profile = next((i.get("attributes") or {} for i in included if i.get("type") == "profile"), {})
    metric = next((i.get("attributes") or {} for i in included if i.get("type") == "metric"), {})
    properties = attributes.get("event_properties") if isinstance(attributes.get("event_properties"), dict) else {}
    when = parse_time(attributes.get("datetime"))
    if when is None and isinstance(attributes.get("timestamp"), (int, float)):
        when = datetime.fromtimestamp(attributes["timestamp"], timezone.utc)
    message = _text(item.get("external_id")) or _text(data.get("id"))
    return envelope(
        message_id=f"klaviyo:{message}" if message else content_id("klaviyo", item),
        type="track",
        event=_text(metric.get("name")) or topic.removeprefix("event:") or None,
        user_id=_text(profile_ref.get("id") if isinstance(profile_ref, dict) else None),
        email=_text(profile.get("email") or properties.get("$email")),
        phone=_text(profile.get("phone_number")),
        first_name=_text(profile.get("first_name")),
        last_name=_text(profile.get("last_name")),
        timestamp=timestamp_text(when) if when else received_at,
        received_at=received_at,
        properties=_json(properties),
        context=_json({"topic": topic}),
    )


MAILCHIMP_IDENTIFY = ("profile", "upemail")


def mailchimp_events(body: bytes, received_at: str) -> list[dict[str, Any]]:
    """A Mailchimp webhook: a form (`type=unsubscribe&fired_at=...&data[email]=...`)."""
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"a Mailchimp webhook's body is a URL-encoded form: {exc}") from None
    kind = form.get("type")
    if not kind:
        raise BadPayload("a Mailchimp webhook's form has a `type` (subscribe, unsubscribe, profile, upemail, cleaned, campaign)")
    data = {k[5:-1].replace("][", "."): v for k, v in form.items() if k.startswith("data[") and k.endswith("]")}
    when = parse_time(form.get("fired_at"))  # "2009-03-26 21:35:57", in UTC
    return [envelope(
        message_id=content_id("mailchimp", body),
        type="identify" if kind in MAILCHIMP_IDENTIFY else "track",
        event=kind,
        email=_text(data.get("new_email") or data.get("email")),
        previous_id=_text(data.get("old_email")),
        phone=_text(data.get("merges.PHONE")),
        first_name=_text(data.get("merges.FNAME")),
        last_name=_text(data.get("merges.LNAME")),
        timestamp=timestamp_text(when) if when else received_at,
        received_at=received_at,
        properties=_json(data),
        context=_json({"list_id": data.get("list_id")} if data.get("list_id") else {}),
    )]


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadPayload("the body must be a JSON object")
    return payload
