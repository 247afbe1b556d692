"""The contract suites catch deliberately broken plugins: each broken twin of the toy CRM
source and of the toy store destination goes through its whole suite (in one pytest
subprocess, as a plugin's own test file would), and exactly the check for its bug fails —
every other check passes."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).parent
BROKEN = {  # module: (the suite's settings class, the broken plugins)
    "contract_toy_crm": ("ToyCrmContract", "source", ["IgnoresCursorSource", "ExclusiveCursorSource", "NoRetryOn503Source"]),
    "contract_toy_store": ("ToyStoreContract", "destination", ["LosesCommitsStore", "UpsertAppendsStore"]),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{test class: {test name: (outcome, failure text)}} from one pytest run of the suites
    against every broken plugin."""
    folder = tmp_path_factory.mktemp("broken_plugins")
    lines = []
    for module, (settings, attribute, names) in BROKEN.items():
        lines.append(f"from {module} import {settings}, {', '.join(names)}")
        for name in names:
            lines += ["", "", f"class Test{name}({settings}):", f"    {attribute} = {name}"]
    (folder / "test_broken_plugins.py").write_text("\n".join(lines) + "\n")
    report = folder / "report.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "test_broken_plugins.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=240,
    )
    assert report.exists(), f"the suites did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results: dict[str, dict[str, tuple[str, str]]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        outcome = "skipped" if case.find("skipped") is not None else "failed" if failure is not None else "passed"
        text = "" if failure is None else (failure.get("message") or "") + (failure.text or "")
        results.setdefault(case.get("classname").split(".")[-1], {})[case.get("name")] = (outcome, text)
    return results


def failed(results):
    return {name for name, (outcome, _) in results.items() if outcome == "failed"}


def why(results):
    return "\n".join(f"{name}: {text[:600]}" for name, (outcome, text) in results.items() if outcome == "failed")


def test_a_source_that_ignores_the_cursor_fails_only_the_incremental_check(outcomes):
    results = outcomes["TestIgnoresCursorSource"]
    assert failed(results) == {"test_incremental_sync_lands_the_changes_and_nothing_else"}, why(results)
    assert "record(s) that did not change" in results["test_incremental_sync_lands_the_changes_and_nothing_else"][1]


def test_a_source_that_reads_after_the_cursor_instead_of_from_it_loses_ties_on_resume(outcomes):
    results = outcomes["TestExclusiveCursorSource"]
    assert failed(results) == {"test_interrupted_sync_resumes_without_loss_or_duplicates"}, why(results)
    assert "record(s) missing" in results["test_interrupted_sync_resumes_without_loss_or_duplicates"][1]


def test_a_source_that_does_not_retry_503_fails_only_that_retry_check(outcomes):
    results = outcomes["TestNoRetryOn503Source"]
    assert failed(results) == {"test_transient_fault_is_retried[status-503]"}, why(results)
    assert "was not retried" in results["test_transient_fault_is_retried[status-503]"][1]


def test_a_destination_that_loses_committed_rows_on_abort_fails_the_durability_checks(outcomes):
    results = outcomes["TestLosesCommitsStore"]
    assert failed(results) == {
        "test_rows_committed_before_a_failure_survive_and_later_rows_do_not",
        "test_a_sync_crashed_mid_stream_and_resumed_by_the_engine_lands_every_row_once",
    }, why(results)


def test_a_destination_that_appends_instead_of_upserting_fails_the_upsert_checks(outcomes):
    results = outcomes["TestUpsertAppendsStore"]
    assert failed(results) == {
        "test_upsert_replaces_rows_with_the_same_key", "test_upsert_within_one_batch_keeps_the_last_row_of_a_key",
    }, why(results)
    assert "appears twice" in results["test_upsert_replaces_rows_with_the_same_key"][1]


def test_every_check_ran_for_each_broken_plugin(outcomes):
    expected = {f"Test{name}" for _, _, names in BROKEN.values() for name in names}
    assert set(outcomes) == expected
    for name, results in outcomes.items():
        assert len(results) >= 10, name
