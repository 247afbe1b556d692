"""Running a singer-sdk Tap class inside this process: no subprocess, no JSON round trip.

The tap's own `sync_all()` runs in a worker thread with a message writer that, instead of
printing JSON, hands message objects over a small bounded queue: records in lists of up to
`chunk_rows` dicts, every other message on its own. The reader turns record dicts into
Arrow column by column. When the reader stops early the writer raises in the tap's thread,
which ends the sync.
"""

from __future__ import annotations

import importlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from singer_sdk.singerlib import RecordMessage

from threadline.contracts import ConfigError

_POLL = 0.2


def load_tap_class(path: str) -> type:
    """The class named by "package.module:ClassName"; a ConfigError saying what is wrong if not."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"tap_class {path!r} is not of the form 'module:Class'",
            field="tap_class",
            hint="for example tap_jsonl.tap:TapJsonl",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {module_name!r} for tap_class {path!r}: {exc}",
            field="tap_class",
            hint="install the tap in the same environment as threadline, or use `executable` instead",
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None or not hasattr(cls, "sync_all"):
        raise ConfigError(
            f"{path!r} is not a singer-sdk Tap class", field="tap_class", hint="point at a subclass of singer_sdk.Tap"
        )
    return cls


@dataclass
class Records:
    """A run of RECORD messages of one stream, as dicts."""

    stream: str
    records: list[dict[str, Any]]


class _Stopped(Exception):
    """Raised inside the tap's thread when the reader has gone away."""


_DONE = object()


class _QueueWriter:
    """A singer-sdk message writer that queues message objects instead of printing JSON."""

    def __init__(self, out: queue.Queue, stop: threading.Event, chunk_rows: int) -> None:
        self.out = out
        self.stop = stop
        self.chunk_rows = chunk_rows
        self._stream: str | None = None
        self._records: list[dict[str, Any]] = []

    # singer-sdk's GenericSingerWriter interface
    def format_message(self, message: Any) -> Any:
        """Messages stay objects: nothing is serialised in-process."""
        return message

    def serialize_message(self, message: Any) -> Any:
        """Messages stay objects: nothing is serialised in-process."""
        return message

    def write_message(self, message: Any) -> None:
        """Queue a message: records gathered into chunks, anything else as a dict."""
        if isinstance(message, RecordMessage):
            if message.stream != self._stream:
                self.flush()
                self._stream = message.stream
            self._records.append(message.record)
            if len(self._records) >= self.chunk_rows:
                self.flush()
            return
        self.flush()
        self._put(message.to_dict())

    def flush(self) -> None:
        """Hand over the records gathered so far."""
        if self._records:
            records, self._records = self._records, []
            self._put(Records(self._stream or "", records))

    def _put(self, item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                self.out.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue


def discover_in_process(tap_class: type, config: dict[str, Any]) -> dict[str, Any]:
    """The Singer catalog (a dict) of an importable singer-sdk tap."""
    tap = tap_class(config=config, validate_config=True, setup_mapper=False)
    return tap.catalog_dict


def run_in_process(
    tap_class: type,
    config: dict[str, Any],
    catalog: dict[str, Any],
    state: dict[str, Any] | None,
    *,
    chunk_rows: int = 20_000,
) -> Iterator[Records | dict[str, Any]]:
    """Run the tap's sync and yield `Records` chunks and other messages as dicts, in order.

    An exception raised by the tap is re-raised here, in the reader's thread.
    """
    out: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    writer = _QueueWriter(out, stop, chunk_rows)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            tap = tap_class(config=config, catalog=catalog, state=state or {}, message_writer=writer)
            tap.sync_all()
            writer.flush()
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which re-raises it
            failure.append(exc)
        try:
            writer._put(_DONE)
        except _Stopped:
            pass

    thread = threading.Thread(target=work, name=f"singer-tap-{tap_class.__name__}", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                break
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join(timeout=10)
