"""What tap-threadline and target-threadline share: their config, and how errors are shown."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from threadline.contracts import ConfigError, ThreadlineError
from threadline.plugins import registry
from threadline.secrets import redact

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "connector": {"type": "string", "description": "the threadline connector name, e.g. files or duckdb"},
        "config": {"type": "object", "description": "that connector's config, as in a job file"},
        "source_name": {
            "type": ["string", "null"],
            "description": "target only: the source name destinations record as lineage (default: singer)",
        },
        "disposition": {
            "type": ["string", "null"],
            "enum": ["append", "replace", "upsert", None],
            "description": "target only: how streams are written (default: upsert with key properties, else append)",
        },
    },
    "required": ["connector"],
}


class ExportError(ThreadlineError):
    """The Singer config does not name a usable threadline connector."""


def load_connector(kind: str, config: dict[str, Any]) -> tuple[Any, Any]:
    """The (connector instance, validated config) named by a tap/target-threadline config."""
    name = config.get("connector")
    if not name:
        raise ExportError('the config has no "connector"', hint='add e.g. "connector": "files"')
    plugins = registry()
    connector = plugins.source(name) if kind == "source" else plugins.destination(name)
    try:
        validated = connector.spec.model_validate(config.get("config") or {}, context={"base_dir": Path.cwd()})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"the config of {kind} connector {name!r} is invalid: {problems}",
            field="config",
            hint=f"fix the \"config\" object; it is the same as the connector's config in a job file",
        ) from None
    return connector, validated


def run_cli(cli: Callable[[], Any]) -> None:
    """Run a singer-sdk CLI; threadline errors become a message and exit code 1.

    The process ends with os._exit once output is flushed: Arrow's thread pools can abort
    the interpreter's teardown now and then ("terminate called without an active
    exception"), which would turn a finished sync into a failed one for Meltano.
    """
    code = 0
    try:
        cli()
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except ThreadlineError as exc:
        print(f"error: {redact(exc.render())}", file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
