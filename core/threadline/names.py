"""The one rule for names that become file names, folder names or SQL identifiers.

Job, source, destination, stream and table names end up as path components (quarantine
files, state locks, Parquet folders, direct-mail files) and as table names. A name that
could climb out of its folder (`../x`), hide itself (`.x`), hold a separator, a NUL or a
newline, or be empty is refused where it is first read, with what to use instead:

    letters, digits and `_`, then letters, digits, `_`, `-` and `.` (never `..`), at most 128

Every writer still quotes identifiers and joins paths under its own folder; `inside` is the
check for a path that must stay in a folder.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from threadline.contracts import ConfigError

NAME_RULE = "letters, digits and '_', then also '-' and '.' (no '..'), at most 128 characters"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def is_safe_name(name: object) -> bool:
    """Whether `name` may be used as a file name and an identifier as it is."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and ".." not in name


def safe_name(name: object, what: str, *, where: str = "", field: str = "", hint: str = "") -> str:
    """`name` itself, or a ConfigError saying which `what` (e.g. "stream name") is unsafe."""
    if not is_safe_name(name):
        raise ConfigError(
            f"{what} {name!r} cannot be used: it becomes a file or table name",
            where=where, field=field, hint=f"use {NAME_RULE}" + (f"; {hint}" if hint else ""),
        )
    return str(name)


def safe_name_for(name: str) -> str:
    """A safe name made from a foreign one (a Singer stream's, say): each run of characters the
    rule refuses becomes one `_`, `..` becomes `_`, and the result is cut to 128 characters.
    Callers that map many names this way must refuse two that land on the same name."""
    made = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).replace("..", "_")
    if not made or not re.match(r"[A-Za-z0-9_]", made):
        made = "_" + made
    return made[:128]


def inside(folder: Path, path: Path) -> bool:
    """Whether `path`, with symlinks and `..` resolved, is `folder` or under it."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def unknown_name(what: str, name: str, known: Iterable[str], *, where: str = "") -> ConfigError:
    """The error for a name that is not one of `known`, suggesting the closest ones."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return ConfigError(f"no {what} named {name!r}", where=where,
                       hint=hint + f"known: {', '.join(known) if known else '(none)'}")
