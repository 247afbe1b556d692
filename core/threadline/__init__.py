"""threadline: a plugin-based connector framework for customer data, Arrow end to end.

`from threadline import hookimpl` is all a plugin's entry point needs, and it imports neither
Arrow nor pydantic: the contract names below are imported from `threadline.contracts` on first
use, so registering plugins stays cheap (`threadline --help` pays for no connector).
"""

from typing import TYPE_CHECKING

import pluggy

from threadline.lazy import lazy_exports

hookimpl = pluggy.HookimplMarker("threadline")

__version__ = "0.1.0"

__all__ = [
    "Batch", "Catalog", "Checkpoint", "ConfigError", "Destination", "FatalError", "JobPath", "RateLimitStop", "ReadRequest",
    "Rejected", "Source", "Spec", "Stream", "StreamTarget", "StreamWriter", "SyncMode",
    "ThreadlineError", "TransientError", "WriteDisposition", "WriteReport", "hookimpl",
]

if TYPE_CHECKING:
    from threadline.contracts import (  # noqa: F401
        Batch,
        Catalog,
        Checkpoint,
        ConfigError,
        Destination,
        FatalError,
        JobPath,
        RateLimitStop,
        ReadRequest,
        Rejected,
        Source,
        Spec,
        Stream,
        StreamTarget,
        StreamWriter,
        SyncMode,
        ThreadlineError,
        TransientError,
        WriteDisposition,
        WriteReport,
    )


__getattr__ = lazy_exports(__name__, {name: "threadline.contracts" for name in __all__ if name != "hookimpl"})
