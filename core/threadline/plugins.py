"""Plugin discovery: pluggy hooks, found through the ``threadline`` entry-point group.

The core never imports a plugin by name. A plugin that fails to import is reported as a
warning naming it, and the others keep working. Two plugins that register the same connector
name are an error naming both distributions.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pluggy

from threadline import hookspecs
from threadline.contracts import ConfigError, Destination, Source, ThreadlineError

log = logging.getLogger("threadline.plugins")

ENTRY_POINT_GROUP = "threadline"


class PluginConflictError(ThreadlineError):
    """Two plugins registered the same connector name."""


@dataclass
class PluginInfo:
    """One installed plugin: its distribution and what it registered."""

    name: str  # entry-point name
    distribution: str
    version: str
    sources: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    sandboxes: list[str] = field(default_factory=list)
    error: str = ""  # why it failed to load, if it did


@dataclass
class Registry:
    """What the installed plugins registered, by connector name."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    sources: dict[str, type[Source]] = field(default_factory=dict)
    destinations: dict[str, type[Destination]] = field(default_factory=dict)
    sandboxes: dict[str, Callable[..., Any]] = field(default_factory=dict)
    owners: dict[tuple[str, str], PluginInfo] = field(default_factory=dict)

    def source(self, name: str) -> Source:
        return self._lookup("source", name, self.sources)()

    def destination(self, name: str) -> Destination:
        return self._lookup("destination", name, self.destinations)()

    def _lookup(self, kind: str, name: str, table: dict[str, Any]) -> Any:
        if name in table:
            return table[name]
        installed = ", ".join(sorted(table)) or "(none)"
        raise ConfigError(
            f"no {kind} connector named {name!r} is installed (installed: {installed})",
            hint=f"install the plugin that provides it, e.g. `threadline install threadline-{name}` "
            "or `threadline install ./connectors/<folder>`; `threadline plugins` lists what is installed",
        )


def _plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("threadline")
    pm.add_hookspecs(hookspecs)
    return pm


def _entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load_registry(extra_plugins: list[Any] | None = None) -> Registry:
    """Load every installed plugin (plus `extra_plugins`, objects with hookimpls, for tests)."""
    pm = _plugin_manager()
    plugins: list[PluginInfo] = []
    loaded: list[tuple[Any, PluginInfo]] = []
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        info = PluginInfo(name=ep.name, distribution=dist, version=version)
        plugins.append(info)
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            info.error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "plugin %r from %s %s failed to load and is skipped: %s",
                ep.name, dist, version, info.error,
            )
            continue
        if pm.is_registered(module):
            continue
        pm.register(module, name=f"{dist}:{ep.name}")
        loaded.append((module, info))
    for i, obj in enumerate(extra_plugins or []):
        info = PluginInfo(name=getattr(obj, "__name__", f"extra{i}"), distribution="(in-process)", version="")
        plugins.append(info)
        pm.register(obj, name=f"extra:{i}:{info.name}")
        loaded.append((obj, info))

    registry = Registry(manager=pm, plugins=plugins)
    for plugin, info in loaded:
        _collect(registry, plugin, info)
    return registry


def _collect(registry: Registry, plugin: Any, info: PluginInfo) -> None:
    """Call one plugin's registration hooks, recording which plugin registered what."""

    def adder(kind: str, table: dict[str, Any], names: list[str]) -> Callable[..., None]:
        def register(obj: Any, factory: Callable[..., Any] | None = None) -> None:
            name = obj if isinstance(obj, str) else obj.name
            value = factory if isinstance(obj, str) else obj
            owner = registry.owners.get((kind, name))
            if owner is not None and owner is not info:
                raise PluginConflictError(
                    f"{kind} {name!r} is registered by two plugins: "
                    f"{owner.distribution} {owner.version} and {info.distribution} {info.version}",
                    hint=f"uninstall one of them (pip uninstall {info.distribution})",
                )
            registry.owners[(kind, name)] = info
            table[name] = value
            names.append(name)

        return register

    hooks = {
        "register_sources": adder("source", registry.sources, info.sources),
        "register_destinations": adder("destination", registry.destinations, info.destinations),
        "register_sandboxes": adder("sandbox", registry.sandboxes, info.sandboxes),
    }
    for hook_name, register in hooks.items():
        impl = getattr(plugin, hook_name, None)
        if impl is not None and callable(impl):
            impl(register=register)


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry of installed plugins (loaded once)."""
    return load_registry()


def reset() -> None:
    """Forget the loaded registry (tests that install plugins in-process use this)."""
    registry.cache_clear()
