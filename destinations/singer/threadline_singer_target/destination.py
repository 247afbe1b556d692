"""The `singer` destination: any Singer target as a threadline destination.

    destinations:
      files:
        connector: singer
        config:
          executable: /opt/targets/bin/target-csv
          target_config: {output_path: out, overwrite_behavior: append_records}

Each stream gets a SCHEMA (from its Arrow schema; the primary key as `key_properties` for
upserts), then its batches as RECORD lines. A commit sends a STATE message and waits until
the target prints that same state back: that is the only promise of durability Singer has.

Most targets (every singer-sdk target, for one) confirm state only when they flush, and they
flush for sure only at the end of their input. So by default (`commit_mode: restart`) a
commit ends the target's input, waits for it to confirm and exit, and the next batch starts
a fresh target process. Set `commit_mode: echo` for a target known to confirm each STATE as
it arrives; the process then lives for the whole stream. With `restart`, a target that
truncates its output when it starts (meltanolabs target-csv rewrites its file) keeps only the
rows of the last commit: give such a target a per-run file name, or use a target that appends.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from threadline.contracts import (
    ConfigError,
    Destination,
    FatalError,
    Spec,
    StreamTarget,
    StreamWriter,
    WriteDisposition,
    WriteReport,
)
from threadline_singer.process import SingerProcess, write_private_json
from threadline_singer.schema import arrow_to_json_schema
from threadline_singer_target.serialize import RecordSerializer, message

try:  # relative paths in job files are taken from the job file's folder
    from threadline.contracts import JobPath as _PathType
except ImportError:  # pragma: no cover - older core
    _PathType = Path  # type: ignore[misc,assignment]

log = logging.getLogger("threadline.singer")


class SingerTargetConfig(Spec):
    """Config of the `singer` destination."""

    executable: str | list[str] = Field(description="the target command: a name on PATH, a path, or a list")
    target_config: dict[str, Any] = Field(default_factory=dict, description="the target's own config")
    commit_mode: Literal["restart", "echo"] = Field(
        "restart", description="restart: end the target's input at each commit; echo: wait for its echo"
    )
    commit_timeout: float = Field(600.0, gt=0, description="seconds a commit may take before it fails")
    require_state_echo: bool = Field(True, description="fail a commit the target did not confirm")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables for the target")
    cwd: _PathType = Field(
        Path("."),
        validate_default=True,
        description="the folder the target runs in (default: the job file's), so relative output paths work",
    )

    def command(self) -> list[str]:
        """The target command as a list of arguments."""
        return list(self.executable) if isinstance(self.executable, list) else shlex.split(self.executable)

    def label(self) -> str:
        """How errors name the target."""
        return f"singer target {Path(self.command()[0]).name}"


class SingerDestination(Destination[SingerTargetConfig]):
    """Writes streams through a Singer target subprocess."""

    name = "singer"
    spec = SingerTargetConfig

    def check(self, config: SingerTargetConfig) -> None:
        """The target executable can be found."""
        program = config.command()[0]
        if shutil.which(program) is None and not Path(program).exists():
            raise ConfigError(
                f"target executable {program!r} was not found",
                field="executable",
                hint="install the target (pip install target-...) in a venv and give the full path to its executable",
            )

    def open_stream(self, config: SingerTargetConfig, target: StreamTarget) -> StreamWriter:
        """A writer sending one stream to the target (started on the first batch)."""
        return SingerStreamWriter(config, target)


class SingerStreamWriter(StreamWriter):
    """One stream sent to a Singer target; see the module docstring for when commits return."""

    def __init__(self, config: SingerTargetConfig, target: StreamTarget) -> None:
        self.config = config
        self.target = target
        self.where = f"{config.label()}, stream {target.stream.name!r} → {target.table!r}"
        replace = target.disposition == WriteDisposition.REPLACE
        # REPLACE as Singer does it: versioned records, then ACTIVATE_VERSION drops older ones.
        self.version = int(time.time() * 1000) if replace else None
        self.key_properties = list(target.stream.primary_key) if target.disposition == WriteDisposition.UPSERT else []
        self._schema: pa.Schema | None = None
        self._schema_line: bytes | None = None
        self._serializer: RecordSerializer | None = None
        self._proc: SingerProcess | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._echoed: list[Any] = []
        self._echo = threading.Condition()
        self._reader: threading.Thread | None = None
        self._commits = 0
        self._pending = 0
        self._activated = False
        self.report = WriteReport()

    # ------------------------------------------------------------------ process

    def _use_schema(self, schema: pa.Schema) -> None:
        """Describe records of `schema` to the target (again, when a batch brings a new one)."""
        self._schema = schema
        self._schema_line = message(
            "SCHEMA", stream=self.target.table, schema=arrow_to_json_schema(schema), key_properties=self.key_properties
        )
        if self._serializer is not None:
            self._serializer.close()
        self._serializer = RecordSerializer(self.target.table, schema, version=self.version)

    def _start(self, schema: pa.Schema) -> None:
        if self._schema_line is None:
            self._use_schema(schema)
        self._tmp = tempfile.TemporaryDirectory(prefix="threadline-singer-target-")
        cfg = write_private_json(Path(self._tmp.name) / "config.json", self.config.target_config)
        self._proc = SingerProcess(
            [*self.config.command(), "--config", cfg],
            stdin=True,
            env=self.config.env,
            cwd=str(self.config.cwd),
            idle_timeout=self.config.commit_timeout,
            label=self.config.label(),
        )
        self._echoed = []
        self._reader = threading.Thread(target=self._read_echoes, args=(self._proc,), daemon=True)
        self._reader.start()
        self._send(self._schema_line)
        if self.version is not None and not self._activated:
            # a first ACTIVATE_VERSION lets targets create the table as versioned from the start
            self._send(message("ACTIVATE_VERSION", stream=self.target.table, version=self.version))
            self._activated = True

    def _read_echoes(self, proc: SingerProcess) -> None:
        assert proc.proc.stdout is not None
        try:
            for raw in iter(proc.proc.stdout.readline, b""):
                self._record_echo(raw)
        except (OSError, ValueError):  # the process was stopped under us
            return

    def _record_echo(self, raw: bytes) -> None:
        try:
            value = json.loads(raw)
        except ValueError:
            log.debug("%s: ignoring a non-JSON output line", self.where)
            return
        if isinstance(value, dict) and value.get("type") == "STATE" and "value" in value:
            value = value["value"]
        with self._echo:
            self._echoed.append(value)
            self._echo.notify_all()

    def _send(self, data: bytes) -> None:
        assert self._proc is not None and self._proc.proc.stdin is not None
        try:
            self._proc.proc.stdin.write(data)
        except (BrokenPipeError, ValueError):
            raise self._died("stopped reading its input") from None

    def _died(self, what: str) -> FatalError:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - it is being stopped anyway
            code = None
        return FatalError(
            f"the target {what} (exit code {code}) with {self._pending} rows not yet committed; "
            f"its last words:\n{self._proc.stderr_tail()}",
            where=self.where,
            hint="rows up to the last commit are kept and the source's state was saved only up to there; "
            "fix the cause above (a rejected record, the target's config) and sync again",
        )

    # ------------------------------------------------------------------ StreamWriter

    def write(self, batch: pa.RecordBatch) -> None:
        """Send the batch as RECORD lines (starting the target if it is not running)."""
        if batch.num_rows == 0:
            return
        if self._proc is None:
            self._start(batch.schema)
        elif not batch.schema.equals(self._schema):
            # the batches' columns changed mid-stream: Singer's answer is a new SCHEMA message
            self._use_schema(batch.schema)
            self._send(self._schema_line)
        assert self._serializer is not None
        self._send(self._serializer.lines(batch))
        self._pending += batch.num_rows

    def commit(self, *, last: bool = False) -> None:
        """Send STATE; return once the target has printed it back (see the module docstring).

        The last commit of a stream always ends the target's input, so that it finishes cleanly.
        """
        if self._proc is None:
            return
        self._commits += 1
        marker = {"threadline": {"run_id": self.target.run_id, "stream": self.target.table, "commit": self._commits}}
        self._send(message("STATE", value=marker))
        if self.config.commit_mode == "echo" and not last:
            self._wait_for_echo(marker)
        else:
            self._end_input(marker)
        self.report.rows_written += self._pending
        self._pending = 0

    def _wait_for_echo(self, marker: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.proc.stdin is not None
        try:
            self._proc.proc.stdin.flush()
        except BrokenPipeError:
            raise self._died("stopped reading its input") from None
        deadline = time.monotonic() + self.config.commit_timeout
        with self._echo:
            while marker not in self._echoed:
                if self._proc.proc.poll() is not None:
                    raise self._died("exited before confirming the commit")
                left = deadline - time.monotonic()
                if left <= 0:
                    self._proc.stop()
                    raise FatalError(
                        f"the target did not confirm the commit within {self.config.commit_timeout:g} s "
                        "and was stopped",
                        where=self.where,
                        hint="this target confirms state only when it flushes: use commit_mode: restart",
                    )
                self._echo.wait(timeout=min(left, 0.5))

    def _end_input(self, marker: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.proc.stdin is not None
        try:
            self._proc.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = self._proc.wait(timeout=self.config.commit_timeout)
        except Exception as exc:
            raise FatalError(
                f"the target did not finish within {self.config.commit_timeout:g} s of its input ending "
                "and was stopped",
                where=self.where,
                hint="raise commit_timeout if the target is only slow",
            ) from exc
        if code != 0:
            raise self._died("failed")
        assert self._reader is not None
        self._reader.join(timeout=10)
        if self.config.require_state_echo and marker not in self._echoed:
            raise FatalError(
                f"the target exited without printing back the state it was sent; printed: {self._echoed[-1:]}",
                where=self.where,
                hint="a Singer target confirms what it stored by printing the last STATE it received; "
                "set require_state_echo: false only for a target known not to",
            )
        self._close()

    def finish(self) -> WriteReport:
        """Commit what is left (and activate the new version for `replace`)."""
        if self.version is not None and self._activated:
            if self._proc is None:
                self._start(pa.schema([]))  # the stream's SCHEMA is known by now and is resent
            self._send(message("ACTIVATE_VERSION", stream=self.target.table, version=self.version))
        if self._proc is not None:
            self.commit(last=True)
        self._close()
        self._release()
        return self.report

    def abort(self) -> None:
        """Stop the target without ending its input cleanly, so it does not flush."""
        if self._proc is not None:
            self._proc.stop(grace=2)
        self._close()
        self._release()

    def _release(self) -> None:
        if self._serializer is not None:
            self._serializer.close()
            self._serializer = None

    def _close(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
