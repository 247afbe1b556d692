"""A fresh Postgres schema per test on the machine's server (skipped, saying why, without one)."""

from __future__ import annotations

from typing import Any

import pytest

from threadline_postgres import testing


@pytest.fixture
def pg_schema() -> Any:
    reason = testing.unreachable()
    if reason:
        pytest.skip(reason)
    with testing.scratch_schema("tl_dest") as schema:
        yield schema
