"""`threadline install` adds a plugin to the running environment; observer hooks see runs."""

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pyarrow as pa

from threadline import hookimpl
from threadline.engine import run_job
from threadline.plugins import load_registry

PLUGIN = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling>=1.21"]
        build-backend = "hatchling.build"

        [project]
        name = "threadline-acme"
        version = "0.3.0"

        [project.entry-points.threadline]
        acme = "threadline_acme"
    """,
    "threadline_acme/__init__.py": """
        from threadline import hookimpl
        from threadline_files.source import FilesSource

        class AcmeSource(FilesSource):
            name = "acme"

        @hookimpl
        def register_sources(register):
            register(AcmeSource)
    """,
}


def test_install_adds_a_local_plugin_and_lists_what_it_registered(tmp_path):
    for name, text in PLUGIN.items():
        (tmp_path / "acme" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "acme" / name).write_text(textwrap.dedent(text))
    # a throwaway environment layered over this one, so the test never changes the shared venv
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")

    out = subprocess.run([python, "-m", "threadline", "install", str(tmp_path / "acme")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "threadline-acme" in out.stdout and "acme" in out.stdout and "0.3.0" in out.stdout
    listed = subprocess.run([python, "-m", "threadline", "plugins", "--json"], capture_output=True, text=True)
    assert '"sources": [\n      "acme"\n    ]' in listed.stdout or '"acme"' in listed.stdout


def test_a_failed_install_says_so_and_exits_nonzero(tmp_path):
    (tmp_path / "empty").mkdir()
    out = subprocess.run([sys.executable, "-m", "threadline", "install", str(tmp_path / "empty")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "pip could not install" in out.stderr and "pyproject.toml" in out.stderr


class Observer:
    events: list = []

    @staticmethod
    @hookimpl
    def run_started(run):
        Observer.events.append(("started", run.run_id))

    @staticmethod
    @hookimpl
    def batch_written(run, target, rows):
        Observer.events.append(("batch", target.table, rows))

    @staticmethod
    @hookimpl
    def run_finished(run, report):
        Observer.events.append(("finished", report.outcome, report.stream("app", "people").rows_written))


def test_observer_plugins_see_a_run_start_its_batches_and_its_end(memory):
    memory.source.records = [{"id": i, "email": "x", "updated_at": memory.ts(1, i)} for i in range(3)]
    registry = load_registry(extra_plugins=[Observer])
    registry.sources["memory"], registry.destinations["memory"] = memory.source, memory.destination
    Observer.events = []
    report = run_job(memory.job(), registry=registry)
    assert Observer.events[0] == ("started", report.run_id)
    assert [e for e in Observer.events if e[0] == "batch"] == [("batch", "app__people", 2), ("batch", "app__people", 1)]
    assert Observer.events[-1] == ("finished", "succeeded", 3)
