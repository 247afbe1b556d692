"""Given names and their nicknames, from a maintained list rather than a hand table.

The `nicknames` package (Carlton Northern's hand-curated list of English given names and their
nicknames, Apache-2.0) says which names are one person's: Edward and Ted, Margaret and Peggy,
Anna and Nan. Two given names are related when one is a nickname of the other, or both are
nicknames of one formal name (Kate and Kathy). The agreement rule compares such names as
near — the level of a short form (Kev, Kevin) —, so one person's records under a nickname
and the formal name are evidence of one person instead of two different first names.

The pairs are of matching keys, as the normalizer writes a first name's key (its own small
table already keys Kate as katherine, so the pairs are keyed the same way). They are loaded
into the connection as a temporary table before comparing, TABLE (a, b: both directions), which the
comparison's SQL looks pairs up in (agreement.level_sql).
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa

TABLE = "tl_work_nicknames"


@lru_cache(maxsize=1)
def related_pairs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(a, b) columns: every ordered pair of different matching keys of related given names."""
    from nicknames import NickNamer

    from threadline_profiles.resolve.normalize import normalize_name

    def key(name: str) -> str | None:
        n = normalize_name(name, "given")
        return n.key if n.status == "ok" else None

    lookup = NickNamer().nickname_lookup  # formal name -> its nicknames
    pairs: set[tuple[str, str]] = set()
    for formal, nicks in lookup.items():
        group = {k for k in (key(w) for w in (formal, *nicks)) if k}
        pairs.update((x, y) for x in group for y in group if x != y)
    ordered = sorted(pairs)
    return tuple(p[0] for p in ordered), tuple(p[1] for p in ordered)


def load(engine) -> None:
    """Make TABLE available to this connection's comparisons. Loaded anew each time (8k rows):
    a build's clean-up drops every work table, and the next build on the connection needs it."""
    a, b = related_pairs()
    engine.load_table(TABLE, pa.table({"a": pa.array(a, pa.string()), "b": pa.array(b, pa.string())}), temp=True)
