#!/usr/bin/env python3
"""Find import cycles and layer violations in threadline's packages.

    python3 tools/import_cycles.py            # every package in the workspace
    python3 tools/import_cycles.py --verbose  # also print each package's module count

An import counts wherever it stands (a function-level import is still a dependency); only
imports under `if TYPE_CHECKING:` are left out, since they never run. Exit 1 when a cycle
or a layer violation is found, so CI and contributors can run it.

Layers: the profile store's stage folders import one way down the flow (LAYERS below): a
module may import its own folder and any folder listed before it, never one after it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The profile store's folders and top-level modules in flow order: the stages, then the build
# that runs them (pipeline), the operations on a store (api), the destination and test kit
# that use those, and the commands and plugin hooks on top.
LAYERS = {
    "threadline_profiles": ["config", "engines", "store", "land", "resolve", "traits", "audiences", "decisions",
                            "activation", "audit", "report", "pipeline", "api", "destination", "testing", "cli",
                            "serve", "plugin"],
}


def packages() -> dict[str, Path]:
    """Import name -> folder, for the core and every plugin package."""
    found = {"threadline": ROOT / "core" / "threadline"}
    for group in ("connectors", "destinations"):
        for pyproject in sorted((ROOT / group).glob("*/pyproject.toml")):
            for init in pyproject.parent.glob("threadline_*/__init__.py"):
                found[init.parent.name] = init.parent
    return found


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The workspace modules `module` imports (resolved to the longest known module name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    is_pkg = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` depends on pkg.mod; `from mod import name` on mod
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def graph() -> dict[str, set[str]]:
    files: dict[str, Path] = {}
    for package, folder in packages().items():
        for path in folder.rglob("*.py"):
            files[module_name(package, folder, path)] = path
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    problems = []
    for package, order in LAYERS.items():
        rank = {name: i for i, name in enumerate(order)}

        def layer(module: str) -> int:
            parts = module.split(".")
            if parts[0] != package or len(parts) < 2:
                return len(order)  # the package's own __init__ re-exports, so it sits on top
            return rank.get(parts[1], len(order))

        for module, targets in edges.items():
            for target in targets:
                if target.split(".")[0] == package and layer(target) > layer(module):
                    problems.append(f"{module} imports {target}, a later stage")
    return sorted(problems)


def main(argv: list[str]) -> int:
    edges = graph()
    found = cycles(edges)
    violations = layer_violations(edges)
    if "--verbose" in argv:
        print(f"{len(edges)} modules read")
    for component in found:
        print(f"import cycle ({len(component)} modules): " + " -> ".join(component))
    for problem in violations:
        print(f"layer violation: {problem}")
    if not found and not violations:
        print(f"no import cycles, no layer violations ({len(edges)} modules)")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
