"""Imports on first use, so start-up pays only for what a command uses.

- `load("package.module:Name")` imports a module and returns the named object: how plugins
  register connectors, sandboxes and commands by import path.
- `lazy_exports(__name__, {...})` is a package's `__getattr__` that re-exports names from its
  modules without importing them until they are used: a plugin's entry point imports its
  package, and the package must not drag in the connector, its HTTP kit or its sandbox.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load(path: str) -> Any:
    """The object at `path`, ``"package.module:Name"`` (or ``"package.module:Name.attribute"``)."""
    module_name, _, attribute = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` serving each of `names` (name → the module that defines it, or
    the submodule itself when it is ``f"{package}.{name}"``) on first access::

        __getattr__ = lazy_exports(__name__, {"FilesSource": "threadline_files.source"})
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            module = importlib.import_module(names[name])
            return module if names[name] == f"{package}.{name}" else getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
