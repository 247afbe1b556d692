"""Group commit: many requests' lines made durable by one write and one fdatasync per stream.

Request handlers (on the collector's event loop) hand their lines to `GroupCommit.append` and
wait. One writer thread takes everything queued since its last round, writes it to each
stream's segment, syncs each stream touched once, and then wakes every handler of the round:
each answers 200 only after its lines are on disk. Under load a round holds many requests, so
the cost of a sync is shared (that is the whole point); alone, a request waits for one sync.

The disk budget: the log's bytes on disk (every stream and the quarantine) stay under
`disk_budget_bytes`. A request that would pass it is refused (`DiskBudgetFull`, answered 429
with Retry-After) before anything is written. The writer thread removes, once a second, the
sealed segments every follower has read past; near the budget it also seals active segments
every follower has read to the end, so those can go too.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from threadline_events.log import SegmentWriter, StreamLog

log = logging.getLogger("threadline.events.collector")

ROOM_CHECK_SECONDS = 1.0  # how often the writer removes what every follower has read
NEAR_BUDGET = 0.8  # past this share of the budget, caught-up active segments are sealed so they can go too


class DiskBudgetFull(Exception):
    """The log is at its disk budget until followers read on; try again later."""


@dataclass
class _Append:
    parts: dict[str, bytes]  # one request's lines, by stream
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.parts.values())


class GroupCommit:
    """The collector's writing end of the log: one writer thread, many waiting requests."""

    def __init__(self, folder: Path, streams: list[str], *, segment_bytes: int, disk_budget_bytes: int) -> None:
        self.folder = Path(folder)
        self.budget = disk_budget_bytes
        self.writers = {name: SegmentWriter(self.folder / name, segment_bytes) for name in streams}
        self.used = self._measure()
        self.rounds = 0  # syncs done (each covers every request of its round)
        self._queue: queue.SimpleQueue[_Append | None] = queue.SimpleQueue()
        self._reserved = 0  # bytes accepted but not yet written
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="event-log-writer", daemon=True)
        self._last_tidy = 0.0

    def start(self) -> GroupCommit:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish what is queued, then stop (the writers are closed)."""
        self._queue.put(None)
        self._thread.join()
        for writer in self.writers.values():
            writer.close()

    async def append(self, parts: dict[str, bytes]) -> None:
        """Return once every stream's lines in `parts` are durable, all of them or none: raise
        DiskBudgetFull, writing nothing, when they would pass the disk budget, or the OSError
        of a failed write, after which none of them stays in the log."""
        item = _Append({stream: data for stream, data in parts.items() if data}, asyncio.get_running_loop().create_future(),
                       asyncio.get_running_loop())
        with self._lock:
            if self.used + self._reserved + item.size > self.budget:
                raise DiskBudgetFull()
            self._reserved += item.size
        self._queue.put(item)
        await asyncio.shield(item.future)  # a client that hangs up does not cancel the write

    # ---- the writer thread

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=ROOM_CHECK_SECONDS)
            except queue.Empty:
                self._tidy()
                continue
            batch = [first]
            while True:  # everything queued meanwhile joins this round
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is None for item in batch)
            self._commit([item for item in batch if item is not None])
            if stopping:
                return

    def _commit(self, batch: list[_Append]) -> None:
        if not batch:
            return
        by_stream: dict[str, list[bytes]] = {}
        for item in batch:
            for stream, data in item.parts.items():
                by_stream.setdefault(stream, []).append(data)
        before = {stream: self.writers[stream].end for stream in by_stream}
        error: BaseException | None = None
        written = 0
        try:
            for stream, chunks in by_stream.items():
                data = b"".join(chunks)
                self.writers[stream].write(data)
                written += len(data)
            for stream in by_stream:
                self.writers[stream].sync()
            self.rounds += 1
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            error, written = exc, 0
            log.error("the event log could not be written (%s: %s); the requests of this round are refused",
                      type(exc).__name__, exc)
            self._undo(before)
        with self._lock:
            self._reserved -= sum(item.size for item in batch)
            self.used += written
        for item in batch:
            item.loop.call_soon_threadsafe(_settle, item.future, error)
        if error is None:
            for stream in by_stream:
                self.writers[stream].rotate_if_full()
            self._tidy()

    def _undo(self, before: dict[str, int]) -> None:
        """A failed round leaves nothing: every stream it touched is cut back to where it was
        (a refused request must not be in the log, nor half a line before the next one)."""
        for stream, end in before.items():
            try:
                self.writers[stream].truncate_to(end)
            except OSError as exc:
                log.error("stream %s could not be cut back after a failed write (%s); the next collector "
                          "cuts a torn line off when it starts", stream, exc)

    def _tidy(self) -> None:
        """Remove the segments every follower has read past (at most once a second). Near the
        budget, first seal active segments whose followers are all at their end, so they can go."""
        if time.monotonic() - self._last_tidy < ROOM_CHECK_SECONDS:
            return
        self._last_tidy = time.monotonic()
        near = self.used >= NEAR_BUDGET * self.budget
        freed = 0
        for writer in self.writers.values():
            followers = writer.log.followers()
            if near and followers and min(followers.values()) >= writer.end:
                writer.rotate_if_full(force=True)
            freed += writer.log.remove_read_segments()
        if freed or near:
            used = self._measure()
            with self._lock:
                self.used = used

    def _measure(self) -> int:
        folders = [self.folder / name for name in self.writers]
        return sum(StreamLog(f).bytes_on_disk() for f in folders)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
