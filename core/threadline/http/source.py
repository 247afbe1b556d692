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
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import contextmanager
from collections.abc import Iterator

from threadline.contracts import Catalog, ConfigError, ConfigT, Message, ReadRequest, Source, SyncMode, TransientError
from threadline.http.backoff import RetryPolicy
from threadline.http.client import HttpClient
from threadline.http.stream import RestStream

# `check` answers fast: a person is waiting at the terminal.
CHECK_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.2, max_retry_time=10)


class RestSource(Source[ConfigT]):
    """A source whose streams are `RestStream`s sharing one `HttpClient`."""

    @abstractmethod
    def client(self, config: ConfigT) -> HttpClient:
        """The HTTP client (base URL, auth, retry policy, budget) for this config."""

    @abstractmethod
    def streams(self, config: ConfigT) -> list[RestStream]:
        """The streams this config declares."""

    def discover(self, config: ConfigT) -> Catalog:
        return Catalog(tuple(s.to_stream() for s in self.streams(config)))

    def read(self, config: ConfigT, request: ReadRequest) -> Iterator[Message]:
        declared = {s.name: s for s in self.streams(config)}
        stream = declared.get(request.stream.name)
        if stream is None:
            raise ConfigError(f"no stream named {request.stream.name!r}", hint=f"declared: {', '.join(declared)}")
        client = self.client(config)
        try:
            yield from stream.read(client, request)
        finally:
            client.close()

    def check(self, config: ConfigT) -> None:
        with checking(self.client(config)) as client:
            for stream in self.streams(config):
                read_first_page(stream, client)


@contextmanager
def checking(client: HttpClient, field: str = "base_url") -> Iterator[HttpClient]:
    """For a source's `check`: quick retries (a check should answer fast), an API that stays
    unreachable reported as a ConfigError on `field`, and the client closed afterwards."""
    client.retry = CHECK_RETRY
    try:
        yield client
    except TransientError as exc:
        raise ConfigError(
            exc.message, field=field, where=exc.where,
            hint=exc.hint or f"check {field} and that the API is reachable from this machine",
        ) from None
    finally:
        client.close()


def read_first_page(stream: RestStream, client: HttpClient) -> None:
    """Read one page of `stream` (a full refresh from the start) and stop: a check's probe."""
    messages = stream.read(client, ReadRequest(stream=stream.to_stream(), sync_mode=SyncMode.FULL_REFRESH))
    try:
        next(messages, None)
    finally:
        messages.close()

