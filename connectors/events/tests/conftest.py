"""Fixtures: a running collector with every kind of input configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from threadline_events.testing import events_config, free_port, start_collector, write_job


@pytest.fixture
def collector(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    running = start_collector(write_job(tmp_path, events_config(port)), port)
    yield running
    running.stop()
