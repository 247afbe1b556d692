"""threadline-singer: any Singer tap as a threadline source, and threadline as Singer.

- `threadline_singer.source.SingerSource` (connector `singer`) runs a Singer tap.
- `tap-threadline` / `target-threadline` (see `threadline_singer.export`) run any installed
  threadline source as a Singer tap and any threadline destination as a Singer target.
"""

__version__ = "0.1.0"
