"""A destination's post-run work (`Destination.finish_run`: a profile build, pushes) is a
step of the run: it runs before the run is recorded, its outcome is in the run's record, and
when it fails the run fails, whatever the streams did."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from threadline.cli import cli
from threadline.engine import run_job
from threadline.state import StateStore


@pytest.fixture
def people(memory):
    memory.source.records = [{"id": i, "email": f"p{i}@example.com", "updated_at": memory.ts(1)} for i in range(5)]
    return memory


def test_a_post_run_step_that_succeeds_is_in_the_run_record(people):
    job = people.job(destination_config={"after_run": "succeed"})
    report = run_job(job, registry=people.registry)
    assert report.outcome == "succeeded"
    assert [(s.destination, s.step, s.outcome, s.summary) for s in report.steps] == [
        ("dest", "index", "succeeded", "indexed every table")]
    (recorded,) = StateStore(job.state_dir).runs(job.name)
    assert [(s.step, s.outcome) for s in recorded.steps] == [("index", "succeeded")]


def test_a_post_run_step_that_reports_failure_fails_the_run(people):
    job = people.job(destination_config={"after_run": "report_failure"})
    report = run_job(job, registry=people.registry)
    assert report.outcome == "failed"
    assert "dest index: index rebuild refused (injected)" in report.error
    assert all(s.outcome == "succeeded" for s in report.streams)  # the streams themselves landed
    (recorded,) = StateStore(job.state_dir).runs(job.name)
    assert recorded.outcome == "failed"
    assert [(s.step, s.outcome) for s in recorded.steps] == [("index", "failed")]


def test_a_post_run_step_that_raises_fails_the_run_with_the_destination_named_as_in_the_job(people):
    job = people.job(destination_config={"after_run": "raise"})
    report = run_job(job, registry=people.registry)
    assert report.outcome == "failed"
    (step,) = report.steps
    assert (step.destination, step.outcome) == ("dest", "failed")
    assert "the index could not be rebuilt" in step.error
    assert "the index could not be rebuilt" in StateStore(job.state_dir).runs(job.name)[0].error
