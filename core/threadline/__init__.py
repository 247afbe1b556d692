"""threadline: a plugin-based connector framework for customer data, Arrow end to end."""

import pluggy

from threadline.contracts import (
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

hookimpl = pluggy.HookimplMarker("threadline")

__version__ = "0.1.0"

__all__ = [
    "Batch", "Catalog", "Checkpoint", "ConfigError", "Destination", "FatalError", "JobPath", "RateLimitStop", "ReadRequest",
    "Rejected", "Source", "Spec", "Stream", "StreamTarget", "StreamWriter", "SyncMode",
    "ThreadlineError", "TransientError", "WriteDisposition", "WriteReport", "hookimpl",
]
