"""Checks on a plugin's config spec shared by the source and destination suites: it is a
strict pydantic model, it has a JSON schema, and every field is documented — with a
`Field(description=...)` or a row of the plugin's README config table.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from pathlib import Path
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from threadline.contracts import ConfigError

_ROW = re.compile(r"^\s*\|\s*`([^`]+)`")


def leaf_fields(spec: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """`(path, description)` of every leaf field: `streams[].csv.delimiter`, `columns.*.type`.
    A field that is a union of models (`auth: Bearer | ApiKey`) has the leaves of each."""
    out: dict[str, str] = {}
    for name, info in spec.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        nested = _nested_models(info.annotation)
        if not nested:
            out.setdefault(path, info.description or "")
        for model, suffix in nested:
            for leaf, description in leaf_fields(model, path + suffix):
                if description or leaf not in out:
                    out[leaf] = description
    return list(out.items())


def _nested_models(annotation: Any) -> list[tuple[type[BaseModel], str]]:
    """The models inside `Model`, `A | B | None`, `list[Model]`, `dict[str, Model]`, with the
    path suffix their fields get (`[]` for list items, `.*` for dict values)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [(annotation, "")]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return [found for arg in args for found in _nested_models(arg)]
    if origin in (list, tuple, set, frozenset) and args:
        return [(model, "[]" + suffix) for model, suffix in _nested_models(args[0])]
    if origin is dict and len(args) == 2:
        return [(model, ".*" + suffix) for model, suffix in _nested_models(args[1])]
    if origin is typing.Annotated and args:
        return _nested_models(args[0])
    return []


def normalize(path: str) -> str:
    """`streams[].columns.<col>.type` and `streams[0].columns.*.type` → `streams.columns.type`."""
    path = re.sub(r"\[[^\]]*\]", "", path)
    return ".".join(p for p in path.split(".") if p and p != "*" and not p.startswith("<"))


def readme_rows(readme: Path | None) -> dict[str, str]:
    """The README's table rows that name a field in their first cell: normalized path → row text."""
    if readme is None or not readme.exists():
        return {}
    rows: dict[str, str] = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line)
        if m:
            rows[normalize(m.group(1))] = rows.get(normalize(m.group(1)), "") + line
    return rows


def undocumented(spec: type[BaseModel], readme: Path | None) -> list[str]:
    """Leaf fields with no description and no README row. A row for a parent that names the
    field counts (`| `timeout` | `{connect: 10, read: 60}` | ... |` documents `timeout.connect`)."""
    rows = readme_rows(readme)
    missing = []
    for path, description in leaf_fields(spec):
        if description:
            continue
        parts = normalize(path).split(".")
        if ".".join(parts) in rows:
            continue
        leaf = re.compile(rf"\b{re.escape(parts[-1])}\b")
        if any(leaf.search(rows.get(".".join(parts[:cut]), "")) for cut in range(1, len(parts))):
            continue
        missing.append(path)
    return missing


def plugin_readme(plugin_class: type) -> Path | None:
    """The README.md beside the plugin's package: `<plugin folder>/README.md`."""
    module = inspect.getmodule(plugin_class)
    if module is None or not getattr(module, "__file__", None):
        return None
    for folder in Path(module.__file__).resolve().parents[:3]:
        if (folder / "README.md").exists() and (folder / "pyproject.toml").exists():
            return folder / "README.md"
    return None


def set_path(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of `config` with `dotted` (`a.b`, `streams[0].path`) set to `value`."""
    import copy

    out = copy.deepcopy(config)
    parts = [p for p in re.split(r"\.|\[(\d+)\]", dotted) if p]
    node: Any = out
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def config_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError a bad config is reported as (pydantic errors become one naming the field)."""
    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        return ConfigError(err["msg"], field=field)
    return None


def names_field(err: ConfigError, field: str) -> bool:
    """Does the error point at `field` (by its `field` attribute, or in its text)? A parent or
    child path counts: `auth` names `auth.token` and the other way round."""
    want, got = normalize(field), normalize(err.field or "")
    if got:
        for a, b in ((want, got), (got, want)):
            if a == b or a.endswith("." + b) or a.startswith(b + "."):
                return True
    return bool(field) and field in err.render()


def config_error_from(call: Callable[[], Any], what: str) -> ConfigError:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - anything but a ConfigError is the finding
        error = config_error(exc)
        if error is None:
            raise AssertionError(f"{what} raised {type(exc).__name__}, not a ConfigError: {exc}") from exc
        return error
    raise AssertionError(f"{what} passed; it must raise a ConfigError naming the field")
