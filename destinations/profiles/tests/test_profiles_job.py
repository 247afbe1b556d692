"""The profile store driven by the real engine: a job lands several sources, resolution runs
once when the run finishes, and the CLI and Python API look profiles up."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from threadline.contracts import FatalError
from threadline_profiles import ProfileStore, api, plugin
from threadline_profiles.cli.profiles import profiles

JOB = """
name: people
sources:
  crm:
    connector: files
    config:
      streams:
        - {name: contacts, path: crm.csv, primary_key: [id]}
  shop:
    connector: files
    config:
      streams:
        - {name: customers, path: shop.csv, primary_key: [cid]}
destinations:
  store:
    connector: profiles
    config:
      path: profiles.duckdb
      mappings:
        crm.contacts:
          identifiers: {email: email, phone: phone, id: "customer_id:crm"}
          traits: {first_name: first, last_name: last}
          cleaning: {phone_region: US, priority: 10}
        shop.customers:
          identifiers: {mail: email, cid: "customer_id:shop"}
          traits: {first_name: name}
"""


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    (tmp_path / "job.yaml").write_text(JOB)
    (tmp_path / "crm.csv").write_text(
        "id,email,phone,first,last\n1,Ana@Mail.com,(415) 555-2671,ANA,Lee\n2,bob@mail.com,4155552672,Bob,Ray\n3,bad-email,12,Zed,Q\n")
    (tmp_path / "shop.csv").write_text("cid,mail,name\ns1,ana@mail.com,Ana\ns2,test@test.com,T\ns3,test@test.com,U\n")
    return tmp_path


def sync(job_dir: Path):
    from threadline.engine import run_job
    from threadline.job import load_job
    from threadline.plugins import reset

    reset()
    return run_job(load_job(job_dir / "job.yaml"))


def test_a_sync_lands_every_source_and_resolves_once_at_the_end(job_dir):
    report = sync(job_dir)
    assert report.ok, report.error
    with ProfileStore.open({"path": str(job_dir / "profiles.duckdb")}) as store:
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_builds") == 1
        assert store.engine.scalar("SELECT run_id FROM tl_builds") == report.run_id
        profile = api.get(store, email="ANA@mail.com")
        assert {m.record_key for m in profile.members} == {"crm.contacts:1", "shop.customers:s1"}
        assert profile.golden["first_name"].value == "Ana"
        assert profile.golden["first_name"].record_key == "crm.contacts:1"


def test_each_build_writes_an_html_report(job_dir):
    sync(job_dir)
    report = job_dir / "profiles_reports" / "latest.html"
    text = report.read_text()
    assert "<svg" in text and "Overlap between sources" in text and "placeholder email" in text


def test_check_targets_through_the_job_names_the_missing_column(job_dir):
    from threadline.contracts import ConfigError
    from threadline.engine import plan_job
    from threadline.job import load_job

    (job_dir / "job.yaml").write_text(JOB.replace("traits: {first_name: name}", "traits: {first_name: given}"))
    job = load_job(job_dir / "job.yaml")
    plans = [p for p in plan_job(job) if p.source_name == "shop"]
    targets = [p.target("check") for p in plans]
    with pytest.raises(ConfigError, match="'given'"):
        plans[0].destination.check_targets(plans[0].destination_config, targets)


def test_the_cli_gets_a_profile_by_email_with_an_explanation(job_dir):
    sync(job_dir)
    result = CliRunner().invoke(profiles, ["get", "--job", str(job_dir / "job.yaml"), "--email", "ana@mail.com", "--explain"])
    assert result.exit_code == 0, result.output
    assert "shop.customers:s1 ↔ crm.contacts:1: rule email, key ana@mail.com" in result.output
    assert "first_name" in result.output and "← crm.contacts:1" in result.output


def test_the_cli_gets_a_profile_by_phone_and_by_id_as_json(job_dir):
    sync(job_dir)
    runner = CliRunner()
    by_phone = runner.invoke(profiles, ["get", "--path", str(job_dir / "profiles.duckdb"), "--phone", "+1 415 555 2671", "--json"])
    assert by_phone.exit_code == 0, by_phone.output
    profile_id = json.loads(by_phone.output)[0]["profile_id"]
    by_id = runner.invoke(profiles, ["get", "--path", str(job_dir / "profiles.duckdb"), "--id", profile_id, "--json"])
    assert json.loads(by_id.output)[0]["profile_id"] == profile_id


def test_the_cli_says_when_no_profile_matches(job_dir):
    sync(job_dir)
    result = CliRunner().invoke(profiles, ["get", "--path", str(job_dir / "profiles.duckdb"), "--email", "nobody@mail.com"])
    assert result.exit_code == 1 and "no profile found" in result.output


def test_a_lookup_before_any_build_says_to_build_first(tmp_path):
    from threadline_profiles.resolve.lookup import LookupInputError

    with ProfileStore.open({"path": str(tmp_path / "empty.duckdb")}) as store:
        with pytest.raises(LookupInputError, match="has no profiles yet") as err:
            api.get(store, email="ana@mail.com")
    assert "threadline profiles build" in str(err.value)


def test_the_cli_builds_from_the_settings_saved_in_the_store(job_dir):
    sync(job_dir)
    result = CliRunner().invoke(profiles, ["build", "--path", str(job_dir / "profiles.duckdb")])
    assert result.exit_code == 0, result.output
    assert "6 records → 5 profiles" in result.output


def test_the_plugin_adds_a_profiles_group_to_the_cli():
    from threadline.cli import CLIGroup

    root = CLIGroup("threadline")
    plugin.register_commands(cli=root)
    root.get_command(click.Context(root), "profiles")  # registered lazily: imported when asked for
    assert set(root.commands["profiles"].commands) >= {"get", "build", "report"}


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
    """
)


def test_a_store_file_held_by_another_process_is_a_clear_error(tmp_path):
    path = tmp_path / "p.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(FatalError) as err:
            ProfileStore.open({"path": str(path)})
        assert "in use by another process" in str(err.value) and str(path) in str(err.value)
        assert f"process {holder.pid}" in str(err.value)
    finally:
        holder.kill()
        holder.wait()


def test_the_build_is_a_step_of_the_run_and_is_in_its_record(job_dir):
    from threadline.job import load_job
    from threadline.state import StateStore

    report = sync(job_dir)
    (build,) = [s for s in report.steps if s.step == "build"]
    assert (build.destination, build.outcome) == ("store", "succeeded")
    assert "records →" in build.summary and "profiles" in build.summary
    job = load_job(job_dir / "job.yaml")
    assert [(s.step, s.outcome) for s in StateStore(job.state_dir).runs(job.name)[0].steps] == [("build", "succeeded")]


def test_a_build_that_fails_fails_the_sync_with_exit_1_and_the_reason(job_dir, monkeypatch):
    from threadline.cli import cli
    from threadline.job import load_job
    from threadline.plugins import reset
    from threadline.state import StateStore

    def broken_build(*args, **kw):
        raise FatalError("the store ran out of disk (injected)")

    monkeypatch.setattr(api, "_build_pipeline", broken_build)
    reset()
    result = CliRunner().invoke(cli, ["sync", str(job_dir / "job.yaml")])
    assert result.exit_code == 1, result.output
    assert "store build failed" in result.output and "ran out of disk" in result.output
    job = load_job(job_dir / "job.yaml")
    (run,) = StateStore(job.state_dir).runs(job.name)
    assert run.outcome == "failed"
    assert [(s.step, s.outcome) for s in run.steps] == [("build", "failed")]


def test_the_profile_commands_take_the_job_file_positional_or_with_job(job_dir):
    from threadline_profiles.cli.activation import push_command
    from threadline_profiles.cli.audiences import audiences_group

    sync(job_dir)
    job = str(job_dir / "job.yaml")
    runner = CliRunner()
    for args in (["get", job, "--email", "ana@mail.com"], ["get", "--job", job, "--email", "ana@mail.com"]):
        result = runner.invoke(profiles, args)
        assert result.exit_code == 0 and "crm.contacts:1" in result.output, (args, result.output)
    listed = runner.invoke(audiences_group, ["list", job])
    assert listed.exit_code == 0, listed.output
    for args in (["preview", job, "vips"], ["preview", "vips", job], ["preview", "vips", "--job", job]):
        previewed = runner.invoke(audiences_group, args)  # the job is read whichever way: only the audience is unknown
        assert "'vips'" in str(previewed.exception) and "does not exist" not in previewed.output, (args, previewed.output)
    # push's activation names may follow either form; a name is never mistaken for the job
    for args in ([job, "no_such_activation"], ["--job", job, "no_such_activation"]):
        pushed = runner.invoke(push_command, args)
        assert "no activation named 'no_such_activation'" in str(pushed.exception), (args, pushed.output)
    # two different job files, or one that is not there, are usage errors
    other = job_dir / "other.yaml"
    other.write_text(open(job).read())
    two = runner.invoke(profiles, ["get", str(other), "--job", job, "--email", "ana@mail.com"])
    assert two.exit_code == 2 and "two job files" in two.output
    missing = runner.invoke(profiles, ["get", str(job_dir / "nope.yaml"), "--email", "ana@mail.com"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_profile_store_that_was_deleted_is_filled_again_and_the_run_says_why(job_dir):
    assert sync(job_dir).ok
    again = sync(job_dir)
    assert again.stream("crm", "contacts").rows_read == 0  # files already read: nothing new
    (job_dir / "profiles.duckdb").unlink()
    refilled = sync(job_dir)
    contacts = refilled.stream("crm", "contacts")
    assert refilled.ok and contacts.rows_read == 3
    assert "saved state ignored" in contacts.note and "raw_crm__contacts" in contacts.note
    with ProfileStore.open({"path": str(job_dir / "profiles.duckdb")}) as store:
        assert api.get(store, email="ana@mail.com") is not None
