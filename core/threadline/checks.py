"""`threadline check`: validate a job and run every connector's own check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from threadline.contracts import ConfigError, ThreadlineError
from threadline.engine.runner import plan_job
from threadline.job import load_job
from threadline.plugins import registry as default_registry


@dataclass
class CheckResult:
    kind: str  # source | destination | job
    name: str
    connector: str
    ok: bool
    message: str = ""


def check_job(path: str | Path) -> list[CheckResult]:
    """Each source's and destination's check, then the job's stream plan and the
    destinations' view of it (e.g. a mapping naming a missing column). The job file itself
    must parse and validate first, or a ConfigError is raised."""
    job = load_job(path)
    reg = default_registry()
    results: list[CheckResult] = []
    for name, src in job.sources.items():
        results.append(_run("source", name, src.connector, lambda: _check_source(job, reg, name)))
    for name, dest in job.destinations.items():
        results.append(_run("destination", name, dest.connector, lambda: _check_destination(job, reg, name)))
    if all(r.ok for r in results):
        results.append(_run("job", job.name, "streams", lambda: _check_plan(job, reg)))
    return results


def _run(kind: str, name: str, connector: str, fn) -> CheckResult:
    try:
        fn()
        return CheckResult(kind, name, connector, True)
    except ThreadlineError as exc:
        return CheckResult(kind, name, connector, False, exc.render())


def _check_source(job, reg, name: str) -> None:
    src = job.sources[name]
    source = reg.source(src.connector)
    config = job.validate_config(("sources", name, "config"), source.spec, src.config)
    try:
        source.check(config)
    except ConfigError as exc:
        raise job.rewhere(exc, ("sources", name, "config")) from None


def _check_destination(job, reg, name: str) -> None:
    dest = job.destinations[name]
    destination = reg.destination(dest.connector)
    config = job.validate_config(("destinations", name, "config"), destination.spec, dest.config)
    destination.check(config)


def _check_plan(job, reg) -> None:
    plans = plan_job(job, reg)
    by_destination: dict[str, list] = {}
    for p in plans:
        by_destination.setdefault(p.destination_name, []).append(p)
    for name, group in by_destination.items():
        group[0].destination.check_targets(group[0].destination_config, [p.target("check") for p in group])
