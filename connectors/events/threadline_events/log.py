"""The durable event log: append-only JSON lines in segment files, one folder per stream.

    <log>/
      collector.lock                   held by the one collector writing this log
      <stream>/                        one per write key name or webhook
        00000000000000000000.jsonl     a segment, named by the offset of its first byte
        00000000000067108864.jsonl
        followers/<name>               the offset a reader has committed up to (its text)
      quarantine/                      events refused for their content, with the reason (same layout)

An *offset* is a byte position in a stream's whole history: a segment's name plus a position
inside it. Offsets only grow, so a reader's checkpoint is one number, and a segment can be
removed without renumbering anything.

Writing (the collector, `SegmentWriter`): lines are appended to the last segment and made
durable with fdatasync before the collector answers; a segment past `segment_bytes` is sealed
and a new one started. A collector killed mid-write may leave a torn last line: it was never
acknowledged, and the next collector cuts it off before writing (`SegmentWriter.__init__`).

Reading (`StreamLog.read`): only whole lines, up to the last newline, so a reader never sees
half a line, whatever the writer is doing. A line written but not yet synced when the
collector dies is in the file (the page cache survives a process), unacknowledged: its sender
sends it again, with the same message id, and the reader's deduplication keeps one.

Retention: a reader records the offset it has committed (`commit_follower`); a sealed
segment that every follower has read past can be removed (`remove_read_segments`). With no
follower recorded, nothing is removed.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from threadline.state import fsync_folder

SUFFIX = ".jsonl"
DIGITS = 20
QUARANTINE = "quarantine"
_READ_CHUNK = 1 << 20


def _segment_name(base: int) -> str:
    return f"{base:0{DIGITS}d}{SUFFIX}"


@dataclass(frozen=True)
class Segment:
    base: int  # the offset of its first byte
    path: Path

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:  # removed by retention meanwhile
            return 0


class StreamLog:
    """One stream's segments, for reading and for retention (any process)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.name = self.folder.name

    def segments(self) -> list[Segment]:
        """The segments on disk, oldest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            stem = name[: -len(SUFFIX)]
            if name.endswith(SUFFIX) and len(stem) == DIGITS and stem.isdigit():
                found.append(Segment(int(stem), self.folder / name))
        return sorted(found, key=lambda s: s.base)

    def start(self) -> int:
        """The first offset still on disk."""
        segments = self.segments()
        return segments[0].base if segments else 0

    def end(self) -> int:
        """The offset just past the last byte written (maybe inside a line still being written)."""
        segments = self.segments()
        return segments[-1].base + segments[-1].size() if segments else 0

    def bytes_on_disk(self) -> int:
        return sum(s.size() for s in self.segments())

    def read(self, offset: int, max_bytes: int, until: int | None = None) -> tuple[bytes, int]:
        """Whole lines from `offset`: at most `max_bytes` (at least one line, however long), not
        past `until`. Returns the bytes and the offset after them. An offset older than the
        first segment (removed by retention) reads from the first segment on."""
        for _ in range(2):  # a second time when retention removed the segment while we looked
            segments = self.segments()
            if not segments:
                return b"", offset
            offset = max(offset, segments[0].base)
            for i, segment in enumerate(segments):
                later = segments[i + 1].base if i + 1 < len(segments) else None
                if later is not None and offset >= later:
                    continue
                limit = (later if later is not None else segment.base + segment.size()) - offset
                if until is not None:
                    limit = min(limit, until - offset)
                if limit <= 0:
                    return b"", offset
                try:
                    data = _whole_lines(segment.path, offset - segment.base, limit, max_bytes)
                except FileNotFoundError:
                    break
                if not data and later is not None and offset >= segment.base + segment.size():
                    offset = later  # a sealed segment read to its end
                    continue
                return data, offset + len(data)
            else:
                return b"", offset
        return b"", offset

    def count_lines(self, offset: int, up_to: int) -> int:
        """Lines after `offset`, counting no further than `up_to` (cheap: newlines in bytes)."""
        count = 0
        while count < up_to:
            data, offset = self.read(offset, _READ_CHUNK)
            if not data:
                break
            count += data.count(b"\n")
        return min(count, up_to)

    # ---- followers and retention

    @property
    def _followers_dir(self) -> Path:
        return self.folder / "followers"

    def followers(self) -> dict[str, int]:
        found = {}
        try:
            entries = list(self._followers_dir.iterdir())
        except FileNotFoundError:
            return {}
        for path in entries:
            if path.suffix == ".tmp":
                continue
            try:
                found[path.name] = int(path.read_text().strip() or 0)
            except (ValueError, FileNotFoundError):
                continue
        return found

    def commit_follower(self, name: str, offset: int) -> None:
        """Record that reader `name` has committed everything before `offset`."""
        self._followers_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._followers_dir / f"{name}.tmp"
        tmp.write_text(str(offset))
        os.replace(tmp, self._followers_dir / name)

    def removable(self) -> list[Segment]:
        """Sealed segments every follower has read past (none while no follower is recorded)."""
        followers = self.followers()
        if not followers:
            return []
        low = min(followers.values())
        segments = self.segments()
        return [s for s, later in zip(segments, segments[1:]) if later.base <= low]

    def remove_read_segments(self) -> int:
        """Remove what every follower has read; returns the bytes freed."""
        freed = 0
        for segment in self.removable():
            size = segment.size()
            try:
                segment.path.unlink()
            except FileNotFoundError:
                continue
            freed += size
        if freed:
            fsync_folder(self.folder)
        return freed


def _whole_lines(path: Path, position: int, limit: int, max_bytes: int) -> bytes:
    """Bytes from `position`, cut after the last newline; at most max_bytes unless one line is longer."""
    with path.open("rb") as handle:
        handle.seek(position)
        want = min(limit, max_bytes)
        data = handle.read(want)
        cut = data.rfind(b"\n")
        while cut < 0 and len(data) < limit:  # one line longer than max_bytes: read on to its end
            more = handle.read(min(_READ_CHUNK, limit - len(data)))
            if not more:
                break
            end = more.find(b"\n")
            if end >= 0:
                cut = len(data) + end
            data += more
    return data[: cut + 1] if cut >= 0 else b""


class SegmentWriter:
    """The writing end of one stream's log (only the collector holds one). Not thread-safe:
    one thread (the group commit's) writes."""

    def __init__(self, folder: Path, segment_bytes: int) -> None:
        self.log = StreamLog(folder)
        self.segment_bytes = segment_bytes
        self.log.folder.mkdir(parents=True, exist_ok=True)
        segments = self.log.segments()
        if segments:
            self._base = segments[-1].base
            self._fd = os.open(segments[-1].path, os.O_RDWR | os.O_APPEND)
            self._size = self._cut_torn_tail(segments[-1].path)
        else:
            self._open_segment(0)

    @property
    def end(self) -> int:
        return self._base + self._size

    def _cut_torn_tail(self, path: Path) -> int:
        """A collector killed mid-write leaves part of a line after the last newline. It was
        never acknowledged; cut it off so the next line starts on a line of its own."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0
        with path.open("rb") as handle:
            back = min(size, _READ_CHUNK)
            while True:
                handle.seek(size - back)
                tail = handle.read(back)
                cut = tail.rfind(b"\n")
                if cut >= 0 or back == size:
                    break
                back = min(size, back * 4)
        keep = size - back + cut + 1 if cut >= 0 else 0
        if keep != size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
        return keep

    def _open_segment(self, base: int) -> None:
        path = self.log.folder / _segment_name(base)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._base, self._size = base, os.fstat(self._fd).st_size
        fsync_folder(self.log.folder)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def truncate_to(self, end: int) -> None:
        """Cut the active segment back to offset `end` (undoing a failed write)."""
        os.ftruncate(self._fd, end - self._base)
        os.fsync(self._fd)
        self._size = end - self._base

    def sync(self) -> None:
        """Everything written so far survives a power cut once this returns."""
        os.fdatasync(self._fd)

    def rotate_if_full(self, force: bool = False) -> bool:
        """Seal the segment and start the next (only between whole lines: call after sync)."""
        if self._size == 0 or (self._size < self.segment_bytes and not force):
            return False
        os.close(self._fd)
        self._open_segment(self._base + self._size)
        return True

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError as exc:  # closed already
            if exc.errno != errno.EBADF:
                raise
