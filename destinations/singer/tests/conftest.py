"""Fixtures for the `singer` destination: real targets from PyPI (each in its own cached venv)
and a misbehaving target script."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pytest

from threadline.contracts import Stream, StreamTarget, WriteDisposition
from threadline_singer.testing import TARGET_CSV, TARGET_JSONL, tool
from threadline_singer_target.destination import SingerTargetConfig

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def target_csv() -> str:
    """meltanolabs-target-csv (singer-sdk based), installed once into its own venv."""
    return str(tool(TARGET_CSV))


@pytest.fixture(scope="session")
def target_jsonl() -> str:
    """target-jsonl (a classic singer-python target), installed once into its own venv."""
    return str(tool(TARGET_JSONL))


@pytest.fixture
def broken_target(tmp_path: Path):
    """Config running fixtures/broken_target.py in a mode; records land in tmp_path/out.jsonl."""

    def config(mode: str, **extra) -> SingerTargetConfig:
        return SingerTargetConfig(
            executable=[sys.executable, str(FIXTURES / "broken_target.py")],
            target_config={"mode": mode, "out": str(tmp_path / "out.jsonl")},
            **extra,
        )

    return config


@pytest.fixture
def customers() -> Stream:
    schema = pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("email", pa.string()),
        pa.field("signed_up", pa.timestamp("us", tz="UTC")),
        pa.field("born", pa.date32()),
        pa.field("score", pa.float64()),
    ])
    return Stream(name="customers", schema=schema, primary_key=("id",))


@pytest.fixture
def stream_target(customers: Stream):
    def make(disposition: WriteDisposition = WriteDisposition.UPSERT) -> StreamTarget:
        return StreamTarget(source="crm", stream=customers, disposition=disposition, table="customers", run_id="run-1")

    return make
