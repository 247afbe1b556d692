"""The destination contract suite: subclass `DestinationContract`, name the destination, say how
to configure it in a temporary folder and how to read a table back, and pytest checks the
write contract against the real thing::

    from threadline.testing import DestinationContract
    from threadline_warehouse import WarehouseDestination

    class TestWarehouse(DestinationContract):
        destination = WarehouseDestination
        bad_config = {"port": 1}                     # check() must fail naming the field

        def config(self, tmp_path):
            return {"path": str(tmp_path / "w.db")}

        def read_rows(self, config, table):          # what a reader sees (committed rows only)
            return query(config, f"select * from {table}")

What it checks (one test each): the config spec is a strict, documented model; `check`
passes on good config and fails with a ConfigError naming the field on bad config; append
adds rows (and a second run adds again); replace leaves exactly the last run's rows; upsert
replaces rows that share a primary key, across runs and within a batch (the last row wins);
rows committed before a failure survive `abort`, rows after the last commit do not; a column
that appears in a later batch is added (earlier rows read as null); `finish` reports the rows
written; a destination that declares `applies_deletes` removes, when it upserts a change
stream, the records whose last change is a delete; and through the real engine, a sync that
crashes mid-stream keeps exactly the checkpointed rows and, run again, ends with every row once. Columns whose names start with
`_threadline_` (lineage) are ignored when comparing. Dispositions the destination does not
declare in `dispositions` are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from pydantic import BaseModel, SecretStr

from threadline.contracts import (
    OPERATION_COLUMN,
    Batch,
    Catalog,
    Checkpoint,
    Destination,
    Message,
    ReadRequest,
    Source,
    Spec,
    Stream,
    StreamTarget,
    SyncMode,
    WriteDisposition,
    WriteReport,
)
from threadline.testing import spec as specs
from threadline.testing.harness import instrumented, report_problem, sync, table_name
from threadline.testing.records import LINEAGE_PREFIX

TABLE = "contract__people"


def _secrets(config: BaseModel) -> list[str]:
    """The config's secret values: SecretStr fields and passwords inside URLs (a DSN's)."""
    found: list[str] = []
    for value in config.model_dump().values():
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            password = urlsplit(value).password
            found += [password] if password else []
    return found
PEOPLE = Stream(
    "people",
    pa.schema([("id", pa.int64()), ("email", pa.string()), ("score", pa.float64())]),
    primary_key=("id",),
    sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),  # incremental: the engine hands back state
)


def people(ids: list[int], tag: str = "a", extra: dict[str, list[Any]] | None = None) -> pa.RecordBatch:
    """A batch of people with ids `ids`, emails tagged with `tag` (to tell versions apart)."""
    columns: dict[str, Any] = {
        "id": pa.array(ids, pa.int64()),
        "email": pa.array([f"{tag}.{i}@example.com" for i in ids]),
        "score": pa.array([i / 10 for i in ids], pa.float64()),
    }
    for name, values in (extra or {}).items():
        columns[name] = pa.array(values)
    return pa.RecordBatch.from_pydict(columns)


class NumberedBatchesConfig(Spec):
    batches: int = 5
    rows_per_batch: int = 10


class NumberedBatchesSource(Source[NumberedBatchesConfig]):
    """People in numbered batches (ids 0, 1, ... in order), a checkpoint after each; a read
    resumes after the last checkpointed batch. Feeds the destination suite's engine runs."""

    name = "contract_numbered_batches"
    spec = NumberedBatchesConfig

    def check(self, config: NumberedBatchesConfig) -> None:
        """Nothing to reach."""

    def discover(self, config: NumberedBatchesConfig) -> Catalog:
        return Catalog((PEOPLE,))

    def read(self, config: NumberedBatchesConfig, request: ReadRequest) -> Iterator[Message]:
        size = config.rows_per_batch
        for i in range(request.state.get("next_batch", 0), config.batches):
            yield Batch(PEOPLE.name, people(list(range(i * size, (i + 1) * size)), "run"))
            yield Checkpoint(PEOPLE.name, {"next_batch": i + 1})


class DestinationContract:
    """Base class of a destination's contract tests (see the module docstring)."""

    destination: ClassVar[type[Destination]]
    bad_config: ClassVar[dict[str, Any]] = {}  # field (dotted) → a value `check` must reject
    readme: ClassVar[Path | None] = None  # default: README.md of the destination's plugin folder

    def config(self, tmp_path: Path) -> dict[str, Any]:
        """The destination's config (as in a job file), writing under `tmp_path`."""
        raise NotImplementedError(f"{type(self).__name__} must define config(self, tmp_path)")

    def read_rows(self, config: BaseModel, table: str) -> list[dict[str, Any]]:
        """Every row of `table` as a reader outside the writer sees it (committed rows only)."""
        raise NotImplementedError(f"{type(self).__name__} must define read_rows(self, config, table)")

    # ---- fixtures and helpers

    @pytest.fixture
    def contract_config(self, tmp_path: Path) -> BaseModel:
        return self.destination.spec.model_validate(self.config(tmp_path), context={"base_dir": tmp_path})

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "bad_field" in metafunc.fixturenames:
            fields = list(self.bad_config) or [None]
            metafunc.parametrize("bad_field", fields, ids=[str(f) for f in fields])

    def _supports(self, disposition: WriteDisposition) -> None:
        if disposition not in self.destination.dispositions:
            pytest.skip(f"{self.destination.name} does not declare {disposition.value}")

    def _write(
        self, config: BaseModel, disposition: WriteDisposition, batches: list[pa.RecordBatch], run_id: str = "run-1",
        stream: Stream = PEOPLE,
    ) -> WriteReport:
        """One stream of one run: each batch written and committed, then finished."""
        writer = self.destination().open_stream(config, StreamTarget("contract", stream, disposition, TABLE, run_id))
        for batch in batches:
            writer.write(batch)
            writer.commit()
        return writer.finish()

    def _rows(self, config: BaseModel, table: str = TABLE) -> dict[int, dict[str, Any]]:
        """The table's rows by id; a duplicated id is an assertion error."""
        out: dict[int, dict[str, Any]] = {}
        for row in self.read_rows(config, table):
            row = {k: v for k, v in row.items() if not k.startswith(LINEAGE_PREFIX)}
            assert row["id"] not in out, f"id {row['id']} appears twice in {table}"
            out[row["id"]] = row
        return out

    def _count(self, config: BaseModel) -> int:
        return len(self.read_rows(config, TABLE))

    # ---- the contract

    def test_config_spec_is_strict_and_documented(self, contract_config: BaseModel) -> None:
        spec = self.destination.spec
        assert spec.model_config.get("extra") == "forbid", (
            f"{spec.__name__} must forbid unknown fields (subclass threadline.Spec), so a typo in a job file is an error")
        spec.model_json_schema()
        readme = self.readme or specs.plugin_readme(self.destination)
        missing = specs.undocumented(spec, readme)
        assert not missing, (
            f"{self.destination.name}: config field(s) {missing} have neither a Field(description=...) nor a row in "
            f"the config table of {readme or 'the README (none found)'}")

    def test_check_passes_on_good_config(self, contract_config: BaseModel) -> None:
        self.destination().check(contract_config)

    def test_check_fails_on_bad_config_naming_the_field(self, tmp_path: Path, bad_field: str | None) -> None:
        if bad_field is None:
            pytest.fail(f"{type(self).__name__}.bad_config is empty: give at least one field and a value "
                        "check() must reject")
        raw = specs.set_path(self.config(tmp_path), bad_field, self.bad_config[bad_field])

        def check() -> None:
            config = self.destination.spec.model_validate(raw, context={"base_dir": tmp_path})
            self.destination().check(config)

        error = specs.config_error_from(check, f"check() with a bad {bad_field!r}")
        assert specs.names_field(error, bad_field), (
            f"check() with a bad {bad_field!r} raised a ConfigError that does not name the field "
            f"(field={error.field!r}): {error.render()}")

    def test_table_exists_tells_a_written_table_from_a_missing_one(self, contract_config: BaseModel) -> None:
        # the engine reads a stream again in full when its saved state's table is gone
        target = StreamTarget("contract", PEOPLE, self.destination.dispositions[0], TABLE, "run-1")
        before = self.destination().table_exists(contract_config, target)
        if before is None:
            pytest.skip(f"{self.destination.name} cannot tell whether a table exists (table_exists returns None)")
        assert before is False, "table_exists() is True before anything was written"
        self._write(contract_config, self.destination.dispositions[0], [people([1])])
        assert self.destination().table_exists(contract_config, target) is True
        assert self.destination().table_exists(contract_config, replace(target, table=TABLE + "_other")) is False

    def test_locate_names_the_place_and_no_secret(self, contract_config: BaseModel) -> None:
        target = StreamTarget("contract", PEOPLE, self.destination.dispositions[0], TABLE, "run-1")
        where = self.destination().locate(contract_config, target)
        assert TABLE in where, f"locate() must name the table: {where!r}"
        for secret in _secrets(contract_config):
            assert secret not in where, "locate() shows a secret, and saved state is keyed by what it says"

    def test_append_adds_rows_and_a_second_run_adds_again(self, contract_config: BaseModel) -> None:
        self._supports(WriteDisposition.APPEND)
        self._write(contract_config, WriteDisposition.APPEND, [people([1, 2]), people([3])])
        assert sorted(self._rows(contract_config)) == [1, 2, 3]
        self._write(contract_config, WriteDisposition.APPEND, [people([4, 5])], run_id="run-2")
        assert self._count(contract_config) == 5

    def test_replace_leaves_exactly_the_last_runs_rows(self, contract_config: BaseModel) -> None:
        self._supports(WriteDisposition.REPLACE)
        self._write(contract_config, WriteDisposition.REPLACE, [people([1, 2, 3], "old")])
        self._write(contract_config, WriteDisposition.REPLACE, [people([3, 4], "new"), people([5], "new")], "run-2")
        rows = self._rows(contract_config)
        assert sorted(rows) == [3, 4, 5]
        assert {r["email"].split(".")[0] for r in rows.values()} == {"new"}

    def test_upsert_replaces_rows_with_the_same_key(self, contract_config: BaseModel) -> None:
        self._supports(WriteDisposition.UPSERT)
        self._write(contract_config, WriteDisposition.UPSERT, [people([1, 2, 3], "v1")])
        self._write(contract_config, WriteDisposition.UPSERT, [people([2, 3, 4], "v2")], "run-2")
        rows = self._rows(contract_config)
        assert sorted(rows) == [1, 2, 3, 4]
        assert {i: r["email"] for i, r in rows.items()} == {
            1: "v1.1@example.com", 2: "v2.2@example.com", 3: "v2.3@example.com", 4: "v2.4@example.com"}

    def test_upsert_within_one_batch_keeps_the_last_row_of_a_key(self, contract_config: BaseModel) -> None:
        self._supports(WriteDisposition.UPSERT)
        batch = pa.RecordBatch.from_pydict({
            "id": pa.array([7, 7, 8], pa.int64()),
            "email": ["first@example.com", "last@example.com", "other@example.com"],
            "score": pa.array([1.0, 2.0, 3.0]),
        })
        self._write(contract_config, WriteDisposition.UPSERT, [batch])
        rows = self._rows(contract_config)
        assert rows[7]["email"] == "last@example.com" and sorted(rows) == [7, 8]

    def test_upsert_applies_the_deletes_of_a_change_stream(self, contract_config: BaseModel) -> None:
        if not self.destination.applies_deletes:
            pytest.skip(f"{self.destination.name} does not declare applies_deletes")
        self._supports(WriteDisposition.UPSERT)
        changes = Stream("people", PEOPLE.schema.append(pa.field(OPERATION_COLUMN, pa.string())), primary_key=("id",))

        def change(ids: list[int], ops: list[str], tag: str) -> pa.RecordBatch:
            return people(ids, tag, extra={OPERATION_COLUMN: ops})

        self._write(contract_config, WriteDisposition.UPSERT, [change([1, 2, 3, 4], ["insert"] * 4, "v1")], stream=changes)
        self._write(contract_config, WriteDisposition.UPSERT, [
            change([2, 3], ["update", "delete"], "v2"),
            change([1, 4, 4, 5, 5], ["delete", "delete", "insert", "insert", "delete"], "v3"),  # within a batch too
        ], "run-2", stream=changes)
        rows = self._rows(contract_config)
        assert sorted(rows) == [2, 4], f"keys 1, 3 and 5 end deleted, 4 deleted then inserted again: {sorted(rows)}"
        assert rows[2]["email"] == "v2.2@example.com" and rows[4]["email"] == "v3.4@example.com"

    def test_rows_committed_before_a_failure_survive_and_later_rows_do_not(self, contract_config: BaseModel) -> None:
        dispositions = [d for d in (WriteDisposition.UPSERT, WriteDisposition.APPEND) if d in self.destination.dispositions]
        if not dispositions:
            pytest.skip(f"{self.destination.name} neither appends nor upserts")
        target = StreamTarget("contract", PEOPLE, dispositions[0], TABLE, "run-1")
        writer = self.destination().open_stream(contract_config, target)
        writer.write(people([1, 2]))
        writer.commit()
        writer.write(people([3, 4]))  # not committed: the sync fails here
        writer.abort()
        assert sorted(self._rows(contract_config)) == [1, 2], "after abort, exactly the committed rows must remain"

    def test_a_column_that_appears_later_is_added(self, contract_config: BaseModel) -> None:
        disposition = next(d for d in (WriteDisposition.APPEND, WriteDisposition.UPSERT, WriteDisposition.REPLACE)
                           if d in self.destination.dispositions)
        self._write(contract_config, disposition, [people([1]), people([2], extra={"city": ["Lisbon"]})])
        rows = self._rows(contract_config)
        assert rows[2].get("city") == "Lisbon", f"the new column is missing or wrong: {rows[2]}"
        assert "city" in rows[1] and rows[1]["city"] is None, f"earlier rows should read the new column as null: {rows[1]}"

    def test_finish_reports_the_rows_written(self, contract_config: BaseModel) -> None:
        disposition = self.destination.dispositions[0]
        report = self._write(contract_config, disposition, [people([1, 2, 3]), people([4, 5])])
        assert isinstance(report, WriteReport)
        assert report.rows_written == 5 and report.rows_rejected == 0

    def test_a_sync_crashed_mid_stream_and_resumed_by_the_engine_lands_every_row_once(
        self, tmp_path: Path, contract_config: BaseModel
    ) -> None:
        if not {WriteDisposition.UPSERT, WriteDisposition.APPEND} & set(self.destination.dispositions):
            pytest.skip(f"{self.destination.name} neither appends nor upserts")
        workdir = tmp_path / "work"
        workdir.mkdir()
        source_config = {"batches": 5, "rows_per_batch": 10}
        runs = {"destination": self.destination, "destination_config": self.config(tmp_path)}
        crashing = instrumented(NumberedBatchesSource, crash_after={PEOPLE.name: 3})
        crashed = sync(crashing, source_config, workdir, [PEOPLE], **runs)
        assert not crashed.ok, "the suite's simulated crash did not stop the sync:\n" + report_problem(crashed)
        table = table_name(PEOPLE)
        assert sorted(self._rows(contract_config, table)) == list(range(20)), (
            "after a crash in the third batch, exactly the two checkpointed batches must be in the table")
        resumed = sync(NumberedBatchesSource, source_config, workdir, [PEOPLE], **runs)
        assert resumed.ok, report_problem(resumed)
        assert sorted(self._rows(contract_config, table)) == list(range(50)), "the resumed sync lost or repeated rows"
