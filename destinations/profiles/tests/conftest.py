"""Fixtures for the profile store's tests: a fresh store and a way to land Arrow tables into
it through the real destination contract (open_stream / write / commit / finish)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from threadline.contracts import Stream, StreamTarget, WriteDisposition

from threadline_profiles import ProfilesConfig, ProfilesDestination, ProfileStore

PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class Lander:
    """Lands tables into one store, as the engine would."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.raw_config = config
        self.destination = ProfilesDestination()

    @property
    def config(self) -> ProfilesConfig:
        return ProfilesConfig.model_validate(self.raw_config)

    def land(self, source: str, stream: str, table: pa.Table | list[dict[str, Any]], *, pk: tuple[str, ...] = ("id",),
             run_id: str = "run-1", disposition: WriteDisposition = WriteDisposition.UPSERT,
             batch_rows: int = 1000, schema: pa.Schema | None = None) -> Any:
        if isinstance(table, list):
            table = pa.Table.from_pylist(table, schema=schema)
        target = StreamTarget(source, Stream(stream, table.schema, primary_key=pk), disposition, f"{source}__{stream}", run_id)
        writer = self.destination.open_stream(self.config, target)
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write(batch)
        writer.commit()
        return writer.finish()

    def build(self, **kw: Any) -> Any:
        with ProfileStore.open(self.config) as store:
            return store.build(**kw)

    def store(self) -> ProfileStore:
        return ProfileStore.open(self.config)


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
def pg_schema() -> Any:
    """A fresh Postgres schema, dropped afterwards; skips when no server is reachable."""
    reason = _postgres_reachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"tl_test_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
