"""Test and benchmark helpers: Singer taps and targets from PyPI, each in a venv of its own.

Singer plugins pin conflicting versions of their dependencies, so each one is installed once
into its own virtual environment under a cache folder (``THREADLINE_SINGER_TOOLS`` or
``~/.cache/threadline-test-taps``) and reused by later runs. Building one needs PyPI.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

CACHE = Path(os.environ.get("THREADLINE_SINGER_TOOLS", Path.home() / ".cache" / "threadline-test-taps"))

# Singer plugins the tests and benchmarks run, pinned: (requirement, executable).
TARGET_CSV = ("meltanolabs-target-csv==0.5.0", "target-csv")
TARGET_JSONL = ("target-jsonl==0.1.4", "target-jsonl")
TAP_JSONL = ("tap-jsonl==0.3.1", "tap-jsonl")
MELTANO = ("meltano==4.4.1", "meltano")


class ToolInstallError(RuntimeError):
    """A tool venv could not be built (no network to PyPI, or the package would not install)."""


def tool_venv(*requirements: str, name: str | None = None) -> Path:
    """The bin/ folder of a cached venv with `requirements` installed; built on first use."""
    key = name or hashlib.sha256(" ".join(sorted(requirements)).encode()).hexdigest()[:12]
    home = CACHE / key
    stamp = home / ".installed"
    wanted = "\n".join(requirements)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse it
        if not (stamp.exists() and stamp.read_text() == wanted):
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", str(home)], check=True, capture_output=True)
            if not (home / "bin" / "pip").exists():  # a Python whose venv lacks pip
                venv.EnvBuilder(with_pip=True, clear=True).create(home)
            done = subprocess.run(
                [str(home / "bin" / "python"), "-m", "pip", "install", "-q", *requirements],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise ToolInstallError(
                    f"pip install {' '.join(requirements)} into {home} failed:\n{done.stderr[-2000:]}"
                )
            stamp.write_text(wanted)
    return home / "bin"


def tool(spec: tuple[str, str]) -> Path:
    """The executable of one pinned Singer tool (see TARGET_CSV and friends)."""
    requirement, executable = spec
    return tool_venv(requirement, name=requirement.replace("==", "-")) / executable
