"""Plugin discovery: pluggy hooks, found through the ``threadline`` entry-point group.

The core never imports a plugin by name. Start-up pays only for what a command uses: a
plugin's entry point registers names, most of them by import path
(``register("hubspot", "threadline_hubspot.source:HubspotSource")``), and the module behind a
name is imported the first time that name is looked up. So `threadline --help` imports no
connector, no database driver and no sandbox, and a sync imports the connectors its job
names.

A plugin whose entry point fails to import is reported as a warning naming it, and the others
keep working; one whose registered import path fails is reported, naming the plugin and the
path, when that name is used. Two plugins that register the same name are an error naming
both distributions.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import pluggy

from threadline import hookspecs
from threadline.errors import ConfigError, ThreadlineError
from threadline.lazy import load

if TYPE_CHECKING:
    from threadline.contracts import AudienceDestination, Destination, Source

log = logging.getLogger("threadline.plugins")

ENTRY_POINT_GROUP = "threadline"


class PluginConflictError(ThreadlineError):
    """Two plugins registered the same connector name."""


class PluginLoadError(ThreadlineError):
    """A name a plugin registered by import path could not be imported."""


@dataclass
class PluginInfo:
    """One installed plugin: its distribution and what it registered.

    The distribution's name and version are read from its metadata only when asked for (the
    `plugins` command, an error naming the plugin): parsing 26 plugins' METADATA files took
    ~14 ms of CPU at every command's start-up."""

    name: str  # entry-point name
    dist: md.Distribution | None = field(default=None, repr=False, compare=False)
    sources: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    sandboxes: list[str] = field(default_factory=list)
    error: str = ""  # why it failed to load, if it did
    label: tuple[str, str] | None = None  # (distribution, version) of a plugin that has no `dist`

    @cached_property
    def _name_and_version(self) -> tuple[str, str]:
        if self.label is not None:
            return self.label
        if self.dist is None:
            return "?", "?"
        metadata = self.dist.metadata  # parsed once for both
        return metadata["Name"], metadata["Version"]

    @property
    def distribution(self) -> str:
        return self._name_and_version[0]

    @property
    def version(self) -> str:
        return self._name_and_version[1]

    def as_dict(self) -> dict[str, Any]:
        """What `threadline plugins --json` prints for it."""
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "sources": self.sources, "destinations": self.destinations, "sandboxes": self.sandboxes,
                "error": self.error}


@dataclass(frozen=True)
class ImportPath:
    """Where a registered object lives, ``"package.module:Name"``; imported on first use."""

    path: str

    def load(self) -> Any:
        return load(self.path)


class Registrations(MutableMapping[str, Any]):
    """Registered objects by name. A name registered by import path is imported the first time
    it is looked up; `names` and `in` never import anything."""

    def __init__(self, kind: str, items: dict[str, Any] | None = None,
                 owners: Callable[[str], PluginInfo | None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._owner = owners or (lambda name: None)
        for name, value in (items or {}).items():
            self[name] = value

    def __getitem__(self, name: str) -> Any:
        value = self._items[name]
        if isinstance(value, ImportPath):
            value = self._items[name] = self._import(name, value)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self._items[name] = ImportPath(value) if isinstance(value, str) else value

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def is_loaded(self, name: str) -> bool:
        return not isinstance(self._items.get(name), ImportPath)

    def _import(self, name: str, where: ImportPath) -> Any:
        owner = self._owner(name)
        plugin = f"plugin {owner.name!r} ({owner.distribution} {owner.version})" if owner else "its plugin"
        try:
            obj = where.load()
        except Exception as exc:
            raise PluginLoadError(
                f"the {self.kind} {name!r} registered by {plugin} cannot be imported from "
                f"{where.path}: {type(exc).__name__}: {exc}",
                hint=f"reinstall the plugin (pip install --force-reinstall {owner.distribution if owner else '<it>'}); "
                "`threadline plugins` lists what is installed",
            ) from exc
        registered_as = getattr(obj, "name", name) if self.kind in ("source", "destination") else name
        if registered_as != name:
            raise PluginLoadError(
                f"{plugin} registered the {self.kind} {name!r} at {where.path}, but that class is named {registered_as!r}",
                hint="the plugin's register call and its class disagree; report it to the plugin's authors",
            )
        return obj


@dataclass
class Registry:
    """What the installed plugins registered, by name. Looking a name up imports what it needs."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    sources: MutableMapping[str, type[Source]] = field(default_factory=dict)
    destinations: MutableMapping[str, type[Destination]] = field(default_factory=dict)
    sandboxes: MutableMapping[str, Callable[..., Any]] = field(default_factory=dict)
    owners: dict[tuple[str, str], PluginInfo] = field(default_factory=dict)
    audience_destinations: set[str] = field(default_factory=set)  # registered by register_audience_destinations

    def __post_init__(self) -> None:
        for kind, attribute in (("source", "sources"), ("destination", "destinations"), ("sandbox", "sandboxes")):
            table = getattr(self, attribute)
            if not isinstance(table, Registrations):
                setattr(self, attribute, Registrations(kind, dict(table), lambda name, k=kind: self.owners.get((k, name))))

    def source(self, name: str) -> Source:
        return self._lookup("source", name, self.sources)()

    def destination(self, name: str) -> Destination:
        return self._lookup("destination", name, self.destinations)()

    def is_audience_destination(self, name: str) -> bool:
        """Whether a destination takes audiences, not streams (known without importing it)."""
        return name in self.audience_destinations

    def audience_destination(self, name: str) -> type[AudienceDestination]:
        """The audience destination class called `name`; a ConfigError saying what `name` is
        otherwise (a record destination, or nothing installed) and listing the audience ones."""
        if name not in self.audience_destinations:
            what = "is a record destination, not an audience destination" if name in self.destinations else "is not installed"
            raise ConfigError(
                f"audience destination {name!r} {what}",
                hint=f"installed audience destinations: {', '.join(sorted(self.audience_destinations)) or '(none)'}; "
                     "`threadline plugins` lists what is installed")
        from threadline.contracts import AudienceDestination  # pyarrow: only when one is used

        found = self.destinations[name]
        if not (isinstance(found, type) and issubclass(found, AudienceDestination)):
            raise PluginLoadError(f"{name!r} was registered as an audience destination, but {found!r} is not an "
                                  "AudienceDestination", hint="report it to the plugin's authors")
        return found

    def _lookup(self, kind: str, name: str, table: MutableMapping[str, Any]) -> Any:
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
    """Load every installed plugin's entry point (plus `extra_plugins`, objects with hookimpls,
    for tests) and collect what they register. What they register by import path is imported
    only when it is looked up."""
    pm = _plugin_manager()
    plugins: list[PluginInfo] = []
    loaded: list[tuple[Any, PluginInfo]] = []
    for ep in _entry_points():
        info = PluginInfo(name=ep.name, dist=ep.dist)
        plugins.append(info)
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            info.error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "plugin %r from %s %s failed to load and is skipped: %s",
                ep.name, info.distribution, info.version, info.error,
            )
            continue
        if pm.is_registered(module):
            continue
        pm.register(module, name=f"{ep.name} ({ep.value})")
        loaded.append((module, info))
    for i, obj in enumerate(extra_plugins or []):
        info = PluginInfo(name=getattr(obj, "__name__", f"extra{i}"), label=("(in-process)", ""))
        plugins.append(info)
        pm.register(obj, name=f"extra:{i}:{info.name}")
        loaded.append((obj, info))

    registry = Registry(manager=pm, plugins=plugins)
    for plugin, info in loaded:
        _collect(registry, plugin, info)
    return registry


def _collect(registry: Registry, plugin: Any, info: PluginInfo) -> None:
    """Call one plugin's registration hooks, recording which plugin registered what.

    `register` takes a class with a `name` (imported already), or a name and where it lives:
    an import path ``"package.module:Name"`` (imported on first use) or the object itself."""

    def adder(kind: str, table: MutableMapping[str, Any], names: list[str], audiences: bool = False) -> Callable[..., None]:
        def register(obj: Any, target: Any = None) -> None:
            name = obj if isinstance(obj, str) else obj.name
            value = target if isinstance(obj, str) else obj
            if value is None:
                raise PluginLoadError(
                    f"plugin {info.name!r} ({info.distribution}) registered the {kind} {name!r} without saying where it is",
                    hint=f'register("{name}", "package.module:ClassName") or register(ClassName)',
                )
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
            if audiences:
                registry.audience_destinations.add(name)

        return register

    hooks = {
        "register_sources": adder("source", registry.sources, info.sources),
        "register_destinations": adder("destination", registry.destinations, info.destinations),
        "register_audience_destinations": adder("destination", registry.destinations, info.destinations, audiences=True),
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
