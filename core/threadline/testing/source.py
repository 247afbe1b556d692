"""The source contract suite: subclass `SourceContract`, name the source and its sandbox, and
pytest runs every check of the contract against them over real sockets, through the real
engine, into a real DuckDB file::

    from threadline.testing import SourceContract
    from threadline_my_crm import MyCrmSource
    from threadline_my_crm.sandbox import MyCrmSandbox

    class TestMyCrm(SourceContract):
        source = MyCrmSource
        sandbox = MyCrmSandbox
        bad_config = {"base_url": "http://127.0.0.1:9"}   # check() must fail naming the field
        credential_field = "api_key"                        # named when the key is revoked

        def config(self, sandbox):
            return {"base_url": sandbox.base_url, "api_key": sandbox.API_KEY, "page_size": 10}

        def expected_records(self, sandbox):
            return {"contacts": sandbox.contacts}

        def change(self, sandbox):          # mutate the sandbox; return what changed
            return {"contacts": sandbox.add_contacts(3) + sandbox.update_contacts([1, 2])}

What it checks (one test each): the config spec is a strict, documented model; `check`
passes on good config and fails with a ConfigError naming the field on bad config and on a
revoked credential; discovery is stable; a full read returns exactly the sandbox's records
with the declared schema; an incremental sync after the sandbox changed lands the changes and
nothing else (records sharing the boundary cursor value may be read again: reads are
inclusive); a sync crashed mid-stream and run again loses nothing and, with upserts,
duplicates nothing; transient faults (503, 429, a dropped connection) are retried; a permanent
error (a 404, an HTML page instead of JSON) stops the read with a classified error naming the
stream or connector (and the status).

Sandboxes are `threadline.sandbox.Sandbox` subclasses (faults are injected with their
`inject`). A file-based source has no server: set `sandbox = None` and write files into the
`FolderSandbox` the suite hands to `config` (override `prepare`); fault tests are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from threadline.contracts import (
    Batch,
    Catalog,
    Checkpoint,
    ReadRequest,
    Source,
    Stream,
    SyncMode,
    ThreadlineError,
)
from threadline.sandbox.faults import Fault
from threadline.testing import records as rec
from threadline.testing import spec as specs
from threadline.testing.harness import (
    FolderSandbox,
    duckdb_path,
    instrumented,
    report_problem,
    sync,
    table_name,
)

DEFAULT_TRANSIENT_FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 503, "times": 2, "after": 1},
    {"kind": "rate_limit", "retry_after": 0, "times": 2, "after": 1},
    {"kind": "drop", "times": 1, "after": 1},
]
DEFAULT_PERMANENT_FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 404, "times": 0},
    {"kind": "html", "times": 0},  # a login wall or a proxy's error page instead of JSON
]


class SourceContract:
    """Base class of a source's contract tests. Set the class attributes, implement `config`
    and `expected_records` (and `change` for incremental streams); see the module docstring."""

    # ---- what a connector's test class sets

    source: ClassVar[type[Source]]
    sandbox: ClassVar[type | None] = None  # a Sandbox subclass; None for file-based sources
    sandbox_options: ClassVar[dict[str, Any]] = {}  # keyword arguments for the sandbox
    streams: ClassVar[list[str] | None] = None  # the streams to test (default: every one)
    bad_config: ClassVar[dict[str, Any]] = {}  # field (dotted) → a value `check` must reject
    credential_field: ClassVar[str | None] = None  # the field a revoked credential is reported on
    data_path: ClassVar[str] = ""  # faults are injected into requests whose path starts with this
    transient_faults: ClassVar[list[dict[str, Any]]] = DEFAULT_TRANSIENT_FAULTS
    permanent_faults: ClassVar[list[dict[str, Any]]] = DEFAULT_PERMANENT_FAULTS
    readme: ClassVar[Path | None] = None  # default: README.md of the source's plugin folder

    def config(self, sandbox: Any) -> dict[str, Any]:
        """The source's config (as in a job file) for reading `sandbox`."""
        raise NotImplementedError(f"{type(self).__name__} must define config(self, sandbox)")

    def expected_records(self, sandbox: Any) -> dict[str, list[dict[str, Any]]]:
        """What a full read should return now, by stream name (plain JSON-like dicts). For a
        FolderSandbox the default is every record written, for each stream."""
        raise NotImplementedError(f"{type(self).__name__} must define expected_records(self, sandbox)")

    def change(self, sandbox: Any) -> dict[str, list[dict[str, Any]]] | None:
        """Change the sandbox's data (add and update records; not delete) and return the
        records that changed, by stream. An incremental sync must land exactly these."""
        return None

    def prepare(self, sandbox: Any) -> None:
        """Called once the sandbox runs, before any test uses it (write a FolderSandbox's files)."""

    def revoke(self, sandbox: Any) -> None:
        """Make the sandbox refuse the configured credential (default: `revoke_credentials()`)."""
        revoke = getattr(sandbox, "revoke_credentials", None)
        if revoke is None:
            pytest.skip("the sandbox cannot revoke credentials (it has no revoke_credentials())")
        revoke()

    # ---- fixtures

    @pytest.fixture
    def contract_sandbox(self, tmp_path: Path) -> Iterator[Any]:
        if self.sandbox is None:
            box: Any = FolderSandbox(tmp_path / "sandbox")
        else:
            box = self.sandbox(**self.sandbox_options)
            box.start()
        try:
            self.prepare(box)
            yield box
        finally:
            box.stop()

    @pytest.fixture
    def contract_workdir(self, tmp_path: Path) -> Path:
        path = tmp_path / "work"
        path.mkdir()
        return path

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "transient_fault" in metafunc.fixturenames:
            faults = self.transient_faults
            metafunc.parametrize("transient_fault", faults, ids=[_fault_id(f) for f in faults])
        if "permanent_fault" in metafunc.fixturenames:
            faults = self.permanent_faults
            metafunc.parametrize("permanent_fault", faults, ids=[_fault_id(f) for f in faults])
        if "bad_field" in metafunc.fixturenames:
            fields = list(self.bad_config) or [None]
            metafunc.parametrize("bad_field", fields, ids=[str(f) for f in fields])

    # ---- helpers

    def _source(self) -> Source:
        return self.source()

    def _validated(self, config: dict[str, Any], workdir: Path) -> BaseModel:
        return self.source.spec.model_validate(config, context={"base_dir": workdir})

    def _selected(self, catalog: Catalog) -> list[Stream]:
        if self.streams is None:
            return list(catalog)
        return [catalog.get(name) for name in self.streams]

    def _expected(self, sandbox: Any, streams: list[Stream]) -> dict[str, list[dict[str, Any]]]:
        if isinstance(sandbox, FolderSandbox) and type(self).expected_records is SourceContract.expected_records:
            raw = {s.name: sandbox.records for s in streams}  # one stream of every file written
        else:
            raw = self.expected_records(sandbox)
        missing = [s.name for s in streams if s.name not in raw]
        assert not missing, f"expected_records() returned nothing for stream(s) {missing}"
        return {s.name: rec.typed(raw[s.name], s, f"expected records of {s.name!r}") for s in streams}

    def _discover(self, sandbox: Any, workdir: Path) -> tuple[BaseModel, list[Stream]]:
        config = self._validated(self.config(sandbox), workdir)
        return config, self._selected(self._source().discover(config))

    def _read(self, config: BaseModel, stream: Stream, mode: SyncMode = SyncMode.FULL_REFRESH) -> list[Any]:
        messages = list(self._source().read(config, ReadRequest(stream=stream, sync_mode=mode)))
        for m in messages:
            assert getattr(m, "stream", stream.name) == stream.name, (
                f"reading {stream.name!r} yielded a {type(m).__name__} for stream {m.stream!r}")
        return messages

    def _require_faults(self, sandbox: Any) -> None:
        if not hasattr(sandbox, "inject"):
            pytest.skip("no sandbox server to inject faults into (a file-based source)")

    # ---- the contract

    def test_config_spec_is_strict_and_documented(self, contract_sandbox: Any, contract_workdir: Path) -> None:
        spec = self.source.spec
        assert isinstance(spec, type) and issubclass(spec, BaseModel), f"{self.source.name}: spec must be a pydantic model"
        assert spec.model_config.get("extra") == "forbid", (
            f"{spec.__name__} must forbid unknown fields (subclass threadline.Spec), so a typo in a job file is an error")
        spec.model_json_schema()  # a spec that cannot be described cannot be documented either
        self._validated(self.config(contract_sandbox), contract_workdir)
        readme = self.readme or specs.plugin_readme(self.source)
        missing = specs.undocumented(spec, readme)
        assert not missing, (
            f"{self.source.name}: config field(s) {missing} have neither a Field(description=...) nor a row "
            f"in the config table of {readme or 'the README (none found)'} (rows look like | `field` | default | meaning |)"
        )

    def test_check_passes_on_good_config(self, contract_sandbox: Any, contract_workdir: Path) -> None:
        self._source().check(self._validated(self.config(contract_sandbox), contract_workdir))

    def test_check_fails_on_bad_config_naming_the_field(
        self, contract_sandbox: Any, contract_workdir: Path, bad_field: str | None
    ) -> None:
        if bad_field is None:
            pytest.fail(f"{type(self).__name__}.bad_config is empty: give at least one field and a value "
                        "check() must reject, e.g. bad_config = {'base_url': 'http://127.0.0.1:9'}")
        config = specs.set_path(self.config(contract_sandbox), bad_field, self.bad_config[bad_field])
        error = specs.config_error_from(lambda: self._source().check(self._validated(config, contract_workdir)),
                                   f"check() with a bad {bad_field!r}")
        assert specs.names_field(error, bad_field), (
            f"check() with a bad {bad_field!r} raised a ConfigError that does not name the field "
            f"(field={error.field!r}): {error.render()}")

    def test_check_fails_on_revoked_credentials_naming_the_field(self, contract_sandbox: Any, contract_workdir: Path) -> None:
        config = self._validated(self.config(contract_sandbox), contract_workdir)
        self.revoke(contract_sandbox)
        assert self.credential_field, (
            f"set {type(self).__name__}.credential_field to the config field a refused credential is reported on")
        error = specs.config_error_from(lambda: self._source().check(config), "check() with a revoked credential")
        assert specs.names_field(error, self.credential_field), (
            f"check() with a revoked credential raised a ConfigError that does not name {self.credential_field!r} "
            f"(field={error.field!r}): {error.render()}")

    def test_discovery_is_stable(self, contract_sandbox: Any, contract_workdir: Path) -> None:
        config = self._validated(self.config(contract_sandbox), contract_workdir)
        first, second = self._source().discover(config), self._source().discover(config)
        assert [s.describe() for s in first] == [s.describe() for s in second], "two discoveries differ"
        for a, b in zip(first, second):
            assert a.schema.equals(b.schema, check_metadata=True), f"stream {a.name!r}: schema differs between discoveries"
        assert len(first.streams) > 0, "discovery returned no streams"

    def test_full_read_returns_exactly_the_sandbox_records(self, contract_sandbox: Any, contract_workdir: Path) -> None:
        config, streams = self._discover(contract_sandbox, contract_workdir)
        expected = self._expected(contract_sandbox, streams)
        for stream in streams:
            messages = self._read(config, stream)
            batches = [m.records for m in messages if isinstance(m, Batch)]
            rows = rec.from_batches(batches, stream)
            rec.assert_same_records(rows, expected[stream.name], stream, "a full read")

    def test_incremental_sync_lands_the_changes_and_nothing_else(
        self, contract_sandbox: Any, contract_workdir: Path
    ) -> None:
        config, streams = self._discover(contract_sandbox, contract_workdir)
        incremental = [s for s in streams if SyncMode.INCREMENTAL in s.sync_modes]
        if not incremental:
            pytest.skip("no stream supports incremental sync")
        raw = self.config(contract_sandbox)
        first = sync(self.source, raw, contract_workdir, incremental)
        assert first.ok, report_problem(first)
        db = duckdb_path(contract_workdir)
        before = {s.name: rec.landed(db, table_name(s), s) for s in incremental}

        changes = self.change(contract_sandbox)
        assert changes is not None, (
            f"{type(self).__name__} must define change(self, sandbox): add and update records in the sandbox "
            "and return them by stream, so the suite can check what an incremental sync picks up")
        messages: list[Any] = []
        second = sync(instrumented(self.source, record_into=messages), raw, contract_workdir, incremental)
        assert second.ok, report_problem(second)
        expected_now = self._expected(contract_sandbox, incremental)
        for stream in incremental:
            changed = rec.typed(changes.get(stream.name, []), stream, f"changes of {stream.name!r}")
            read_again = rec.from_batches(rec.batches_of(messages, stream.name), stream)
            got = {rec.key_of(r, stream) for r in read_again}
            want = {rec.key_of(r, stream) for r in changed}
            boundary = _at_boundary(before[stream.name], stream)
            missed = want - got
            assert not missed, (
                f"the incremental sync of {stream.name!r} missed {len(missed)} changed record(s), keys "
                f"{rec.few(sorted(missed))}: is the cursor start honoured, inclusively (>=)?")
            unchanged = got - want - boundary
            assert not unchanged, (
                f"the incremental sync of {stream.name!r} read {len(unchanged)} record(s) that did not change "
                f"(keys {rec.few(sorted(unchanged))}): does the source filter by ReadRequest.cursor_start / its state?")
            rows = rec.landed(db, table_name(stream), stream)
            rec.assert_same_records(rows, expected_now[stream.name], stream, "the table after two syncs")

    def test_interrupted_sync_resumes_without_loss_or_duplicates(
        self, contract_sandbox: Any, contract_workdir: Path
    ) -> None:
        config, streams = self._discover(contract_sandbox, contract_workdir)
        crash_after: dict[str, int] = {}
        for stream in streams:
            mode = SyncMode.INCREMENTAL if SyncMode.INCREMENTAL in stream.sync_modes else SyncMode.FULL_REFRESH
            crash_after[stream.name] = _batch_after_first_checkpoint(self._read(config, stream, mode))
        raw = self.config(contract_sandbox)
        crashed = sync(instrumented(self.source, crash_after=crash_after), raw, contract_workdir, streams)
        assert not crashed.ok and "on purpose" in (crashed.error or ""), (
            "the suite's simulated crash did not stop the first sync:\n" + report_problem(crashed))
        resumed = sync(self.source, raw, contract_workdir, streams)
        assert resumed.ok, report_problem(resumed)
        expected = self._expected(contract_sandbox, streams)
        db = duckdb_path(contract_workdir)
        for stream in streams:
            rows = rec.landed(db, table_name(stream), stream)
            if stream.primary_key:
                rec.assert_same_records(rows, expected[stream.name], stream, "the table after a crash and a resumed sync")
            else:  # appended rows may repeat after a crash (DESIGN: prefer upsert); none may be lost
                got = {rec.key_of(r, stream) for r in rows}
                lost = [r for r in expected[stream.name] if rec.key_of(r, stream) not in got]
                assert not lost, f"{len(lost)} record(s) of {stream.name!r} lost after a crash and a resumed sync"

    def test_transient_fault_is_retried(
        self, contract_sandbox: Any, contract_workdir: Path, transient_fault: dict[str, Any]
    ) -> None:
        self._require_faults(contract_sandbox)
        config, streams = self._discover(contract_sandbox, contract_workdir)
        expected = self._expected(contract_sandbox, streams)
        stream = streams[0]
        fault = contract_sandbox.inject(Fault(**{"path": self.data_path, **transient_fault}))
        try:
            messages = self._read(config, stream)
        except ThreadlineError as exc:
            raise AssertionError(f"a transient fault ({_fault_id(transient_fault)}) was not retried: {exc.render()}") from None
        assert fault.fired == fault.times, (
            f"the injected fault fired {fault.fired} of {fault.times} time(s): the read made too few requests "
            f"to {self.data_path or 'the sandbox'} (make pages smaller in config(), or set data_path)")
        rows = rec.from_batches([m.records for m in messages if isinstance(m, Batch)], stream)
        rec.assert_same_records(rows, expected[stream.name], stream, f"a read retried after {_fault_id(transient_fault)}")

    def test_permanent_error_stops_with_a_clear_message(
        self, contract_sandbox: Any, contract_workdir: Path, permanent_fault: dict[str, Any]
    ) -> None:
        self._require_faults(contract_sandbox)
        config, streams = self._discover(contract_sandbox, contract_workdir)
        stream = streams[0]
        contract_sandbox.clear_requests()
        contract_sandbox.inject(Fault(**{"path": self.data_path, **permanent_fault}))
        with pytest.raises(Exception) as caught:
            self._read(config, stream)
        error = caught.value
        assert isinstance(error, ThreadlineError), (
            f"a permanent error ({_fault_id(permanent_fault)}) surfaced as {type(error).__name__} ({error}), "
            "not as a ConfigError or FatalError: classify it (the HTTP kit's client does)")
        text = error.render()
        if permanent_fault.get("kind") == "status":
            status = str(permanent_fault.get("status", 503))
            assert status in text, f"the error does not say what the server answered ({status}): {text}"
        assert stream.name in text or self.source.name in text, (
            f"the error names neither the stream {stream.name!r} nor the connector {self.source.name!r}: {text}")
        faulted = [r for r in contract_sandbox.requests if r.fault]
        assert len(faulted) <= 3, (
            f"a permanent error ({_fault_id(permanent_fault)}) was retried {len(faulted) - 1} times; it should stop at once")


def _at_boundary(rows: list[dict[str, Any]], stream: Stream) -> set[tuple[Any, ...]]:
    """Keys of the rows holding the largest cursor value: an inclusive read may repeat them."""
    field = stream.cursor_field
    values = [r[field] for r in rows if field and r.get(field) is not None]
    if not values:
        return set()
    top = max(values)
    return {rec.key_of(r, stream) for r in rows if r.get(field) == top}


def _batch_after_first_checkpoint(messages: list[Any]) -> int:
    """Crash after this many batches: the first batch after the first checkpoint (so some data
    is committed and some is not), or after the first batch when there is no such point."""
    batches = 0
    checkpointed = False
    for m in messages:
        if isinstance(m, Checkpoint):
            checkpointed = True
        elif isinstance(m, Batch):
            batches += 1
            if checkpointed:
                return batches
    assert batches, "the read returned no records: seed the sandbox with some"
    return 1


def _fault_id(fault: dict[str, Any]) -> str:
    kind = fault.get("kind", "?")
    return f"{kind}-{fault['status']}" if kind == "status" and "status" in fault else str(kind)
