"""What is special about direct mail: a whole list per push in one CSV file that appears
atomically, only names and postal addresses in it, members without a complete address (or a
name) left out with a reason, older files pruned, and diffs refused."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from threadline.contracts import MEMBER_SCHEMA, AudienceTarget, ConfigError, PushMode
from threadline.testing import AudienceContract, sample_members
from threadline_direct_mail import DirectMail, DirectMailConfig, latest_export
from threadline_direct_mail.destination import FILE_COLUMNS, NO_ADDRESS, NO_NAME, export_name


class Pusher(AudienceContract):
    """The suite's runner-like push (adds in batches, then finish)."""

    destination = DirectMail
    batch_rows = 7


def config(tmp_path: Path, **overrides: Any) -> DirectMailConfig:
    return DirectMailConfig.model_validate({"folder": str(tmp_path / "mail"), **overrides})


def target(run_id: str, mode: PushMode = PushMode.MIRROR) -> AudienceTarget:
    return AudienceTarget("coupon_by_post", "service_recovery", mode, run_id, 0, 0)


def push(cfg: DirectMailConfig, members: pa.Table, run_id: str) -> tuple[Any, list[Any]]:
    dest = DirectMail()
    writer = dest.open_audience(cfg, target(run_id))
    prepared = dest.prepare(cfg, members)
    results = [writer.add(prepared.slice(offset, 7)) for offset in range(0, prepared.num_rows, 7)]
    return writer.finish(), results


def rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def members(*changes: dict[str, Any], start: int = 0) -> pa.Table:
    base = sample_members(start, len(changes)).to_pylist()
    return pa.Table.from_pylist([{**m, **c} for m, c in zip(base, changes)], schema=MEMBER_SCHEMA)


# ---------------------------------------------------------------------------- declarations


def test_declares_the_direct_mail_channel_mirror_only_and_plain_address_columns() -> None:
    assert DirectMail.channel == "direct_mail"
    assert DirectMail.modes == (PushMode.MIRROR,)
    assert DirectMail.min_members == 0
    assert not DirectMail.applies_each_batch  # nothing exists until finish renames the file
    assert set(DirectMail.plain_columns) == {"first_name", "last_name", "address_line1", "city", "region",
                                             "postal_code", "country"}


def test_nothing_is_hashed_and_no_email_phone_or_birth_date_is_prepared(tmp_path: Path) -> None:
    # A print house needs names and addresses in the clear; there is no hashing to check
    # against a vendor example. What must hold is that nothing else leaves.
    given = sample_members(0, 3)
    prepared = DirectMail().prepare(config(tmp_path), given)
    assert prepared.column_names == ["member_id", *[c for c in FILE_COLUMNS if c != "member_id"]]
    values = {v for row in prepared.to_pylist() for v in row.values()}
    for column in ("email", "phone", "birth_date"):
        assert not values & set(given.column(column).to_pylist()), f"{column} must not reach a print house"


# ---------------------------------------------------------------------------- the file


def test_one_file_per_push_named_by_audience_and_run_with_the_columns_a_printer_reads(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    report, _ = push(cfg, sample_members(0, 12), "20260101T090000-aaaa1111")
    path = tmp_path / "mail" / "service_recovery-20260101T090000-aaaa1111.csv"
    assert report.details["file"] == str(path) and latest_export(cfg.folder, "service_recovery") == path
    written = rows(path)
    assert list(written[0]) == list(FILE_COLUMNS)
    assert [r["member_id"] for r in written] == sample_members(0, 12).column("member_id").to_pylist()
    first = sample_members(0, 1).to_pylist()[0]
    assert written[0] == {c: first[c] for c in FILE_COLUMNS}
    assert (report.sent, report.accepted, report.rejected) == (12, 12, 0)


def test_values_are_trimmed_postcodes_upper_cased_and_commas_and_quotes_survive(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    table = members({"first_name": ' Anne "Annie" ', "last_name": "O'Neil, Jr", "address_line1": "Flat 2, 10 Main St",
                     "city": "London", "region": "", "postal_code": " n1 9gu ", "country": "gb"})
    push(cfg, table, "run-1")
    (row,) = rows(latest_export(cfg.folder, "service_recovery"))
    assert row["first_name"] == 'Anne "Annie"' and row["last_name"] == "O'Neil, Jr"
    assert row["address_line1"] == "Flat 2, 10 Main St" and row["region"] == ""
    assert row["postal_code"] == "N1 9GU" and row["country"] == "GB"


def test_the_delimiter_can_be_what_the_print_house_wants(tmp_path: Path) -> None:
    cfg = config(tmp_path, delimiter=";")
    push(cfg, sample_members(0, 2), "run-1")
    assert [r["member_id"] for r in rows(latest_export(cfg.folder, "service_recovery"), ";")] == ["p000000", "p000001"]


def test_members_without_a_complete_address_or_a_name_are_left_out_with_the_reason(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    table = members({}, {"address_line1": None}, {"postal_code": "  "}, {"country": None},
                    {"first_name": None, "last_name": None}, {"first_name": None}, {"region": None})
    report, results = push(cfg, table, "run-1")
    rejected = {r.member_id: r.reason for res in results for r in res.rejected}
    assert rejected == {"p000001": NO_ADDRESS, "p000002": NO_ADDRESS, "p000003": NO_ADDRESS, "p000004": NO_NAME}
    assert [r["member_id"] for r in rows(latest_export(cfg.folder, "service_recovery"))] == ["p000000", "p000005", "p000006"]
    assert (report.sent, report.accepted, report.rejected) == (7, 3, 4)


def test_an_empty_audience_writes_a_file_with_only_the_header(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    push(cfg, sample_members(0, 0), "run-1")
    path = latest_export(cfg.folder, "service_recovery")
    assert path.read_text(encoding="utf-8").splitlines() == [",".join(f'"{c}"' for c in FILE_COLUMNS)]


# ---------------------------------------------------------------------------- atomic, resumable, pruned


def test_the_file_appears_only_when_the_push_finishes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    dest = DirectMail()
    writer = dest.open_audience(cfg, target("run-2"))
    writer.add(dest.prepare(cfg, sample_members(0, 5)))
    assert latest_export(cfg.folder, "service_recovery") is None, "a printer must never see half a list"
    writer.finish()
    assert len(rows(latest_export(cfg.folder, "service_recovery"))) == 5
    assert not list((tmp_path / "mail").glob(".*")), "no temporary file is left behind"


def test_a_push_that_fails_midway_leaves_the_previous_file_and_no_temporary_file(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    push(cfg, sample_members(0, 4), "20260101T000000-a")
    dest = DirectMail()
    writer = dest.open_audience(cfg, target("20260102T000000-b"))
    writer.add(dest.prepare(cfg, sample_members(10, 3)))
    writer.abort()
    latest = latest_export(cfg.folder, "service_recovery")
    assert latest.name == "service_recovery-20260101T000000-a.csv" and len(rows(latest)) == 4
    assert not list((tmp_path / "mail").glob(".*"))


def test_older_files_beyond_keep_files_are_deleted(tmp_path: Path) -> None:
    cfg = config(tmp_path, keep_files=2)
    for day in (1, 2, 3, 4):
        report, _ = push(cfg, sample_members(day, 2), f"2026010{day}T000000-x")
    kept = sorted(p.name for p in (tmp_path / "mail").glob("*.csv"))
    assert kept == ["service_recovery-20260103T000000-x.csv", "service_recovery-20260104T000000-x.csv"]
    assert report.details["deleted_older_files"] == 1


def test_another_audiences_files_are_never_pruned(tmp_path: Path) -> None:
    cfg = config(tmp_path, keep_files=1)
    other = Path(cfg.folder) / export_name("service_recovery_vip", "20250101T000000-z")
    push(cfg, sample_members(0, 1), "20260101T000000-a")
    other.write_text("kept", encoding="utf-8")
    push(cfg, sample_members(0, 1), "20260102T000000-b")
    assert other.exists()


def test_run_ids_cannot_escape_the_folder(tmp_path: Path) -> None:
    assert export_name("vip", "../../etc/passwd") == "vip-.._.._etc_passwd.csv"


# ---------------------------------------------------------------------------- config and modes


def test_a_folder_that_cannot_be_written_is_a_config_error_on_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        DirectMail().check(config(tmp_path, folder=str(blocker / "mail")))
    assert caught.value.field == "folder" and str(blocker) in caught.value.message


def test_a_relative_folder_is_taken_from_the_job_files_folder(tmp_path: Path) -> None:
    cfg = DirectMailConfig.model_validate({"folder": "exports/mail"}, context={"base_dir": tmp_path})
    assert Path(cfg.folder) == tmp_path / "exports" / "mail"


def test_a_diff_push_is_refused_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        DirectMail().open_audience(config(tmp_path), target("run-1", PushMode.DIFF))
    assert caught.value.field == "mode" and "mode: mirror" in caught.value.hint


def test_the_suite_push_uses_the_mirror_a_file_can_do(tmp_path: Path) -> None:
    report, _ = Pusher().push(config(tmp_path), adds=sample_members(0, 9))
    assert report.accepted == 9


# ---------------------------------------------------------------------------- only its own files, only its folder


def test_pruning_deletes_only_files_this_activation_wrote_even_when_a_foreign_file_sorts_after_them(tmp_path: Path) -> None:
    cfg = config(tmp_path, keep_files=1)
    push(cfg, sample_members(0, 1), "20260101T000000-a")
    foreign = Path(cfg.folder) / "service_recovery-99999999T999999-zzzz.csv"  # someone else's, sorting last
    foreign.write_text("the print house's own notes", encoding="utf-8")
    report, _ = push(cfg, sample_members(0, 2), "20260102T000000-b")
    ours = Path(cfg.folder) / "service_recovery-20260102T000000-b.csv"
    assert ours.exists() and foreign.exists(), "neither the new export nor a foreign file may be deleted"
    assert not (Path(cfg.folder) / "service_recovery-20260101T000000-a.csv").exists()
    assert report.details["deleted_older_files"] == 1
    assert latest_export(cfg.folder, "service_recovery") == ours, "the current list is ours, not the foreign file"


def test_another_activation_of_the_same_audience_keeps_its_own_files(tmp_path: Path) -> None:
    cfg = config(tmp_path, keep_files=1)
    dest = DirectMail()
    other = AudienceTarget("coupon_by_post_eu", "service_recovery", PushMode.MIRROR, "20260101T000000-x", 0, 0)
    writer = dest.open_audience(cfg, other)
    writer.add(dest.prepare(cfg, sample_members(0, 1)))
    writer.finish()
    push(cfg, sample_members(0, 1), "20260102T000000-a")
    push(cfg, sample_members(0, 1), "20260103T000000-b")
    assert (Path(cfg.folder) / "service_recovery-20260101T000000-x.csv").exists()


@pytest.mark.parametrize("folder", ["../elsewhere", "/tmp/threadline-direct-mail-elsewhere"])
def test_a_folder_outside_the_job_folder_is_refused_unless_the_user_says_so(tmp_path: Path, folder: str) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    with pytest.raises(ValueError, match="outside the job's folder.*outside_job_folder: true"):
        DirectMailConfig.model_validate({"folder": folder}, context={"base_dir": job_dir})
    allowed = DirectMailConfig.model_validate({"folder": folder, "outside_job_folder": True}, context={"base_dir": job_dir})
    assert not Path(allowed.folder).resolve().is_relative_to(job_dir)


@pytest.mark.parametrize("audience", ["vip\n", "../vip", ".vip", "a/b"])
def test_an_audience_name_that_could_leave_the_folder_or_hide_is_refused(tmp_path: Path, audience: str) -> None:
    with pytest.raises(ConfigError, match="audience name"):
        DirectMail().open_audience(config(tmp_path), AudienceTarget("mail", audience, PushMode.MIRROR, "run-1", 0, 0))


# ---------------------------------------------------------------------------- US ZIP codes


def test_us_zip_codes_that_lost_their_leading_zeros_get_them_back(tmp_path: Path) -> None:
    from threadline_direct_mail.destination import NOT_A_ZIP

    report, results = push(config(tmp_path), members(
        {"country": "US", "postal_code": "5401"},      # Burlington, VT 05401, read as a number
        {"country": "PR", "postal_code": " 907 "},      # San Juan, PR 00907
        {"country": "US", "postal_code": "94103-1234"},
        {"country": "US", "postal_code": "12"},         # no ZIP at all: refused, not guessed
        {"country": "GB", "postal_code": "sw1a 1aa"},  # other countries as they are
    ), "run-1")
    printed = {r["member_id"]: r["postal_code"] for r in rows(Path(report.details["file"]))}
    ids = members(*[{}] * 5).column("member_id").to_pylist()
    assert printed == {ids[0]: "05401", ids[1]: "00907", ids[2]: "94103-1234", ids[4]: "SW1A 1AA"}
    assert [(r.member_id, r.reason) for res in results for r in res.rejected] == [(ids[3], NOT_A_ZIP)]
