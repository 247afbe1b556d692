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
`$$` is a literal `$`. A `${` without its `}` or a bare `$VAR` is an error (it would otherwise
become part of a file name or URL), and a value that is empty after substitution counts as
not given, so a required field left empty by `${VAR:-}` is reported as missing. Secret fields
(see `threadline.secrets.looks_secret`) are masked in every message; other values are not.
Names that become files or tables (the job's, its sources' and destinations') follow
`threadline.names`. Every validation error names the file, the line, the YAML path and what
was expected; a file that is not UTF-8 text, holds control characters, nests too deeply or
expands too far through YAML aliases is refused before it is built.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from threadline.contracts import ConfigError, SyncMode, WriteDisposition
from threadline.names import NAME_RULE, is_safe_name
from threadline.secrets import looks_secret, register_secret, register_url_password

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# every `$` construct in a string: `$$`, `${...}` (well formed or not), `$NAME`
_DOLLAR = re.compile(r"\$(?:\$|\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)")
MAX_JOB_BYTES = 10 << 20
MAX_DEPTH = 64  # mappings and lists inside each other; real jobs use fewer than 10
MAX_VALUES = 200_000  # values after YAML aliases are expanded; an alias bomb expands to billions

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


def _safe(value: str) -> str:
    if not is_safe_name(value):
        raise ValueError(f"{value!r} cannot be used as a name: use {NAME_RULE}")
    return value


SafeName = Annotated[str, AfterValidator(_safe)]


class Job(_Strict):
    name: SafeName
    sources: dict[SafeName, SourceJob] = Field(min_length=1)
    destinations: dict[SafeName, DestinationJob] = Field(min_length=1)
    state: str = ".threadline"  # folder for state, run history, quarantine and locks
    max_rejected_share: float = Field(default=0.05, ge=0, le=1)
    concurrency: int = Field(default=2, ge=1, le=32)  # streams of one source read at once

    # where the job came from, for error messages and relative paths (not part of the YAML)
    base_dir: Path = Field(default=Path("."), exclude=True)
    source_file: str = Field(default="<job>", exclude=True)
    lines: dict[YamlPath, int] = Field(default_factory=dict, exclude=True)
    emptied: dict[YamlPath, str] = Field(default_factory=dict, exclude=True)  # path → the `${...}` that gave ""

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


def load_job(path: str | Path, *, require_env: bool = True) -> Job:
    """Read and validate a job file. Raises ConfigError with file, line and YAML path.

    With `require_env=False` an unset `${VAR}` becomes empty instead of an error: for
    commands that only read the job's state or history and need no credentials."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"job file {str(path)!r} does not exist", hint="examples/customers/job.yaml in the threadline repository is one to start from")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a job file", hint="give the job's YAML file, e.g. job.yaml")
    size = path.stat().st_size
    if size > MAX_JOB_BYTES:
        raise ConfigError(f"job file {path} is {size:,} bytes; a job file is at most {MAX_JOB_BYTES:,}",
                          hint="is this the right file? data goes in the files a source reads, not in the job")
    text = _decode(path.read_bytes(), str(path))
    data, lines = _parse_yaml(text, str(path))
    return _build(data, lines, base_dir=path.resolve().parent, source_file=str(path), require_env=require_env)


def job_from_dict(data: dict[str, Any], base_dir: Path | str = ".") -> Job:
    """A job from a dict (as the YAML would parse), for tests and programmatic use."""
    return _build(data, {}, base_dir=Path(base_dir).resolve(), source_file="<dict>")


def _build(data: Any, lines: dict[YamlPath, int], *, base_dir: Path, source_file: str, require_env: bool = True) -> Job:
    shell = Job.model_construct(source_file=source_file, lines=lines, base_dir=base_dir, emptied={})
    if not isinstance(data, dict):
        raise ConfigError("a job file must be a mapping with `name`, `sources` and `destinations`", where=source_file)
    data = _Substitution(shell, require_env).value(data, ())
    try:
        job = Job.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, shell) from None
    job.base_dir, job.source_file, job.lines, job.emptied = base_dir, source_file, lines, shell.emptied
    for name in job.sources:
        job.destination_for(name)  # fail early on an ambiguous or unknown destination
    return job


def _decode(raw: bytes, filename: str) -> str:
    """The file's text, or a ConfigError saying where it stops being UTF-8 and why."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError("the job file is UTF-16 text", where=filename, hint="save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"the job file is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be read)",
                          where=f"{filename}:{line}", hint="save it as UTF-8 (most editors offer it in 'Save as')") from None


class _JobLoader(yaml.SafeLoader):
    """YAML's safe loader, with an impossible date (`2020-13-45`) a YAML error at its line
    rather than Python's ValueError."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} looks like a date but is not one ({exc}); quote it if it is text",
                node.start_mark) from None


_JobLoader.add_constructor("tag:yaml.org,2002:timestamp", _JobLoader.construct_yaml_timestamp)


def _parse_yaml(text: str, filename: str) -> tuple[Any, dict[YamlPath, int]]:
    """Parse YAML, also returning the line of every mapping key and sequence item."""
    _check_shape(text, filename)
    loader = _JobLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_expansion(node, filename)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, filename, text) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value YAML's constructors cannot build
        raise ConfigError(f"the job file holds a value YAML cannot read: {exc}", where=filename,
                          hint="quote values that are meant as text") from None
    finally:
        loader.dispose()
    lines: dict[YamlPath, int] = {(): 1}
    _record_lines(node, (), lines)
    return data, lines


def _yaml_error(exc: yaml.YAMLError, filename: str, text: str) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: NUL, other controls
        line = text[: exc.position].count("\n") + 1
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        return ConfigError(f"the job file holds a control character ({char!r}) YAML does not allow",
                           where=f"{filename}:{line}",
                           hint="remove it; to put one in a value, write it as an escape in double quotes, e.g. \"\\t\"")
    mark = getattr(exc, "problem_mark", None)
    line = f":{mark.line + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return ConfigError(
        f"YAML syntax error: {problem}" + (f" ({context})" if context else ""),
        where=f"{filename}{line}",
        hint="check indentation and quoting on that line and the one before it",
    )


def _check_shape(text: str, filename: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from YAML's event stream, which is read without
    recursion, before anything recursive (composing, validating) sees the document."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_JobLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(f"the job file nests mappings and lists more than {MAX_DEPTH} deep",
                                      where=f"{filename}:{event.start_mark.line + 1}",
                                      hint="a job file needs a few levels; check the brackets and indentation there")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, filename, text) from None


def _check_expansion(root: yaml.Node, filename: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_VALUES values (an alias bomb
    repeats a list inside itself until it holds billions); counted once per distinct node."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack: list[yaml.Node] = [root]
    while stack:  # nodes in an order where children come before parents (iteratively)
        node = stack.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = 0
        order.append(node)
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    for node in reversed(order):
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_VALUES + 1)
    if sizes[id(root)] > MAX_VALUES:
        raise ConfigError(f"the job file expands to more than {MAX_VALUES:,} values through YAML aliases (*name)",
                          where=filename, hint="write the values out, or use fewer aliases inside aliases")


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


class _Substitution:
    """`${VAR}` in every string of the parsed YAML; secret fields registered for masking."""

    def __init__(self, job: Job, require_env: bool) -> None:
        self.job, self.require_env = job, require_env

    def value(self, value: Any, path: YamlPath) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                sub = self.value(item, (*path, key))
                if sub == "" and isinstance(item, str) and item.strip():  # `${VAR:-}` gave nothing
                    self.job.emptied[(*path, key)] = item
                    continue
                out[key] = sub
            return out
        if isinstance(value, list):
            return [self.value(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        field = next((p for p in reversed(path) if isinstance(p, str)), "")
        if "$" not in value:
            if looks_secret(field):
                register_secret(value)
            return value
        used: list[str] = []
        text = _DOLLAR.sub(lambda m: self._replace(m.group(0), path, used), value)
        if looks_secret(field) or any(looks_secret(name) for name in used):
            register_secret(text)
        if used:
            register_url_password(text)
        return text

    def _replace(self, token: str, path: YamlPath, used: list[str]) -> str:
        if token == "$$":
            return "$"
        match = _ENV_REF.fullmatch(token)
        if match is None:
            if token.startswith("${"):
                problem = "has no closing `}`" if not token.endswith("}") else "is not `${NAME}` or `${NAME:-default}`"
                raise self.job.error(path, f"{token!r} {problem}",
                                     hint="write ${NAME} or ${NAME:-default}; for a literal $, write $$")
            raise self.job.error(path, f"{token!r} is not substituted: environment variables are written ${{{token[1:]}}}",
                                 hint=f"write ${{{token[1:]}}}; for a literal $, write $$")
        name, default = match.group(1), match.group(2)
        used.append(name)
        found = os.environ.get(name)
        if found is None:
            if default is not None:
                return default
            if not self.require_env:
                return ""
            raise self.job.error(
                path,
                f"environment variable {name} is not set",
                hint=f"export {name}=... before running, or put it in your secret manager's environment",
            )
        return found


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
        loc = (*prefix, *[p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS or p == "[key]")])
        if i == 0:
            first_path = loc
        emptied = job.emptied.get(tuple(loc)) if err["type"] == "missing" else None
        because = f" ({emptied!r} is empty: set the variable)" if emptied else ""
        problems.append(f"{job.where(loc)}: {_explain(err)}{because}")
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
    if kind == "value_error":  # our own validators' messages say what to do already
        return str(err["msg"]).removeprefix("Value error, ")
    return f"expected {err['msg'][0].lower()}{err['msg'][1:]}"
