"""The threadline pytest plugin (entry point `pytest11`), loaded by every pytest run in an
environment where threadline is installed — so it stays light: it registers the markers the
contract suites use and imports nothing else. The suites themselves are in
`threadline.testing` (imported only by the test files that use them).
"""

from __future__ import annotations

from typing import Any


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "contract: a test of threadline's contract suite (threadline.testing) run against a plugin"
    )
    config.addinivalue_line(
        "markers",
        "template_install: renders the connector template, pip-installs the result into a throwaway "
        "virtualenv and runs its tests in a subprocess (slow: about 30 s)",
    )
