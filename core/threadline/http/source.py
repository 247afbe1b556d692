"""`RestSource`: a Source made of `RestStream`s and one `HttpClient`.

A Python connector subclasses it, sets `name` and `spec`, and implements two methods::

    class CrmSource(RestSource):
        name = "crm"
        spec = CrmConfig

        def client(self, config):
            return HttpClient(config.base_url, auth=BearerAuth(config.token), connector=self.name)

        def streams(self, config):
            return [RestStream(name="contacts", path="/contacts", schema={...}, ...)]

`check`, `discover` and `read` come for free; `check` fetches the first page of every
stream, and turns an unreachable base URL into a config error naming `base_url`.

A rate limit longer than the run may wait (the client's `max_retry_time`) pauses the stream:
every page read is committed, a final checkpoint keeps the stream's position (and the cursor
it started from) with the time to resume, and the sync exits 75. A 429 that outlasts the
retries without saying for how long is taken as a wait of `wait_for_bare_429` seconds.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from threadline.contracts import (
    Catalog, Checkpoint, ConfigError, ConfigT, FatalError, Message, ReadRequest, Source, SyncMode, TransientError,
)
from threadline.http.backoff import RetryPolicy
from threadline.http.client import HttpClient
from threadline.http.pause import stop_for_rate_limit
from threadline.http.stream import RestStream

# `check` answers fast: a person is waiting at the terminal.
CHECK_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.2, max_retry_time=10)
CURSOR_KEY = "cursor"  # the engine's key for the saved cursor in a stream's state


class RestSource(Source[ConfigT]):
    """A source whose streams are `RestStream`s sharing one `HttpClient`."""

    vendor: ClassVar[str] = ""  # how errors name the API ("Klaviyo"); default: the connector's name
    wait_for_bare_429: ClassVar[float | None] = 60.0
    wait_setting: ClassVar[str] = "max_rate_limit_wait"  # the config field capping a wait, named when paused
    base_url_hint: ClassVar[str] = ""  # said when `check` finds no API at base_url (a 404)

    @abstractmethod
    def client(self, config: ConfigT) -> HttpClient:
        """The HTTP client (base URL, auth, retry policy, budget) for this config."""

    @abstractmethod
    def streams(self, config: ConfigT) -> list[RestStream]:
        """The streams this config declares."""

    def probes(self, config: ConfigT) -> list[RestStream]:
        """The streams `check` reads one page of (default: every stream)."""
        return self.streams(config)

    def discover(self, config: ConfigT) -> Catalog:
        return Catalog(tuple(s.to_stream() for s in self.streams(config)))

    def stream(self, config: ConfigT, name: str) -> RestStream:
        declared = {s.name: s for s in self.streams(config)}
        if name not in declared:
            raise ConfigError(f"no stream named {name!r}", hint=f"declared: {', '.join(declared)}")
        return declared[name]

    def read(self, config: ConfigT, request: ReadRequest) -> Iterator[Message]:
        stream = self.stream(config, request.stream.name)
        client = self.client(config)
        # A pause's checkpoint keeps the cursor the read started from, and the last position.
        position: dict[str, Any] = {CURSOR_KEY: request.state[CURSOR_KEY]} if CURSOR_KEY in request.state else {}
        try:
            for message in stream.read(client, request):
                if isinstance(message, Checkpoint):
                    position = {**position, **message.state}
                yield message
        except TransientError as exc:
            yield from stop_for_rate_limit(
                exc, vendor=self.vendor or self.name, stream=request.stream.name, connector=self.name,
                state=position, max_wait=client.retry.max_retry_time, wait_for_bare_429=self.wait_for_bare_429,
                setting=self.wait_setting,
            )
        finally:
            client.close()

    def check(self, config: ConfigT) -> None:
        with checking(self.client(config), base_url_hint=self.base_url_hint) as client:
            for stream in self.probes(config):
                read_first_page(stream, client)


@contextmanager
def checking(client: HttpClient, field: str = "base_url", base_url_hint: str = "") -> Iterator[HttpClient]:
    """For a source's `check`: quick retries (a check should answer fast), an API that stays
    unreachable (or answers 404: no API there) reported as a ConfigError on `field`, and the
    client closed afterwards."""
    client.retry = CHECK_RETRY
    try:
        yield client
    except TransientError as exc:
        raise ConfigError(
            exc.message, field=field, where=exc.where,
            hint=exc.hint or f"check {field} and that the API is reachable from this machine",
        ) from None
    except FatalError as exc:
        if exc.status != 404 or not base_url_hint:
            raise
        raise ConfigError(f"the API root answered 404: {exc.message}", field=field, where=exc.where,
                          hint=base_url_hint, status=exc.status, method=exc.method, url=exc.url) from None
    finally:
        client.close()


def read_first_page(stream: RestStream, client: HttpClient) -> None:
    """Read one page of `stream` (a full refresh from the start) and stop: a check's probe."""
    messages = stream.read(client, ReadRequest(stream=stream.to_stream(), sync_mode=SyncMode.FULL_REFRESH))
    try:
        next(messages, None)
    finally:
        messages.close()
