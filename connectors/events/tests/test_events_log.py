"""The durable log: offsets, whole lines, rotation, torn tails, retention, group commit."""

from __future__ import annotations

import asyncio
import os

import pytest
from threadline_events.commit import DiskBudgetFull, GroupCommit
from threadline_events.log import SegmentWriter, StreamLog


def lines(*numbers: int) -> bytes:
    return b"".join(b'{"n":%d}\n' % n for n in numbers)


def test_offsets_run_on_across_rotated_segments(tmp_path):
    writer = SegmentWriter(tmp_path / "web", segment_bytes=30)
    for n in range(10):
        writer.write(lines(n))
        writer.sync()
        writer.rotate_if_full()
    log = StreamLog(tmp_path / "web")
    assert len(log.segments()) > 2
    assert [s.base for s in log.segments()][0] == 0
    data, end = log.read(0, 1 << 20, until=log.end())
    collected = data
    while end < log.end():
        data, end = log.read(end, 1 << 20)
        collected += data
    assert collected == lines(*range(10))


def test_a_reader_gets_only_whole_lines(tmp_path):
    writer = SegmentWriter(tmp_path / "web", segment_bytes=1 << 20)
    writer.write(lines(1) + b'{"n":2')  # a line being written
    log = StreamLog(tmp_path / "web")
    data, after = log.read(0, 1 << 20)
    assert data == lines(1) and after == len(lines(1))
    assert log.read(after, 1 << 20) == (b"", after)
    writer.write(b"}\n")
    assert log.read(after, 1 << 20)[0] == lines(2)


def test_max_bytes_splits_between_lines_and_never_inside_one(tmp_path):
    writer = SegmentWriter(tmp_path / "web", segment_bytes=1 << 20)
    writer.write(lines(*range(100)))
    log = StreamLog(tmp_path / "web")
    data, after = log.read(0, 25)
    assert data.endswith(b"\n") and len(data) <= 25 and data.count(b"\n") >= 1
    whole, _ = log.read(0, 1)  # shorter than a line: the line all the same
    assert whole == lines(0)


def test_a_collector_killed_mid_write_leaves_a_torn_line_the_next_one_cuts_off(tmp_path):
    folder = tmp_path / "web"
    writer = SegmentWriter(folder, segment_bytes=1 << 20)
    writer.write(lines(1, 2) + b'{"n":3, "half": "writ')
    writer.close()
    again = SegmentWriter(folder, segment_bytes=1 << 20)
    assert again.end == len(lines(1, 2))
    again.write(lines(4))
    again.sync()
    assert StreamLog(folder).read(0, 1 << 20)[0] == lines(1, 2, 4)


def test_segments_are_removed_only_once_every_follower_read_past_them(tmp_path):
    folder = tmp_path / "web"
    writer = SegmentWriter(folder, segment_bytes=8)  # a segment per line
    for n in range(6):
        writer.write(lines(n))
        writer.sync()
        writer.rotate_if_full()
    log = StreamLog(folder)
    segments = log.segments()
    assert log.remove_read_segments() == 0  # no follower recorded: keep everything
    log.commit_follower("sync", segments[3].base)
    log.commit_follower("audit", segments[1].base)
    log.remove_read_segments()
    assert [s.base for s in log.segments()] == [s.base for s in segments[1:]]
    log.commit_follower("audit", log.end())
    log.remove_read_segments()
    assert log.segments()[0].base == segments[3].base  # `sync` is still at segment 3
    assert log.read(0, 1 << 20)[0].startswith(lines(3))  # an old offset reads from what is left


def test_a_group_commit_round_syncs_many_requests_once(tmp_path):
    log = GroupCommit(tmp_path, ["web"], segment_bytes=1 << 20, disk_budget_bytes=1 << 20)

    async def many() -> None:
        waiting = [asyncio.create_task(log.append({"web": lines(n)})) for n in range(50)]
        await asyncio.sleep(0.05)  # all queued before the writer starts
        log.start()
        await asyncio.gather(*waiting)

    asyncio.run(many())
    log.stop()
    assert log.rounds < 50
    assert sorted(StreamLog(tmp_path / "web").read(0, 1 << 20)[0].splitlines()) == sorted(lines(*range(50)).splitlines())


def test_an_append_past_the_disk_budget_is_refused_before_anything_is_written(tmp_path):
    log = GroupCommit(tmp_path, ["web", "quarantine"], segment_bytes=1 << 20, disk_budget_bytes=100).start()
    try:
        asyncio.run(log.append({"web": b"x" * 60 + b"\n"}))
        with pytest.raises(DiskBudgetFull):
            asyncio.run(log.append({"web": b"y" * 30 + b"\n", "quarantine": b"z" * 30 + b"\n"}))
    finally:
        log.stop()
    assert os.path.getsize(StreamLog(tmp_path / "web").segments()[0].path) == 61
    assert StreamLog(tmp_path / "quarantine").end() == 0  # neither part of the refused request


def test_a_round_whose_write_fails_leaves_nothing_of_it_in_the_log(tmp_path):
    log = GroupCommit(tmp_path, ["web", "quarantine"], segment_bytes=1 << 20, disk_budget_bytes=1 << 20).start()
    try:
        asyncio.run(log.append({"web": lines(1)}))
        broken = log.writers["quarantine"]
        broken.sync = lambda: (_ for _ in ()).throw(OSError(28, "No space left on device"))  # type: ignore[method-assign]
        with pytest.raises(OSError):
            asyncio.run(log.append({"web": lines(2), "quarantine": lines(3)}))
    finally:
        log.stop()
    assert StreamLog(tmp_path / "web").read(0, 1 << 20)[0] == lines(1)
    assert StreamLog(tmp_path / "quarantine").end() == 0
