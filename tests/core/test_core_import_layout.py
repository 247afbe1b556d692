"""The workspace has no import cycles, and the profile store's stages import one way down
the flow (tools/import_cycles.py, which contributors run by hand too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "import_cycles.py"


def test_the_workspace_has_no_import_cycles_and_no_layer_violations():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no import cycles, no layer violations" in result.stdout


def test_the_checker_reports_a_cycle():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import import_cycles
    finally:
        sys.path.pop(0)
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles.cycles(edges) == [["a", "b", "c"]]


def test_the_checker_reports_a_stage_importing_a_later_stage():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import import_cycles
    finally:
        sys.path.pop(0)
    edges = {"threadline_profiles.resolve.link": {"threadline_profiles.audiences.expr"},
             "threadline_profiles.audiences.expr": {"threadline_profiles.resolve.link"}}
    problems = import_cycles.layer_violations(edges)
    assert problems == ["threadline_profiles.resolve.link imports threadline_profiles.audiences.expr, a later stage"]
