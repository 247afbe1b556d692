"""Sync jobs: the YAML file that says which sources go to which destinations.

    name: customers
    sources:
      crm:                          # the source's name: tables land as crm__<stream>
        connector: files
        config: {...}               # validated by the connector's spec
        streams:                    # optional; default: every stream, default sync mode
          customers: {sync_mode: incremental, write: upsert}
    destinations:
      warehouse:
        connector: duckdb
        config: {path: warehouse.duckdb}

`${VAR}` (or `${VAR:-default}`) anywhere in a string takes the value from the environment;
values taken that way are treated as secrets. Every validation error names the file, the
line, the YAML path and what was expected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from threadline.contracts import ConfigError, SyncMode, WriteDisposition
from threadline.secrets import register_secret

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

YamlPath = tuple[str | int, ...]


# --------------------------------------------------------------------------- the job model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamChoice(_Strict):
    """How one stream of a source is synced."""

    sync_mode: SyncMode | None = None  # default: incremental where the stream supports it
    write: WriteDisposition | None = None  # default: upsert with a primary key, else by sync mode
    table: str | None = None  # default: <source>__<stream>


class SourceJob(_Strict):
    connector: str
    config: dict[str, Any] = Field(default_factory=dict)
    streams: dict[str, StreamChoice | None] | None = None  # None: every stream the source offers
    destination: str | None = None  # required when the job has more than one destination


class DestinationJob(_Strict):
    connector: str
    config: dict[str, Any] = Field(default_factory=dict)


class Job(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    sources: dict[str, SourceJob] = Field(min_length=1)
    destinations: dict[str, DestinationJob] = Field(min_length=1)
    state: str = ".threadline"  # folder for state, run history, quarantine and locks
    max_rejected_share: float = Field(default=0.05, ge=0, le=1)
    concurrency: int = Field(default=2, ge=1, le=32)  # streams of one source read at once

    # where the job came from, for error messages and relative paths (not part of the YAML)
    base_dir: Path = Field(default=Path("."), exclude=True)
    source_file: str = Field(default="<job>", exclude=True)
    lines: dict[YamlPath, int] = Field(default_factory=dict, exclude=True)

    @property
    def state_dir(self) -> Path:
        path = Path(self.state)
        return path if path.is_absolute() else self.base_dir / path

    def destination_for(self, source_name: str) -> str:
        """The destination a source writes to."""
        chosen = self.sources[source_name].destination
        if chosen is None:
            if len(self.destinations) == 1:
                return next(iter(self.destinations))
            raise self.error(
                ("sources", source_name),
                "this job has several destinations; say which one this source writes to",
                hint=f"add `destination: <one of {', '.join(self.destinations)}>` to the source",
            )
        if chosen not in self.destinations:
            raise self.error(
                ("sources", source_name, "destination"),
                f"no destination named {chosen!r} in this job",
                hint=f"destinations declared: {', '.join(self.destinations)}",
            )
        return chosen

    def where(self, path: YamlPath) -> str:
        """`file:line at a.b.c` for a YAML path (the nearest line known)."""
        line = None
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                break
        dotted = _dotted(path) or "(top level)"
        return f"{self.source_file}:{line} at {dotted}" if line else f"{self.source_file} at {dotted}"

    def rewhere(self, exc: ConfigError, config_path: YamlPath) -> ConfigError:
        """A connector's ConfigError (whose `field` is relative to its config) re-pointed at
        the file, line and full YAML path of that field."""
        path = (*config_path, *_undotted(exc.field)) if exc.field else config_path
        return ConfigError(exc.message, where=self.where(path), hint=exc.hint, field=_dotted(path))

    def error(self, path: YamlPath, message: str, *, hint: str = "", field: str = "") -> ConfigError:
        return ConfigError(message, where=self.where(path), hint=hint, field=field or _dotted(path))

    def validate_config(self, path: YamlPath, spec: type[BaseModel], config: dict[str, Any]) -> BaseModel:
        """Validate a connector's config against its spec, errors pointing into the job file."""
        try:
            return spec.model_validate(config, context={"base_dir": self.base_dir})
        except ValidationError as exc:
            raise _validation_error(exc, self, prefix=path) from None


# --------------------------------------------------------------------------- loading


def load_job(path: str | Path) -> Job:
    """Read and validate a job file. Raises ConfigError with file, line and YAML path."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"job file {str(path)!r} does not exist", hint="examples/customers/job.yaml in the threadline repository is one to start from")
    text = path.read_text(encoding="utf-8")
    data, lines = _parse_yaml(text, str(path))
    return _build(data, lines, base_dir=path.resolve().parent, source_file=str(path))


def job_from_dict(data: dict[str, Any], base_dir: Path | str = ".") -> Job:
    """A job from a dict (as the YAML would parse), for tests and programmatic use."""
    return _build(data, {}, base_dir=Path(base_dir).resolve(), source_file="<dict>")


def _build(data: Any, lines: dict[YamlPath, int], *, base_dir: Path, source_file: str) -> Job:
    shell = Job.model_construct(source_file=source_file, lines=lines, base_dir=base_dir)
    if not isinstance(data, dict):
        raise ConfigError("a job file must be a mapping with `name`, `sources` and `destinations`", where=source_file)
    data = _substitute_env(data, (), shell)
    try:
        job = Job.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, shell) from None
    job.base_dir, job.source_file, job.lines = base_dir, source_file, lines
    for name in job.sources:
        job.destination_for(name)  # fail early on an ambiguous or unknown destination
    return job


def _parse_yaml(text: str, filename: str) -> tuple[Any, dict[YamlPath, int]]:
    """Parse YAML, also returning the line of every mapping key and sequence item."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(
            f"YAML syntax error: {exc.problem}" + (f" ({exc.context})" if exc.context else ""),
            where=f"{filename}{line}",
            hint="check indentation and quoting on that line and the one before it",
        ) from None
    finally:
        loader.dispose()
    lines: dict[YamlPath, int] = {(): 1}
    _record_lines(node, (), lines)
    return data, lines


def _record_lines(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, key_node.value)
            lines[sub] = key_node.start_mark.line + 1
            _record_lines(value_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            lines[sub] = item.start_mark.line + 1
            _record_lines(item, sub, lines)


def _substitute_env(value: Any, path: YamlPath, job: Job) -> Any:
    if isinstance(value, dict):
        return {k: _substitute_env(v, (*path, k), job) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, (*path, i), job) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is None:
            if default is not None:
                return default
            raise job.error(
                path,
                f"environment variable {name} is not set",
                hint=f"export {name}=... before running, or put it in your secret manager's environment",
            )
        register_secret(found)
        return found

    return _ENV_REF.sub(lookup, value)


def _dotted(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _undotted(field: str) -> YamlPath:
    """`streams[0].path` → ("streams", 0, "path")."""
    parts: list[str | int] = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return tuple(parts)


def _validation_error(exc: ValidationError, job: Job, prefix: YamlPath = ()) -> ConfigError:
    """Turn pydantic's errors into one ConfigError naming file, line, path and expectation."""
    problems = []
    first_path: YamlPath = prefix
    for i, err in enumerate(exc.errors(include_url=False, include_input=False)):
        loc = (*prefix, *[p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)])
        if i == 0:
            first_path = loc
        problems.append(f"{job.where(loc)}: {_explain(err)}")
    message = problems[0] if len(problems) == 1 else "\n".join(["invalid job file:", *("  " + p for p in problems)])
    return ConfigError(message, field=_dotted(first_path), hint="fix the field(s) named above; `threadline check` re-validates")


_UNION_TAGS = {"function-after", "function-before", "function-plain", "function-wrap"}


def _explain(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(err["loc"][-1]) if err["loc"] else ""
        if name.endswith(")"):  # `{type: decimal(12,2)}` splits at the comma in a YAML flow mapping
            return f"unknown field {name!r}: quote values that contain commas, e.g. \"decimal(12,2)\""
        return f"unknown field {name!r} (check its spelling against the connector's README)"
    if kind in ("enum", "literal_error"):
        return f"{err['msg'].lower()}"
    return f"expected {err['msg'][0].lower()}{err['msg'][1:]}"
