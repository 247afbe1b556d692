"""Fixtures for the Singer tests: a real tap from PyPI (tap-jsonl), its data, a broken tap."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from threadline.contracts import ReadRequest, SyncMode
from threadline_singer.source import SingerSource, SingerSourceConfig
from threadline_singer.testing import TAP_JSONL, tool

FIXTURES = Path(__file__).parent / "fixtures"
PEOPLE = 1_200


@pytest.fixture(scope="session")
def tap_jsonl() -> str:
    """The tap-jsonl executable (a singer-sdk tap from PyPI): this environment's when the dev
    extra installed it, else one installed into a cached venv of its own."""
    here = Path(sys.executable).parent / "tap-jsonl"
    return str(here) if here.exists() else str(tool(TAP_JSONL))


@pytest.fixture(scope="session")
def tap_jsonl_class() -> str:
    """tap-jsonl's Tap class, for in-process runs: it must be installed in this environment."""
    pytest.importorskip(
        "tap_jsonl", reason="in-process runs need tap-jsonl here: pip install -e 'connectors/singer[dev]'"
    )
    return "tap_jsonl.tap:TapJsonl"


@pytest.fixture(scope="session")
def people_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JSON lines of customers: typed scalars, a date-time, a date, nested values."""
    path = tmp_path_factory.mktemp("people") / "people.jsonl"
    with path.open("w") as out:
        for i in range(PEOPLE):
            out.write(json.dumps({
                "id": i,
                "email": f"person{i}@example.com",
                "score": i / 7,
                "vip": i % 3 == 0,
                "signed_up": f"2024-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
                "born": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}",
                "address": {"city": "Lyon", "zip": f"{69000 + i % 10}"},
            }) + "\n")
    return path


@pytest.fixture
def jsonl_tap_config(people_file: Path):
    """tap-jsonl's config for the people file."""
    return lambda **extra: {"path": str(people_file), "stream_name": "people", "primary_keys": ["id"], **extra}


@pytest.fixture
def broken_tap():
    """Source config running fixtures/broken_tap.py in a mode (see its docstring)."""

    def config(mode: str, **extra) -> SingerSourceConfig:
        return SingerSourceConfig(
            executable=[sys.executable, str(FIXTURES / "broken_tap.py")], tap_config={"mode": mode}, **extra
        )

    return config


@pytest.fixture(scope="session")
def singer_source() -> SingerSource:
    """One source for the session: it discovers each tap config once, as in one sync."""
    return SingerSource()


@pytest.fixture
def read_stream(singer_source: SingerSource):
    """Read one stream with the `singer` source; returns every message, in order."""

    def read(config: SingerSourceConfig, stream: str, *, state: dict | None = None,
             mode: SyncMode = SyncMode.INCREMENTAL, into: list | None = None) -> list:
        source = singer_source
        request = ReadRequest(stream=source.discover(config).get(stream), sync_mode=mode, state=state or {})
        messages = into if into is not None else []
        for message in source.read(config, request):
            messages.append(message)
        return messages

    return read
