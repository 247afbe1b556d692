"""A fresh MariaDB database per test (the server is started if it is installed and down)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import mariadb_server as mariadb  # noqa: E402


@pytest.fixture
def database() -> Any:
    reason = mariadb.unavailable()
    if reason:
        pytest.skip(reason)
    name = mariadb.new_database()
    yield name
    mariadb.execute(f"drop database if exists `{name}`")
