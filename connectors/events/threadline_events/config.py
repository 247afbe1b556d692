"""The `events` source's config, shared by the collector (`threadline collect`) and the source.

One block in the job file says where the log is, which write keys and webhooks the collector
accepts, and so which streams the source offers: one per write key name, one per webhook.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from threadline.contracts import JobPath, Spec

WEBHOOK_STREAMS = ("shopify", "klaviyo", "mailchimp")
STREAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CollectorSettings(Spec):
    """How `threadline collect` serves and how much it holds."""

    host: str = "127.0.0.1"
    port: int = Field(8088, ge=0, le=65535)
    max_request_bytes: int = Field(512 * 1024, ge=1024)  # Segment's batch limit is 500 KB
    max_connections: int = Field(32, ge=1)  # in flight at once; beyond it 503 (memory: this × max_request_bytes)
    disk_budget_bytes: int = Field(1 << 30, ge=1 << 16)  # the log's size on disk; beyond it 429
    segment_bytes: int = Field(64 << 20, ge=1 << 12)  # a segment rotates past this size
    retry_after_seconds: int = Field(5, ge=1)  # what a 429 tells the client to wait


class SignedWebhook(Spec):
    """A vendor webhook whose requests carry an HMAC signature made with `secret`."""

    secret: str = Field(min_length=8)


class MailchimpWebhook(Spec):
    """Mailchimp signs nothing: the webhook URL carries this token, /webhooks/mailchimp/<token>."""

    secret: str = Field(min_length=16)


class Webhooks(Spec):
    shopify: SignedWebhook | None = None
    klaviyo: SignedWebhook | None = None
    mailchimp: MailchimpWebhook | None = None


class EventsConfig(Spec):
    """Where the event log is, what the collector accepts, and how the source reads."""

    log: JobPath = Path("events")  # the log's folder, relative to the job file
    write_keys: dict[str, str] = Field(default_factory=dict)  # stream name → the write key its senders use
    webhooks: Webhooks = Field(default_factory=Webhooks)
    follower: str = Field("sync", pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # this reader's name in the log (retention)
    batch_bytes: int = Field(8 << 20, ge=1 << 16)  # log bytes parsed per Arrow batch
    collector: CollectorSettings = Field(default_factory=CollectorSettings)

    @field_validator("write_keys")
    @classmethod
    def _stream_names(cls, keys: dict[str, str]) -> dict[str, str]:
        for name, key in keys.items():
            if not STREAM_NAME.match(name):
                raise ValueError(f"{name!r} is not a stream name: lower-case letters, digits and _, starting with a letter")
            if name in (*WEBHOOK_STREAMS, "quarantine"):
                raise ValueError(f"{name!r} is taken (a webhook's stream, or the quarantine); give the write key another name")
            if len(key) < 8:
                raise ValueError(f"the write key of {name!r} is shorter than 8 characters")
        if len(set(keys.values())) != len(keys):
            raise ValueError("two streams share one write key; each needs its own")
        return keys

    @model_validator(mode="after")
    def _something_to_collect(self) -> EventsConfig:
        if not self.streams():
            raise ValueError("no stream: give `write_keys` (for Segment-compatible senders) or a `webhooks` entry")
        return self

    def streams(self) -> list[str]:
        """The streams this config gives: write key names, then the configured webhooks."""
        hooks = [name for name in WEBHOOK_STREAMS if getattr(self.webhooks, name) is not None]
        return [*self.write_keys, *hooks]
