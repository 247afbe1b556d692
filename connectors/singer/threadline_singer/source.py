"""The `singer` source: any Singer tap as a threadline source.

    sources:
      shop:
        connector: singer
        config:
          executable: tap-jsonl            # or tap_class: tap_jsonl.tap:TapJsonl (in-process)
          tap_config: {path: data/*.jsonl}

The tap runs once per stream read, with a catalog in which only that stream is selected and,
for incremental reads, the STATE it last confirmed. Its STATE messages become checkpoints.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from threadline.contracts import (
    Catalog,
    ConfigError,
    FatalError,
    Message,
    ReadRequest,
    Source,
    Spec,
    SyncMode,
    ThreadlineError,
)
from threadline_singer.catalog import find_entry, select, to_catalog
from threadline_singer.process import ProcessTimeout, SingerProcess, write_private_json
from threadline_singer.protocol import STATE_KEY, StreamDecoder

try:  # relative paths in job files are taken from the job file's folder
    from threadline.contracts import JobPath as _PathType
except ImportError:  # pragma: no cover - older core
    _PathType = Path  # type: ignore[misc,assignment]


class SingerSourceConfig(Spec):
    """Config of the `singer` source. Give `executable` or `tap_class`, not both."""

    executable: str | list[str] | None = Field(
        None, description="the tap command: a name on PATH, a path, or a list of arguments"
    )
    tap_class: str | None = Field(
        None, description="'module:Class' of a singer-sdk Tap importable here; runs in-process"
    )
    tap_config: dict[str, Any] = Field(default_factory=dict, description="the tap's own config")
    catalog: _PathType | None = Field(None, description="a Singer catalog file to use instead of --discover")
    catalog_flag: Literal["--catalog", "--properties"] = Field(
        "--catalog", description="how the tap takes its catalog (old taps use --properties)"
    )
    nested: Literal["struct", "json"] = Field(
        "struct", description="nested objects and arrays as Arrow structs/lists, or as JSON text"
    )
    batch_rows: int = Field(20_000, ge=1, description="records parsed per Arrow batch")
    idle_timeout: float = Field(300.0, gt=0, description="seconds the tap may stay silent before it is stopped")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables for the tap")
    cwd: _PathType = Field(
        Path("."),
        validate_default=True,
        description="the folder the tap runs in (default: the job file's), so relative paths in tap_config work",
    )

    @model_validator(mode="after")
    def _one_way_to_run(self) -> SingerSourceConfig:
        if bool(self.executable) == bool(self.tap_class):
            raise ValueError("give exactly one of `executable` (a tap command) or `tap_class` (in-process)")
        return self

    def command(self) -> list[str]:
        """The tap command as a list of arguments."""
        if isinstance(self.executable, list):
            return list(self.executable)
        return shlex.split(self.executable or "")

    def label(self) -> str:
        """How errors name the tap."""
        if self.tap_class:
            return f"singer tap {self.tap_class} (in-process)"
        return f"singer tap {Path(self.command()[0]).name}"


class SingerSource(Source[SingerSourceConfig]):
    """Runs a Singer tap (a subprocess, or a singer-sdk Tap class in-process)."""

    name = "singer"
    spec = SingerSourceConfig

    def __init__(self) -> None:
        self._catalogs: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ check / discover

    def check(self, config: SingerSourceConfig) -> None:
        """The tap can be found and its discovery succeeds with this config."""
        if config.tap_class:
            from threadline_singer.inprocess import load_tap_class  # imports singer-sdk: only when needed

            load_tap_class(config.tap_class)
        else:
            program = config.command()[0]
            if shutil.which(program) is None and not Path(program).exists():
                raise ConfigError(
                    f"tap executable {program!r} was not found",
                    field="executable",
                    hint="install the tap (pip install tap-...) in a venv and give the full path to its executable",
                )
        try:
            self.singer_catalog(config)
        except FatalError as exc:
            raise ConfigError(exc.message, field="tap_config", hint=exc.hint, where=exc.where) from exc

    def discover(self, config: SingerSourceConfig) -> Catalog:
        """The tap's streams, from `--discover` (or the catalog file given in the config)."""
        return to_catalog(self.singer_catalog(config), nested=config.nested)

    def singer_catalog(self, config: SingerSourceConfig) -> dict[str, Any]:
        """The tap's Singer catalog as a dict, discovered once per config."""
        key = config.model_dump_json()
        if key not in self._catalogs:
            self._catalogs[key] = self._load_catalog(config)
        return self._catalogs[key]

    def _load_catalog(self, config: SingerSourceConfig) -> dict[str, Any]:
        from threadline_singer.inprocess import discover_in_process, load_tap_class  # imports singer-sdk
        if config.catalog is not None:
            try:
                return json.loads(Path(config.catalog).read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the Singer catalog {config.catalog}: {exc}", field="catalog") from exc
        if config.tap_class:
            try:
                return discover_in_process(load_tap_class(config.tap_class), config.tap_config)
            except ThreadlineError:
                raise
            except Exception as exc:
                raise FatalError(
                    f"discovery failed: {type(exc).__name__}: {exc}",
                    where=config.label(),
                    hint="check the tap's settings in `tap_config`",
                ) from exc
        return self._discover_subprocess(config)

    def _discover_subprocess(self, config: SingerSourceConfig) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="threadline-singer-") as tmp:
            cfg = write_private_json(Path(tmp) / "config.json", config.tap_config)
            argv = [*config.command(), "--config", cfg, "--discover"]
            with SingerProcess(
                argv, env=config.env, cwd=str(config.cwd), idle_timeout=config.idle_timeout, label=config.label()
            ) as proc:
                try:
                    output = b"\n".join(line for lines in proc.lines() for line in lines)
                    code = proc.wait()
                except ProcessTimeout as exc:
                    raise FatalError(f"discovery: {exc}", where=config.label()) from None
                if code != 0:
                    raise FatalError(
                        f"discovery (--discover) exited with code {code}:\n{proc.stderr_tail()}",
                        where=config.label(),
                        hint="check the tap's settings in `tap_config`",
                    )
        try:
            catalog = json.loads(output)
        except ValueError as exc:
            raise FatalError(
                f"discovery printed something that is not a JSON catalog: {exc}",
                where=config.label(),
                hint="the tap must print its catalog, and only its catalog, to stdout",
            ) from None
        if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
            raise FatalError("discovery printed JSON without a \"streams\" list", where=config.label())
        return catalog

    # ------------------------------------------------------------------ read

    def read(self, config: SingerSourceConfig, request: ReadRequest) -> Iterator[Message]:
        """Run the tap for `request.stream` and yield its records, checkpoints and rejects."""
        name = request.stream.name
        singer_catalog = self.singer_catalog(config)
        if find_entry(singer_catalog, name) is None:
            raise ConfigError(
                f"the tap has no stream {name!r}",
                where=config.label(),
                hint="run `threadline discover` to see the streams this tap offers",
            )
        incremental = request.sync_mode == SyncMode.INCREMENTAL
        catalog = select(singer_catalog, name, incremental=incremental)
        state = (request.state or {}).get(STATE_KEY) if incremental else None
        where = f"{config.label()}, stream {name!r}"
        decoder = StreamDecoder(
            name, request.stream.schema, where=where, nested=config.nested, batch_rows=config.batch_rows
        )
        if config.tap_class:
            yield from self._read_in_process(config, catalog, state, decoder)
        else:
            yield from self._read_subprocess(config, catalog, state, decoder)

    def _read_subprocess(
        self, config: SingerSourceConfig, catalog: dict[str, Any], state: Any, decoder: StreamDecoder
    ) -> Iterator[Message]:
        with tempfile.TemporaryDirectory(prefix="threadline-singer-") as tmp:
            argv = [
                *config.command(),
                "--config", write_private_json(Path(tmp) / "config.json", config.tap_config),
                config.catalog_flag, write_private_json(Path(tmp) / "catalog.json", catalog),
            ]
            if state:
                argv += ["--state", write_private_json(Path(tmp) / "state.json", state)]
            with SingerProcess(
                argv, env=config.env, cwd=str(config.cwd), idle_timeout=config.idle_timeout, label=config.label()
            ) as proc:
                try:
                    for lines in proc.lines():
                        yield from decoder.feed_lines(lines)
                    code = proc.wait()
                except ProcessTimeout as exc:
                    raise FatalError(
                        f"{exc} (after {decoder.records_read} records, line {decoder.line_number})",
                        where=decoder.where,
                        hint="nothing after the last checkpoint was saved. If the tap is only slow, "
                        "raise `idle_timeout` (seconds) in the source's config",
                    ) from None
                if code != 0:
                    raise FatalError(
                        f"the tap exited with code {code} after {decoder.records_read} records "
                        f"(line {decoder.line_number}); its last words:\n{proc.stderr_tail()}",
                        where=decoder.where,
                        hint="records up to the last checkpoint are kept; fix the cause above and sync "
                        "again to resume from there",
                    )
        yield from decoder.finish()

    def _read_in_process(
        self, config: SingerSourceConfig, catalog: dict[str, Any], state: Any, decoder: StreamDecoder
    ) -> Iterator[Message]:
        from threadline_singer.inprocess import Records, load_tap_class, run_in_process  # imports singer-sdk
        tap_class = load_tap_class(config.tap_class or "")
        try:
            for item in run_in_process(tap_class, config.tap_config, catalog, state, chunk_rows=config.batch_rows):
                if isinstance(item, Records):
                    yield from decoder.feed_records(item.stream, item.records)
                else:
                    yield from decoder.feed_message(item)
        except ThreadlineError:
            raise
        except Exception as exc:
            raise FatalError(
                f"the tap raised {type(exc).__name__}: {exc} (after {decoder.records_read} records)",
                where=decoder.where,
                hint="records up to the last checkpoint are kept; fix the cause and sync again",
            ) from exc
        yield from decoder.finish()
