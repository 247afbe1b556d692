"""Arrow arrays built without making pyarrow import pandas.

pyarrow imports pandas, when it is installed, the first time a Python or NumPy value is handed
to it (`pa.array(numpy_array)`, `pa.scalar(None)`): ~0.6 CPU-s, as much as a 200k-row sync's
whole write. The hot paths build what they need from buffers instead
(tests/core/test_core_startup.py checks a sync imports no pandas).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def bool_mask(flags: np.ndarray) -> pa.BooleanArray:
    """A boolean Arrow array (no nulls) from a NumPy array of bools, by its bit buffer."""
    bits = np.packbits(np.asarray(flags, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(flags), [None, pa.py_buffer(bits)])
