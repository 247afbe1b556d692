"""Fixtures for the postgres source's tests: the machine's Postgres (skipped, saying why, when it
is missing or cannot do logical replication), a scratch schema per test, and jobs run through
the real engine into DuckDB."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from threadline_postgres import testing

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
def schema() -> Any:
    reason = testing.unreachable()
    if reason:
        pytest.skip(reason)
    with testing.scratch_schema("tl_src") as name:
        yield name


@pytest.fixture
def cdc_schema() -> Any:
    reason = testing.logical_unavailable()
    if reason:
        pytest.skip(reason)
    with testing.scratch_schema("tl_cdc") as name:
        yield name
