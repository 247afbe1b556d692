#!/usr/bin/env python3
"""Set-up and everyday commands for working on threadline, with nothing but Python 3.11+.

    python3 dev.py demo     # create .venv, install the workspace, run the main job (examples/mission) end to end
    python3 dev.py test     # create .venv, install the workspace, run the whole test suite
    python3 dev.py setup    # only create .venv and install (core + every plugin, editable)
    python3 dev.py bench    # run the benchmarks in bench/ and print their figures

Installing is skipped when no pyproject.toml changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".threadline-installed"


def workspace_packages() -> list[Path]:
    """The core plus every plugin package: each folder under connectors/ and destinations/
    with its own pyproject.toml."""
    plugins = sorted(p.parent for d in ("connectors", "destinations") for p in (ROOT / d).glob("*/pyproject.toml"))
    return [ROOT, *plugins]


def has_dev_extra(package: Path) -> bool:
    """Whether a package declares a `dev` extra (test-only dependencies, like a Singer tap)."""
    with (package / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle).get("project", {})
    return "dev" in project.get("optional-dependencies", {})


def fingerprint(packages: list[Path]) -> str:
    digest = hashlib.sha256()
    for pkg in packages:
        digest.update(str(pkg).encode())
        digest.update((pkg / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"threadline needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    packages = workspace_packages()
    stamp = fingerprint(packages)
    if STAMP.exists() and STAMP.read_text() == stamp:
        return
    print(f"installing threadline and {len(packages) - 1} plugins (editable) ...", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    args = [PY, "-m", "pip", "install", "-q"]
    for pkg in packages:
        args += ["-e", f"{pkg}[dev]" if has_dev_extra(pkg) else str(pkg)]
    subprocess.run(args, check=True)
    STAMP.write_text(stamp)


def run(*args: str | Path) -> int:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    setup()
    if command == "setup":
        return 0
    if command == "demo":
        # the whole mission: vendor sandboxes -> profile store -> audiences -> platforms (see examples/mission)
        return run(PY, "examples/mission/replay.py", "--serve", *rest)
    if command == "test":
        return run(PY, "-m", "pytest", *rest)
    if command == "bench":
        # the anchors benchmarks compare against (singer-sdk taps, FEBRL data) are bench-only
        subprocess.run([PY, "-m", "pip", "install", "-q", "-r", ROOT / "bench" / "requirements.txt"], check=True)
        return run(PY, "bench/run.py", *rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
