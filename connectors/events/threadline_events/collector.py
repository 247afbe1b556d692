"""The collector's HTTP API (Starlette): Segment's tracking calls and vendor webhooks.

    POST /v1/identify|track|page|screen|group|alias    one call        Basic auth: the write key as user
    POST /v1/batch  (and /v1/import)                    {"batch": [...]}   (or "writeKey" in the body)
    POST /webhooks/shopify                              X-Shopify-Hmac-Sha256, X-Shopify-Topic
    POST /webhooks/klaviyo                              Klaviyo-Signature, Klaviyo-Timestamp
    GET|POST /webhooks/mailchimp/<secret>               Mailchimp checks the URL with a GET first
    GET  /health

Every accepted event is in the log, synced to disk, before the answer (200 `{"success": true}`).
What is refused is refused whole, with nothing kept, and says why in Segment's error shape
(`{"code": ..., "message": ...}`, which the official clients read):

| status | when |
|---|---|
| 400 | malformed JSON or gzip, or a body that is not what the call takes (the message says what) |
| 401 | an unknown write key; a webhook's missing or wrong signature (or Mailchimp secret) |
| 413 | a body (or its gzip-inflated content) over `max_request_bytes` |
| 429 | the log is at its disk budget; `Retry-After` says when to try again |
| 503 | more requests in flight than `max_connections` (uvicorn answers it) |

An event that names nobody is accepted into the quarantine (the log's `quarantine/` stream)
with its reason, not into its stream; the answer is still 200 (as Segment's API does) and
says how many were quarantined. The collector logs counts, never an event's content.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from threadline_events import envelope as env
from threadline_events import webhooks
from threadline_events.commit import DiskBudgetFull, GroupCommit
from threadline_events.config import EventsConfig
from threadline_events.log import QUARANTINE

log = logging.getLogger("threadline.events.collector")

SUMMARY_SECONDS = 10.0  # how often the collector logs what it accepted and refused


class Refused(Exception):
    """A request answered with an error status; `message` says why (and never holds event content)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Tally:
    """Counts for the periodic log line: what was accepted and refused, never what it said."""

    requests: int = 0
    events: int = 0
    quarantined: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    since: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        refused = ", ".join(f"{n}× {status}" for status, n in sorted(self.refused.items())) or "none"
        return (f"accepted {self.events:,} events in {self.requests:,} requests over {time.monotonic() - self.since:.0f}s; "
                f"quarantined {self.quarantined:,}; refused: {refused}")


class Collector:
    """The collector's state: config, the log's writing end, and the tally."""

    def __init__(self, config: EventsConfig) -> None:
        self.config = config
        settings = config.collector
        self.max_bytes = settings.max_request_bytes
        self.keys = {key: name for name, key in config.write_keys.items()}
        self.log = GroupCommit(config.log, [*config.streams(), QUARANTINE], segment_bytes=settings.segment_bytes,
                               disk_budget_bytes=settings.disk_budget_bytes)
        self.tally = Tally()

    # ---- request plumbing

    async def body(self, request: Request) -> bytes:
        """The raw body, refused with 413 past the limit (before reading it all, when the sender
        said its length), and inflated when it is gzip (Segment's and RudderStack's clients may)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large()
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                chunks.append(chunk)
        except ClientDisconnect:
            raise Refused(400, "disconnected", "the client hung up before sending the whole body") from None
        body = b"".join(chunks)
        if request.headers.get("content-encoding", "").lower() == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, self.max_bytes + 1)
            except zlib.error as exc:
                raise Refused(400, "bad_gzip", f"the body says Content-Encoding: gzip but is not gzip ({exc})") from None
            if len(body) > self.max_bytes or inflater.unconsumed_tail:
                raise self._too_large(inflated=True)
        return body

    def _too_large(self, inflated: bool = False) -> Refused:
        what = "inflated body" if inflated else "body"
        return Refused(413, "too_large", f"the {what} is over the collector's limit of {self.max_bytes:,} bytes; "
                                         "send fewer events per batch")

    def stream_for_key(self, request: Request, body_key: Any = None) -> str:
        """The stream whose write key the request carries (Basic auth user, or `writeKey`)."""
        key = _basic_user(request.headers.get("authorization")) or (body_key if isinstance(body_key, str) else None)
        if key:
            for known, name in self.keys.items():  # constant time per key: no timing hint of a near miss
                if hmac.compare_digest(known.encode(), key.encode()):
                    return name
        raise Refused(401, "bad_write_key", "unknown write key: send the stream's write key as the Basic auth user name")

    async def accept(self, stream: str, rows: list[dict[str, Any] | Exception], raw: list[Any]) -> dict[str, Any]:
        """Put good rows in `stream` and unusable ones in the quarantine, durably, then answer."""
        good = b"".join(env.line(r) for r in rows if not isinstance(r, Exception))
        bad = b"".join(_quarantined(stream, str(r), item) for r, item in zip(rows, raw) if isinstance(r, Exception))
        try:
            await self.log.append({stream: good, QUARANTINE: bad})  # both, or neither
        except DiskBudgetFull:
            retry = self.config.collector.retry_after_seconds
            raise Refused(429, "disk_budget", f"the event log is at its disk budget until its readers catch up; "
                                              f"retry in {retry}s", {"Retry-After": str(retry)}) from None
        except OSError as exc:
            raise Refused(503, "log_unwritable", f"the event log could not be written ({exc.strerror}); retry later",
                          {"Retry-After": str(self.config.collector.retry_after_seconds)}) from None
        quarantined = sum(isinstance(r, Exception) for r in rows)
        self.tally.requests += 1
        self.tally.events += len(rows) - quarantined
        self.tally.quarantined += quarantined
        answer: dict[str, Any] = {"success": True}
        if quarantined:
            answer["quarantined"] = quarantined
            answer["reasons"] = sorted({str(r) for r in rows if isinstance(r, Exception)})
        return answer


def _basic_user(header: str | None) -> str | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def _quarantined(stream: str, reason: str, item: Any) -> bytes:
    return orjson.dumps({"stream": stream, "reason": reason, "received_at": _now(), "event": item}, default=str) + b"\n"


def _now() -> str:
    """The collector's time for a request, as the envelope writes it (once per request)."""
    return env.timestamp_text(datetime.now(timezone.utc))


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # its message says what and where, never the content
        raise Refused(400, "malformed_json", f"malformed JSON: {exc}") from None


def _segment_rows(messages: list[Any], kind: str | None, batch_context: Any) -> list[dict[str, Any] | Exception]:
    received = _now()
    context = batch_context if isinstance(batch_context, dict) else None
    rows: list[dict[str, Any] | Exception] = []
    for message in messages:
        try:
            rows.append(env.from_segment(message, received, kind=kind, batch_context=context))
        except env.Unusable as exc:
            rows.append(exc)
    return rows


# ---------------------------------------------------------------------------- routes


def create_app(config: EventsConfig) -> Starlette:
    """The collector as an ASGI app; its log writer starts and stops with the app's lifespan."""
    collector = Collector(config)

    def answering(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return JSONResponse(await handler(request))
            except Refused as refused:
                collector.tally.refused[refused.status] += 1
                log.debug("%s %s refused %s: %s", request.method, request.url.path.split("/webhooks/mailchimp/")[0],
                          refused.status, refused.code)
                return JSONResponse({"code": refused.code, "message": refused.message}, refused.status, refused.headers)

        return endpoint

    async def single(request: Request) -> dict[str, Any]:
        kind = request.path_params["kind"]
        if kind not in env.SEGMENT_TYPES:
            raise Refused(404, "not_found", f"no call /v1/{kind[:40]}; the calls are {', '.join(env.SEGMENT_TYPES)} and batch")
        stream = collector.stream_for_key(request) if request.headers.get("authorization") else None
        message = _parse(await collector.body(request))
        stream = stream or collector.stream_for_key(request, message.get("writeKey") if isinstance(message, dict) else None)
        return await collector.accept(stream, _segment_rows([message], kind, None), [message])

    async def batch(request: Request) -> dict[str, Any]:
        stream = collector.stream_for_key(request) if request.headers.get("authorization") else None
        payload = _parse(await collector.body(request))
        if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
            raise Refused(400, "bad_batch", 'a batch is a JSON object with a "batch" list of events')
        stream = stream or collector.stream_for_key(request, payload.get("writeKey"))
        messages = payload["batch"]
        return await collector.accept(stream, _segment_rows(messages, None, payload.get("context")), messages)

    async def shopify(request: Request) -> dict[str, Any]:
        hook = config.webhooks.shopify
        assert hook is not None
        body = await collector.body(request)
        if not webhooks.shopify_verified(hook.secret, body, request.headers.get("x-shopify-hmac-sha256")):
            raise Refused(401, "bad_signature", "missing or wrong X-Shopify-Hmac-Sha256: the body is not signed with "
                                                "this webhook's secret")
        topic = request.headers.get("x-shopify-topic") or ""
        return await _vendor(lambda: webhooks.shopify_events(topic, body, dict(request.headers), _now()), "shopify", body)

    async def klaviyo(request: Request) -> dict[str, Any]:
        hook = config.webhooks.klaviyo
        assert hook is not None
        body = await collector.body(request)
        if not webhooks.klaviyo_verified(hook.secret, body, request.headers.get("klaviyo-timestamp"),
                                         request.headers.get("klaviyo-signature")):
            raise Refused(401, "bad_signature", "missing or wrong Klaviyo-Signature: the body and Klaviyo-Timestamp are "
                                                "not signed with this webhook's secret")
        webhook_id = request.headers.get("klaviyo-webhook-id")
        meta = (_parse(body) or {}).get("meta") if webhook_id else None
        if webhook_id and isinstance(meta, dict) and meta.get("klaviyo_webhook_id") not in (None, webhook_id):
            raise Refused(401, "bad_signature", "meta.klaviyo_webhook_id does not match the Klaviyo-Webhook-Id header")
        return await _vendor(lambda: webhooks.klaviyo_events(body, _now()), "klaviyo", body)

    async def mailchimp(request: Request) -> dict[str, Any]:
        hook = config.webhooks.mailchimp
        assert hook is not None
        if not webhooks.mailchimp_verified(hook.secret, request.path_params["secret"]):
            raise Refused(401, "bad_secret", "wrong secret in the webhook URL (/webhooks/mailchimp/<secret>)")
        if request.method == "GET":  # Mailchimp checks a webhook URL answers before it saves it
            return {"success": True}
        body = await collector.body(request)
        return await _vendor(lambda: webhooks.mailchimp_events(body, _now()), "mailchimp", body)

    async def _vendor(make: Callable[[], list[Any]], stream: str, body: bytes) -> dict[str, Any]:
        try:
            rows = make()
        except webhooks.BadPayload as exc:
            raise Refused(400, "bad_payload", str(exc)) from None
        except env.Unusable as exc:
            rows = [exc]
        raw = _raw_items(stream, body, len(rows))
        return await collector.accept(stream, rows, raw)

    async def health(request: Request) -> dict[str, Any]:
        return {"status": "ok", "streams": config.streams(), "log_bytes": collector.log.used,
                "disk_budget_bytes": collector.log.budget}

    routes = [Route("/health", answering(health), methods=["GET"])]
    if config.write_keys:
        routes += [Route("/v1/batch", answering(batch), methods=["POST"]),
                   Route("/v1/import", answering(batch), methods=["POST"]),
                   Route("/v1/{kind:str}", answering(single), methods=["POST"])]
    if config.webhooks.shopify:
        routes.append(Route("/webhooks/shopify", answering(shopify), methods=["POST"]))
    if config.webhooks.klaviyo:
        routes.append(Route("/webhooks/klaviyo", answering(klaviyo), methods=["POST"]))
    if config.webhooks.mailchimp:
        routes.append(Route("/webhooks/mailchimp/{secret:str}", answering(mailchimp), methods=["GET", "POST"]))

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        import asyncio

        collector.log.start()
        summary = asyncio.create_task(_summaries(collector))
        try:
            yield
        finally:
            summary.cancel()
            collector.log.stop()
            log.info("collector stopped: %s", collector.tally.line())

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collector = collector
    return app


async def _summaries(collector: Collector) -> None:
    import asyncio

    while True:
        await asyncio.sleep(SUMMARY_SECONDS)
        tally = collector.tally
        if tally.requests or tally.refused:
            log.info("%s", tally.line())
            collector.tally = Tally()


def _raw_items(stream: str, body: bytes, n: int) -> list[Any]:
    """What the quarantine keeps of a webhook's events: the parsed body (for the one event it
    usually is), or its text."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = body.decode("utf-8", "replace")
    if stream == "klaviyo" and isinstance(parsed, dict) and isinstance(parsed.get("data"), list):
        return list(parsed["data"])[:n] + [None] * max(0, n - len(parsed["data"]))
    return [parsed] * n
