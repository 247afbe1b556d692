"""`threadline collect JOB_FILE`: serve the collector of a job's `events` source."""

from __future__ import annotations

import click


@click.command("collect")
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--source", "source_name", help="The job's events source to collect for (when it has several).")
@click.option("--host", help="Address to listen on (default: the source's collector.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: the source's collector.port, 8088; 0: a free one).")
def collect_command(job_file: str, source_name: str | None, host: str | None, port: int | None) -> None:
    """Accept tracking calls (Segment's API) and vendor webhooks into the event log of the job's
    `events` source, until Ctrl-C. Every event answered 200 is on disk; `threadline sync
    --follow` reads them."""
    from threadline.job import load_job

    from threadline_events.serve import serve
    from threadline_events.source import EventsSource

    job = load_job(job_file)
    names = [name for name, src in job.sources.items() if src.connector == EventsSource.name]
    if source_name is not None and source_name not in names:
        raise click.UsageError(f"no events source named {source_name!r} in {job_file} "
                               f"(its events sources: {', '.join(names) or 'none'})")
    if not names:
        raise click.UsageError(f"{job_file} has no source with `connector: events` to collect for")
    if source_name is None and len(names) > 1:
        raise click.UsageError(f"{job_file} has several events sources ({', '.join(names)}); pick one with --source")
    name = source_name or names[0]
    config = job.validate_config(("sources", name, "config"), EventsSource.spec, job.sources[name].config)
    serve(config, host=host, port=port)
