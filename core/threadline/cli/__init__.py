"""The `threadline` command.

Commands live in this package: every module here that defines a click command named
`command` is added (sandbox.py, new.py, ...), and plugins add theirs through the
`register_commands` hook. Bad input ends with a message that says what, where and what to
do next, and exit status 2; a failed sync exits 1; a stack trace means a bug.

Start-up pays for what the command uses: the command is resolved first, plugins' commands
are collected only when the name is not one of ours (or for --help), and a plugin command
added with `cli.add_lazy_command` is imported only when it runs.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from threadline import __version__, plugins
from threadline.cli.jobfile import job_file_argument
from threadline.errors import ConfigError, ThreadlineError
from threadline.secrets import RedactingFilter, redact

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; give them room.
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, highlight=False, soft_wrap=True)


EXIT_PAUSED = 75  # EX_TEMPFAIL: a vendor's rate limit stopped the sync cleanly; run it again later
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class CLIGroup(click.Group):
    """Turns threadline's errors into clear messages instead of stack traces, and collects
    plugins' commands only when they are asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, tuple[str, str]] = {}  # name -> (import path, short help)
        self._plugin_commands_added = False

    def add_lazy_command(self, name: str, import_path: str, short_help: str) -> None:
        """Add a command that lives at `import_path` ("package.module:attribute"), imported only
        when it runs; `short_help` is what `threadline --help` shows for it meanwhile. Plugins
        call this from `register_commands`, so listing commands imports none of them."""
        self.lazy_commands[name] = (import_path, short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name not in self.lazy_commands:
            self._add_plugin_commands()  # not one of ours: perhaps a plugin's
        if name in self.lazy_commands:
            import_path, _ = self.lazy_commands.pop(name)
            from threadline.plugins import ImportPath

            self.add_command(ImportPath(import_path).load(), name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a lazy command shows its registered short help instead of being imported."""
        rows = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        for name in names:
            if name in self.lazy_commands:
                rows.append((name, self.lazy_commands[name][1]))
            elif not self.commands[name].hidden:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _add_plugin_commands(self) -> None:
        """Each plugin's commands, one plugin at a time: a broken plugin is named and skipped."""
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        try:
            manager = plugins.registry().manager
        except ThreadlineError as exc:  # e.g. two plugins registering one name
            err.print(f"[bold red]error:[/] {escape(redact(exc.render()))}", highlight=False)
            sys.exit(2)
        for impl in manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=self)
            except Exception as exc:
                logging.getLogger("threadline.plugins").warning(
                    "plugin %s failed to add its commands and they are skipped: %s: %s",
                    impl.plugin_name, type(exc).__name__, exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ThreadlineError as exc:
            err.print(f"[bold red]error:[/] {escape(redact(exc.render()))}", markup=True, highlight=False)
            sys.exit(2 if isinstance(exc, ConfigError) or type(exc).__name__ == "JobLockedError" else 1)


@click.group(cls=CLIGroup)
@click.version_option(__version__, prog_name="threadline")
@click.option("--log-format", type=click.Choice(["auto", "plain", "json"]), default="auto",
              help="How log lines look; auto: readable on a terminal, plain otherwise.")
@click.option("-v", "--verbose", count=True, help="More log detail (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, log_format: str, verbose: int) -> None:
    """threadline: sync customer data from sources into a unified profile store and out to
    the channels that reach people."""
    ctx.ensure_object(dict)
    ctx.obj["log_format"] = "plain" if log_format == "auto" and not sys.stderr.isatty() else log_format
    setup_logging(ctx.obj["log_format"], verbose)


def setup_logging(fmt: str, verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif fmt == "plain":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=err, show_path=False, markup=False)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("threadline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {"time": self.formatTime(record), "level": record.levelname.lower(),
                   "logger": record.name, "message": record.getMessage()}
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, default=str)


# --------------------------------------------------------------------------- plugins


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins, their versions and what each registers."""
    reg = plugins.registry()
    if as_json:
        console.print_json(json.dumps([p.as_dict() for p in reg.plugins]))
        return
    table = Table(title="threadline plugins")
    for col in ("plugin", "distribution", "version", "sources", "destinations", "sandboxes"):
        table.add_column(col)

    def described(name: str) -> str:  # audience destinations take audiences, not streams
        return f"{name} (audiences)" if reg.is_audience_destination(name) else name

    for p in reg.plugins:
        table.add_row(p.name, p.distribution, p.version,
                      ", ".join(p.sources) or ("[red]failed to load[/]" if p.error else "-"),
                      ", ".join(described(d) for d in p.destinations) or "-", ", ".join(p.sandboxes) or "-")
    console.print(table)
    for p in reg.plugins:
        if p.error:
            err.print(f"[yellow]warning:[/] plugin {p.name!r} ({p.distribution}) failed to load: {p.error}")


@cli.command("install")
@click.argument("requirements", nargs=-1, required=True)
@click.option("--editable", "-e", is_flag=True, help="Install a local folder in editable mode.")
@click.option("--copy", is_flag=True, help="Install a copy even where the plugin is installed editable now.")
def install_command(requirements: tuple[str, ...], editable: bool, copy: bool) -> None:
    """Install plugins (a PyPI name, a requirement or a local folder) into this environment,
    then list what they registered. A local folder installed editable now stays editable
    (your edits keep working) unless --copy is given."""
    args = [sys.executable, "-m", "pip", "install", "--quiet"]
    for req in requirements:
        keep = not editable and not copy and _installed_editable_from(req)
        if keep:
            console.print(f"{req} is installed editable now; it stays editable (--copy installs a copy instead)")
        args += ["-e", req] if editable or keep else [req]
    console.print(f"installing {' '.join(requirements)} ...")
    result = subprocess.run(args)
    if result.returncode != 0:
        raise ThreadlineError(f"pip could not install {' '.join(requirements)} (exit {result.returncode})",
                              hint="see pip's message above; a local plugin folder needs a pyproject.toml")
    # a fresh process sees the new entry points without stale import caches
    subprocess.run([sys.executable, "-m", "threadline", "plugins"])


def _installed_editable_from(requirement: str) -> bool:
    """Whether `requirement` is a local project folder whose distribution is installed
    editable from that same folder (PEP 610's direct_url.json says so)."""
    import importlib.metadata as md
    import tomllib
    from urllib.parse import unquote, urlsplit

    folder = Path(requirement.split("[", 1)[0]).expanduser()
    try:
        with (folder / "pyproject.toml").open("rb") as handle:
            name = tomllib.load(handle)["project"]["name"]
        direct = json.loads(md.distribution(name).read_text("direct_url.json") or "{}")
    except (OSError, KeyError, ValueError, md.PackageNotFoundError):
        return False
    if not direct.get("dir_info", {}).get("editable"):
        return False
    return Path(unquote(urlsplit(direct.get("url", "")).path)).resolve() == folder.resolve()


# --------------------------------------------------------------------------- jobs


@cli.command("check")
@job_file_argument
def check_command(job_file: str) -> None:
    """Validate a job file and run every connector's check; print what passed."""
    from threadline.checks import check_job

    results = check_job(job_file)
    table = Table(title=f"check {job_file}")
    for col in ("kind", "name", "connector", "result"):
        table.add_column(col)
    for r in results:
        table.add_row(r.kind, r.name, r.connector, "[green]ok[/]" if r.ok else "[red]failed[/]")
    console.print(table)
    for r in results:
        if not r.ok:
            err.print(f"[red]{r.kind} {r.name} ({r.connector}):[/] {redact(r.message)}", markup=True)
    if not all(r.ok for r in results):
        sys.exit(2)


@cli.command("sync")
@job_file_argument
@click.option("--only", multiple=True, help="Sync only this source, or source.stream (repeatable).")
@click.option("--wait", is_flag=True, help="If the job is already running, wait for it instead of stopping.")
@click.option("--follow", is_flag=True, help="Keep running micro-batches until Ctrl-C or SIGTERM (near real time).")
@click.option("--every", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="With --follow: seconds from the start of one micro-batch to the next (a longer one is followed at once).")
@click.option("--max-events", type=click.IntRange(min=1), default=1000, show_default=True,
              help="With --follow: start a micro-batch as soon as this many records wait.")
@click.pass_context
def sync_command(ctx: click.Context, job_file: str, only: tuple[str, ...], wait: bool, follow: bool, every: float,
                 max_events: int) -> None:
    """Run a sync job: sources → destinations, with progress and a summary. With --follow, one
    warm process runs it as micro-batches (see threadline/engine/follow.py)."""
    from threadline.cli.progress import make_progress
    from threadline.engine import run_job
    from threadline.job import load_job

    job = load_job(job_file)
    if follow:
        from threadline.cli.follow import follow_job

        sys.exit(follow_job(job, only=list(only) or None, every=every, max_events=max_events, say=err.print))
    with make_progress(ctx.obj["log_format"], err) as progress:
        report = run_job(job, only=list(only) or None, progress=progress, wait=wait)
    print_report(report)
    if report.outcome == "paused":
        sys.exit(EXIT_PAUSED)
    if report.outcome == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    if not report.ok:
        sys.exit(1)


def print_report(report: Any) -> None:
    table = Table(title=f"run {report.run_id} · {report.outcome} · {report.seconds:.1f}s")
    for col in ("source", "stream", "mode", "read", "written", "rejected", "rows/s", "outcome"):
        table.add_column(col, justify="right" if col in ("read", "written", "rejected", "rows/s") else "left")
    for s in report.streams:
        table.add_row(s.source, s.stream, s.sync_mode, f"{s.rows_read:,}", f"{s.rows_written:,}",
                      f"{s.rows_rejected:,}", f"{s.rate:,.0f}",
                      "[green]ok[/]" if s.outcome == "succeeded"
                      else f"[yellow]{s.outcome}[/]" if s.outcome in ("paused", "interrupted") else f"[red]{s.outcome}[/]")
    console.print(table)
    for s in report.streams:
        if s.note:
            err.print(f"{s.source}.{s.stream} [yellow]note:[/] {escape(redact(s.note))}")
        if s.error:
            verb = {"paused": "[yellow]paused:[/]", "interrupted": "[yellow]interrupted:[/]"}.get(s.outcome, "[red]failed:[/]")
            err.print(f"{s.source}.{s.stream} {verb} {escape(redact(s.error))}")
    for step in report.steps:
        if step.ok:
            console.print(f"{step.destination} {step.step}: {step.outcome}" + (f" — {step.summary}" if step.summary else ""))
        else:
            err.print(f"{step.destination} {step.step} [red]failed:[/] {redact(step.error or '')}")
    if report.quarantine:
        console.print(f"rejected rows and their reasons: {report.quarantine}")


@cli.group("state")
def state_group() -> None:
    """Show or reset the saved state of a job's streams."""


@state_group.command("show")
@job_file_argument
def state_show(job_file: str) -> None:
    """Print each stream's saved state (cursors, files read, ...)."""
    from threadline.job import load_job
    from threadline.state import StateStore

    job = load_job(job_file, require_env=False)  # state holds no secret: showing it needs none
    store = StateStore(job.state_dir)
    rows = store.all_states(job.name)
    if not rows:
        console.print(f"no saved state for job {job.name!r} (nothing synced yet)")
    for source, stream, destination, state, at in rows:
        console.print(f"[bold]{escape(source)}.{escape(stream)}[/] → {escape(destination or '(any destination)')} (saved {at})")
        console.print_json(json.dumps(state, default=str))


@state_group.command("reset")
@job_file_argument
@click.option("--source", help="Only this source.")
@click.option("--stream", help="Only this stream (with --source).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def state_reset(job_file: str, source: str | None, stream: str | None, yes: bool) -> None:
    """Forget saved state, so the next sync reads everything again."""
    from threadline.job import load_job
    from threadline.state import StateStore

    job = load_job(job_file, require_env=False)
    store = StateStore(job.state_dir)
    _check_reset_selector(job, store, source, stream)
    what = ".".join(x for x in (source, stream) if x) or "every stream"
    if not yes and not click.confirm(f"forget the state of {what} in job {job.name!r}?"):
        return
    n = store.reset(job.name, source, stream)
    console.print(f"forgot the state of {n} stream(s)")


def _check_reset_selector(job: Any, store: Any, source: str | None, stream: str | None) -> None:
    """A mistyped --source or --stream is an error, not a reset of nothing that looks done."""
    from threadline.names import unknown_name

    if stream and not source:
        raise click.UsageError("--stream needs --source (the source the stream belongs to)")
    if source and source not in job.sources:
        raise unknown_name("source", source, list(job.sources), where="--source")
    if stream:
        declared = job.sources[source].streams or {}
        saved = {st for src, st, *_ in store.all_states(job.name) if src == source}
        known = sorted(saved | set(declared))
        if stream not in known:
            raise unknown_name(f"stream with saved state in source {source!r}", stream, known, where="--stream")


@cli.command("runs")
@job_file_argument
@click.option("--limit", default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs_command(job_file: str, limit: int, as_json: bool) -> None:
    """Show the job's run history: rows read, written and rejected, duration, outcome, and the figures
    sources report (a replication slot's lag)."""
    from threadline.job import load_job
    from threadline.state import StateStore

    job = load_job(job_file, require_env=False)
    runs = StateStore(job.state_dir).runs(job.name, limit)
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in runs], default=str))
        return
    table = Table(title=f"runs of {job.name}")
    followed = any(r.latency for r in runs)  # follow mode's micro-batches: arrival → audiences pushed
    for col in ("run", "started", "outcome", "streams", "read", "written", "rejected", "seconds", "source figures",
                "after the streams", *(["event→audience p50/p99"] if followed else [])):
        table.add_column(col)
    for r in runs:
        figures = "\n".join(f"{s.source}.{s.stream}: " + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}"
                                                                    for k, v in s.metrics.items())
                            for s in r.streams if s.metrics)
        steps = ", ".join(f"{s.destination} {s.step} {s.outcome}" for s in r.steps) or "-"
        latency = [f"{r.latency.p50:.2f}s / {r.latency.p99:.2f}s" if r.latency else "-"] if followed else []
        table.add_row(r.run_id, r.started_at, r.outcome, str(len(r.streams)),
                      f"{sum(s.rows_read for s in r.streams):,}", f"{sum(s.rows_written for s in r.streams):,}",
                      f"{sum(s.rows_rejected for s in r.streams):,}", f"{sum(s.seconds for s in r.streams):.1f}", figures,
                      steps, *latency)
    console.print(table)


@cli.command("discover")
@job_file_argument
@click.option("--source", "source_name", help="Only this source.")
def discover_command(job_file: str, source_name: str | None) -> None:
    """Print the streams each source offers, with schema, primary key and cursor."""
    from threadline.job import load_job

    from threadline.names import unknown_name

    job = load_job(job_file)
    reg = plugins.registry()
    if source_name and source_name not in job.sources:
        raise unknown_name("source", source_name, list(job.sources), where="--source")
    for name, src in job.sources.items():
        if source_name and name != source_name:
            continue
        source = reg.source(src.connector)
        config = job.validate_config(("sources", name, "config"), source.spec, src.config)
        for stream in source.discover(config):
            d = stream.describe()
            console.print(f"[bold]{name}.{d['name']}[/]  key={d['primary_key']} cursor={d['cursor_field']} "
                          f"modes={','.join(d['sync_modes'])}")
            for f in d["fields"]:
                console.print(f"    {f['name']}: {f['type']}")


def _add_package_commands() -> None:
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


def main() -> None:
    _add_package_commands()
    try:
        cli(prog_name="threadline")
    finally:
        # What is alive now (modules, pydantic models, Arrow and DuckDB objects) lives until the
        # process ends, and the interpreter's last garbage collections at exit would traverse
        # all of it: ~0.1 CPU-s of every command (a sync, bench B1). Frozen, it is still freed
        # as the modules are cleared; only cycles are left to the OS, which frees the process.
        # atexit handlers (logging's flush among them) run as before.
        gc.freeze()
