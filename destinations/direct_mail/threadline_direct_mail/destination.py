"""The `direct_mail` destination: an audience as a CSV file of names and postal addresses for a
print house, one whole list per push.

The runner hands only members who consent to direct mail. Each push writes every current
member (a mirror: a printer prints and mails a whole list, and a removal cannot be unprinted)
to a hidden temporary file in the configured folder, and `finish` renames it into place as
`<audience>-<run id>.csv` — the file appears whole or not at all, so a printer's pickup never
reads half a list, and a push killed midway leaves only the previous file. Members without a
complete postal address (or without any name) are left out and reported per row.

Each activation keeps a record of the files it wrote (`threadline-direct-mail-<activation>.json`
in the folder). After a push, its files beyond `keep_files` are deleted — only files in that
record, so a file someone else put in the folder is never touched, whatever its name — and
personal data does not pile up: a forgotten person leaves the folder after a few pushes.

The folder is taken inside the job's folder: a relative path that climbs out of it, or an
absolute path elsewhere, is refused unless `outside_job_folder: true` says it is meant.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import Field, ValidationInfo, model_validator
from threadline.activation import prepare_members
from threadline.contracts import (
    AudienceDestination,
    AudienceTarget,
    AudienceWriter,
    ConfigError,
    FatalError,
    JobPath,
    PushMode,
    PushReport,
    PushResult,
    RowRejection,
    Spec,
)
from threadline.names import inside, safe_name

ADDRESS = ("address_line1", "city", "postal_code", "country")  # what a complete postal address needs
NAME = ("first_name", "last_name")
FILE_COLUMNS = ("first_name", "last_name", "address_line1", "city", "region", "postal_code", "country", "member_id")
NO_ADDRESS = "no postal address"
NOT_A_ZIP = "postal code is not a US ZIP code (5 digits, or ZIP+4)"
# Countries that use US ZIP codes: a spreadsheet that read a ZIP as a number dropped its
# leading zeros (05401 -> 5401, 00907 -> 907); 3 or 4 digits there can only be that.
ZIP_COUNTRIES = ("US", "PR", "VI", "GU", "AS", "MP")
_ZIP_COUNTRIES_SQL = ", ".join(f"'{c}'" for c in ZIP_COUNTRIES)
NO_NAME = "no name"


class DirectMailConfig(Spec):
    folder: JobPath = Field(description="Folder the CSV files are written to (relative paths: from the job file).")
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator of the CSV files.")
    keep_files: int = Field(3, ge=1, description="Files kept per activation; older ones it wrote are deleted after each push.")
    outside_job_folder: bool = Field(False, description="Allow a `folder` outside the job file's folder (a mounted print-house drop, say).")

    @model_validator(mode="after")
    def _inside_the_job_folder(self, info: ValidationInfo) -> DirectMailConfig:
        base = (info.context or {}).get("base_dir")
        if base is not None and not self.outside_job_folder and not inside(Path(base), Path(self.folder)):
            raise ValueError(f"folder {str(self.folder)!r} is outside the job's folder {str(base)!r}; "
                             "set `outside_job_folder: true` if files with names and addresses belong there")
        return self


class DirectMail(AudienceDestination[DirectMailConfig]):
    """Audiences as CSV files of names and postal addresses (see the module docstring)."""

    name = "direct_mail"
    spec = DirectMailConfig
    channel = "direct_mail"
    max_batch_rows = 100_000  # rows per write: a file has no request limit, this bounds memory per call
    min_members = 0  # a print run's minimum is the job's choice (the audience's min_size)
    modes = (PushMode.MIRROR,)
    applies_each_batch = False  # nothing is there until finish renames the file into place
    plain_columns = tuple(c for c in FILE_COLUMNS if c != "member_id")  # a printer needs them in the clear

    def check(self, config: DirectMailConfig) -> None:
        folder = Path(config.folder)
        probe = folder / f".threadline-check-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write files in {folder}: {exc.strerror or exc}", field="folder", where=self.name,
                              hint="give a folder this user can create and write to") from None

    def prepare(self, config: DirectMailConfig, members: pa.Table) -> pa.Table:
        # Only what goes on an envelope: no email, phone or birth date. Values are trimmed;
        # postal codes and countries upper-cased (UK postcodes print that way), US ZIP codes
        # that lost their leading zeros given them back; names keep the store's spelling.
        return prepare_members(members, f"""
            SELECT member_id,
                   blank_to_null(trim(first_name)) AS first_name,
                   blank_to_null(trim(last_name)) AS last_name,
                   blank_to_null(trim(address_line1)) AS address_line1,
                   blank_to_null(trim(city)) AS city,
                   blank_to_null(trim(region)) AS region,
                   CASE WHEN upper(trim(country)) IN ({_ZIP_COUNTRIES_SQL})
                             AND regexp_full_match(trim(postal_code), '[0-9]{{3,4}}')
                        THEN lpad(trim(postal_code), 5, '0')
                        ELSE blank_to_null(upper(trim(postal_code))) END AS postal_code,
                   blank_to_null(upper(trim(country))) AS country
            FROM members""")

    def open_audience(self, config: DirectMailConfig, target: AudienceTarget) -> AudienceWriter:
        if target.mode is not PushMode.MIRROR:
            raise ConfigError(f"direct_mail writes whole lists: activation {target.activation!r} asks for a "
                              f"{target.mode.value} push", field="mode", where=self.name,
                              hint="set `mode: mirror` on the activation (each file holds every current member)")
        self.check(config)
        return DirectMailWriter(config, target)


class DirectMailWriter(AudienceWriter):
    """One push: rows stream into a hidden temporary file, renamed into place by `finish`."""

    def __init__(self, config: DirectMailConfig, target: AudienceTarget) -> None:
        self.config, self.target = config, target
        safe_name(target.activation, "activation name", where="direct_mail")
        folder = Path(config.folder)
        self.path = folder / export_name(target.audience, target.run_id)
        self.temp = folder / f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp"
        self.schema = pa.schema([(c, pa.string()) for c in FILE_COLUMNS])
        self.sink = self.temp.open("wb")
        self.writer = pacsv.CSVWriter(self.sink, self.schema, write_options=pacsv.WriteOptions(
            include_header=True, delimiter=config.delimiter, quoting_style="needed"))
        self.report = PushReport(details={"file": str(self.path)})

    def add(self, rows: pa.Table) -> PushResult:
        complete = _all_present(rows, ADDRESS)
        in_zip_land = pc.fill_null(pc.is_in(rows.column("country"), value_set=pa.array(ZIP_COUNTRIES)), False)
        zip_ok = pc.fill_null(pc.match_substring_regex(rows.column("postal_code"), r"^[0-9]{5}(-?[0-9]{4})?$"), False)
        deliverable = pc.and_(complete, pc.or_(pc.invert(in_zip_land), zip_ok))
        named = pc.or_(pc.is_valid(rows.column("first_name")), pc.is_valid(rows.column("last_name")))
        kept = pc.and_(deliverable, named)
        rejected = [RowRejection(m, NO_ADDRESS) for m in rows.filter(pc.invert(complete)).column("member_id").to_pylist()]
        rejected += [RowRejection(m, NOT_A_ZIP) for m in
                     rows.filter(pc.and_(complete, pc.invert(deliverable))).column("member_id").to_pylist()]
        rejected += [RowRejection(m, NO_NAME) for m in
                     rows.filter(pc.and_(deliverable, pc.invert(named))).column("member_id").to_pylist()]
        printable = rows.filter(kept).select(list(FILE_COLUMNS))
        self.writer.write_table(printable.cast(self.schema))
        self.report.sent += rows.num_rows
        self.report.accepted += printable.num_rows
        self.report.rejected += len(rejected)
        return PushResult(accepted=printable.num_rows, rejected=rejected)

    def remove(self, rows: pa.Table) -> PushResult:
        raise FatalError("direct_mail writes whole lists and has nothing to remove from", where="direct_mail",
                         hint="push this activation with `mode: mirror`")

    def finish(self) -> PushReport:
        self.writer.close()
        self.sink.flush()
        os.fsync(self.sink.fileno())
        self.sink.close()
        os.replace(self.temp, self.path)  # atomic: the list appears whole or not at all
        record = _Record(self.path.parent, self.target.activation)
        record.add(self.path.name, self.target.audience)
        self.report.details["deleted_older_files"] = record.prune(self.config.keep_files)
        return self.report

    def abort(self) -> None:
        if not self.sink.closed:
            self.sink.close()
        self.temp.unlink(missing_ok=True)


def export_name(audience: str, run_id: str) -> str:
    """`<audience>-<run id>.csv`; run ids begin with their UTC start time, so names sort by push."""
    safe_name(audience, "audience name", where="direct_mail")
    return f"{audience}-{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id)}.csv"


def exports(folder: Path, audience: str) -> list[Path]:
    """The audience's files this destination wrote and that are still there, oldest first
    (from every activation's record in the folder)."""
    written = [entry for record in _Record.all(Path(folder)) for entry in record.entries if entry["audience"] == audience]
    files = [Path(folder) / entry["file"] for entry in sorted(written, key=lambda e: e["file"])]
    return [path for path in files if path.exists()]


def latest_export(folder: Path, audience: str) -> Path | None:
    """The audience's most recent file: what the print house should mail."""
    files = exports(folder, audience)
    return files[-1] if files else None


class _Record:
    """The files one activation wrote into the folder, oldest first, kept in a small JSON file
    beside them (written atomically): what pruning may delete, and nothing else."""

    PREFIX = "threadline-direct-mail-"  # no leading dot: print-house pickups skip .json, and people should see it

    def __init__(self, folder: Path, activation: str) -> None:
        self.path = folder / f"{self.PREFIX}{activation}.json"
        self.entries: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                self.entries = list(json.loads(self.path.read_text(encoding="utf-8"))["files"])
            except (ValueError, KeyError, TypeError):
                raise FatalError(f"the record of files written, {self.path}, is damaged", where="direct_mail",
                                 hint="delete it: older exports are then left for you to delete, never guessed at") from None

    @classmethod
    def all(cls, folder: Path) -> list[_Record]:
        return [cls(folder, p.name[len(cls.PREFIX):-len(".json")]) for p in sorted(folder.glob(f"{cls.PREFIX}*.json"))]

    def add(self, file: str, audience: str) -> None:
        self.entries.append({"file": file, "audience": audience})
        self._save()

    def prune(self, keep: int) -> int:
        """Delete this activation's files beyond the newest `keep`; returns how many."""
        older, self.entries = self.entries[:-keep], self.entries[-keep:]
        self._save()  # forgotten first: a crash now leaves a file to delete by hand, never a record of a deleted one
        for entry in older:
            (self.path.parent / entry["file"]).unlink(missing_ok=True)
        return len(older)

    def _save(self) -> None:
        temp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        temp.write_text(json.dumps({"files": self.entries}, indent=1), encoding="utf-8")
        os.replace(temp, self.path)


def _all_present(rows: pa.Table, columns: tuple[str, ...]) -> pa.ChunkedArray:
    mask = pc.is_valid(rows.column(columns[0]))
    for name in columns[1:]:
        mask = pc.and_(mask, pc.is_valid(rows.column(name)))
    return mask
