"""Fixtures for the profile store's tests: a fresh store and a way to land Arrow tables into
it through the real destination contract (open_stream / write / commit / finish)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from threadline_profiles import ProfileStore, api
from threadline_profiles.testing import Lander

# The synthetic customer population lives with the benchmarks (bench/synthetic_customers.py):
# tests and B3 draw from the same generator, and the shipped package does not carry it.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def store_config(tmp_path: Path) -> dict[str, Any]:
    return {"path": str(tmp_path / "profiles.duckdb"), "resolve_on_finish": False}


@pytest.fixture
def lander(store_config: dict[str, Any]) -> Lander:
    return Lander(store_config)


def _postgres_reachable() -> str:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: skip with the reason
        return f"no PostgreSQL server reachable at 127.0.0.1:5432 ({type(exc).__name__})"


@pytest.fixture
def pg_schema(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh Postgres schema, dropped afterwards; skips when no server is reachable. A store
    made in it is encrypted (the default) under a key from the environment, so that no key
    file is left in the working folder."""
    reason = _postgres_reachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    monkeypatch.setenv("THREADLINE_STORE_KEY", uuid.uuid4().hex + uuid.uuid4().hex)

    schema = f"tl_test_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def resolve_with(tmp_path: Path):
    """Land {"source.stream": rows} (pk "id") with the given mappings and resolution
    settings, build, and return the open store."""
    opened: list[ProfileStore] = []

    def run(streams: dict[str, list[dict[str, Any]]], mappings: dict[str, Any], **settings: Any) -> ProfileStore:
        config = {"path": str(tmp_path / "profiles.duckdb"), "resolve_on_finish": False, "mappings": mappings}
        config.update({k: v for k, v in settings.items() if k in ("survivorship",)})
        resolution = {k: v for k, v in settings.items() if k not in ("survivorship",)}
        if resolution:
            config["resolution"] = resolution
        lander = Lander(config)
        for key, rows in streams.items():
            source, stream = key.split(".", 1)
            lander.land(source, stream, rows)
        store = lander.store()
        opened.append(store)
        api.build(store, report=False)
        return store

    yield run
    for store in opened:
        store.close()
