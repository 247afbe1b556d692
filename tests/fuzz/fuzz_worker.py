"""Runs threadline commands on many fuzz cases in one process, as the CLI runs them, and
prints one JSON line per case. A case that kills the process (a segfault) is the last one
announced with `start` and never finished."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

from click.testing import CliRunner


def main() -> None:
    commands = json.loads(sys.argv[1])  # e.g. [["check"], ["sync"]]
    deadline = time.monotonic() + float(sys.argv[2])
    from threadline.cli import _add_package_commands, cli

    _add_package_commands()
    runner = CliRunner()
    for line in sys.stdin:
        folder = line.strip()
        if not folder:
            continue
        if time.monotonic() > deadline:
            print(json.dumps({"case": folder, "skipped": "time bound"}), flush=True)
            continue
        print(json.dumps({"start": folder}), flush=True)
        os.chdir(folder)
        results = []
        for command in commands:
            result = runner.invoke(cli, ["--log-format", "plain", *command, "job.yaml"], catch_exceptions=True)
            unhandled = result.exception is not None and not isinstance(result.exception, SystemExit)
            results.append({
                "command": command, "exit": result.exit_code, "unhandled": unhandled,
                "traceback": "Traceback" in result.output,
                "detail": "".join(traceback.format_exception(result.exception))[-1500:] if unhandled
                else result.output[-1500:] if "Traceback" in result.output else "",
            })
        print(json.dumps({"case": folder, "results": results}), flush=True)


if __name__ == "__main__":
    main()
