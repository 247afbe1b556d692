"""The one CLI convention for a job file: `threadline CMD job.yaml` and `threadline CMD --job
job.yaml` (or `-j`) both work, for every command that reads a job. Plugins' commands use the
same decorator, so a user never has to remember which form a command takes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

JOB_HELP = "The job file (also accepted as the first argument)."


def job_file_argument(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command` a `job_file` parameter from a positional JOB_FILE or `--job/-j`."""

    @functools.wraps(command)
    def merged(*args: Any, job_file: str | None, job_option: str | None, **kwargs: Any) -> Any:
        if job_file and job_option and job_file != job_option:
            raise click.UsageError(f"two job files given ({job_file} and --job {job_option}); give one")
        chosen = job_file or job_option
        if not chosen:
            raise click.UsageError("which job? give the job file: `job.yaml` or `--job job.yaml`")
        return command(*args, job_file=chosen, **kwargs)

    merged = click.option("-j", "--job", "job_option", type=click.Path(dir_okay=False), help=JOB_HELP)(merged)
    return click.argument("job_file", required=False, type=click.Path(dir_okay=False))(merged)
