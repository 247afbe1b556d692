"""The contract suite catches deliberately broken sources: each broken twin of the toy CRM
goes through the whole suite (in a pytest subprocess, as a connector's own test file would),
and exactly the check for its bug fails — every other check passes."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).parent
BROKEN = ["IgnoresCursorSource", "ExclusiveCursorSource", "NoRetryOn503Source"]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{class name: {test name: (outcome, failure text)}} from one pytest run of the suite
    against every broken source."""
    folder = tmp_path_factory.mktemp("broken_suite")
    lines = [f"from contract_toy_crm import ToyCrmContract, {', '.join(BROKEN)}", ""]
    for name in BROKEN:
        lines += ["", f"class Test{name}(ToyCrmContract):", f"    source = {name}", ""]
    (folder / "test_broken_sources.py").write_text("\n".join(lines))
    report = folder / "report.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "test_broken_sources.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=240,
    )
    assert report.exists(), f"the suite did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
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


def test_every_check_of_the_suite_ran_for_each_broken_source(outcomes):
    assert set(outcomes) == {f"Test{name}" for name in BROKEN}
    for results in outcomes.values():
        assert len(results) >= 12
