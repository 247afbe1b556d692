"""What tap-threadline and target-threadline share: their config, and how errors are shown."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from threadline.contracts import ConfigError, ThreadlineError
from threadline.plugins import registry
from threadline.secrets import redact

log = logging.getLogger("threadline.singer")

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
    own = without_inherited_keys(connector.spec, config.get("config") or {}, f"{kind} connector {name!r}")
    try:
        validated = connector.spec.model_validate(own, context={"base_dir": Path.cwd()})
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


def without_inherited_keys(spec: type[BaseModel], config: dict[str, Any], what: str) -> dict[str, Any]:
    """The connector's config less the keys its spec does not know, each named in a warning.

    Meltano's `inherit_from` merges a plugin's `config` object into its parent's, so a
    `tap-threadline-hubspot` inheriting from a `tap-threadline` set up for `files` arrives with
    the parent's `streams` too; the connector's strict check would refuse it. A key in neither
    spec is still lost to a typo, so the warning names it; a required field missing is still an error.
    """
    if spec.model_config.get("extra") != "forbid":
        return config
    known: set[str] = set()
    for field_name, info in spec.model_fields.items():
        known |= {field_name, *(a for a in (info.alias, info.validation_alias) if isinstance(a, str))}
    unknown = sorted(set(config) - known)
    if unknown:
        log.warning(
            "%s does not use config key(s) %s: ignored (Meltano's inherit_from merges a parent plugin's config; "
            "if one is a typo, fix its name)", what, ", ".join(repr(k) for k in unknown),
        )
    return {k: v for k, v in config.items() if k in known}


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
