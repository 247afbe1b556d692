"""The plugin costs `threadline --help` nothing heavy: the web stack loads when `collect` runs."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
sys.argv = ["threadline", "--help"]
from threadline.cli import main
try:
    main()
except SystemExit:
    pass
print("imported:" + ",".join(m for m in ("starlette", "uvicorn", "threadline_events.collector") if m in sys.modules))
"""


def test_help_lists_collect_without_importing_the_web_stack():
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert "collect" in probe.stdout  # the command is listed ...
    assert probe.stdout.strip().splitlines()[-1] == "imported:"  # ... and none of its web stack was imported
