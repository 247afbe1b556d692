"""tap-threadline and target-threadline against singer-sdk's own tap and target test suites."""

from __future__ import annotations

import tempfile
from pathlib import Path

from singer_sdk.testing import get_tap_test_class, get_target_test_class

from threadline_singer.export.tap import TapThreadline
from threadline_singer.export.target import TargetThreadline

FIXTURES = Path(__file__).parent / "fixtures"

TAP_CONFIG = {
    "connector": "files",
    "config": {
        "streams": [
            {
                "name": "customers",
                "path": str(FIXTURES / "customers.csv"),
                "primary_key": ["id"],
                "columns": {"id": {"type": "int64"}, "signed_up": {"type": "timestamp"}},
            }
        ]
    },
}

# The suites build their classes at import time, so the store lives in a folder made here.
TARGET_CONFIG = {
    "connector": "duckdb",
    "config": {"path": str(Path(tempfile.mkdtemp(prefix="threadline-target-suite-")) / "store.duckdb")},
}

TestTapThreadline = get_tap_test_class(TapThreadline, config=TAP_CONFIG)

TestTargetThreadline = get_target_test_class(TargetThreadline, config=TARGET_CONFIG)
