"""The contract test suites: hand a plugin (and its sandbox) to them in a few lines.

    from threadline.testing import SourceContract

    class TestMyCrm(SourceContract):
        source = MyCrmSource
        sandbox = MyCrmSandbox
        ...

See `threadline.testing.source` and `threadline.testing.destination` for what each checks
and what a test class sets. Imports are lazy so that the pytest plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "SourceContract": "threadline.testing.source",
    "FolderSandbox": "threadline.testing.source",
    "DestinationContract": "threadline.testing.destination",
    "AudienceContract": "threadline.testing.audience",
    "sample_members": "threadline.testing.audience",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'threadline.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
