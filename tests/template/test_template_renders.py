"""`threadline new` renders plugins that install and pass their own contract tests.

What CI does for the template, for real: render a connector and a destination with the CLI
(a subprocess), pip-install both (editable, no deps) into a throwaway virtualenv that sees
this environment's packages — so the shared environment is never changed — and run each
rendered package's own tests with pytest in a subprocess.
"""

import importlib.util
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.template_install

CONNECTOR, DESTINATION = "tmpl_probe_crm", "tmpl_probe_store"


def run(args, cwd, timeout=240):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Both plugins rendered by the CLI and installed into a fresh virtualenv."""
    root = tmp_path_factory.mktemp("template")
    outputs = {}
    for kind, name in (("connector", CONNECTOR), ("destination", DESTINATION)):
        done = run([sys.executable, "-m", "threadline", "new", kind, name, "--into", str(root)], cwd=root)
        assert done.returncode == 0, done.stderr
        outputs[kind] = done.stdout
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root).check_returncode()
    python = str(venv / "bin" / "python")
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]  # threadline, pytest, pip and hatchling come from here
    Path(purelib, "_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    # Offline and fast when hatchling is installed here; else pip fetches it for an isolated build.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    done = run([python, "-m", "pip", "install", "--quiet", "--no-deps", *isolation,
                "-e", str(root / CONNECTOR), "-e", str(root / DESTINATION)], cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"root": root, "python": python, "outputs": outputs}


def passed_count(output):
    tail = output.strip().splitlines()[-1]
    assert "failed" not in tail and "error" not in tail, output[-4000:]
    return int(tail.split(" passed")[0].split()[-1])


def test_the_rendered_connector_passes_its_contract_tests(rendered):
    done = run([rendered["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=rendered["root"] / CONNECTOR)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert passed_count(done.stdout) >= 13


def test_the_rendered_destination_passes_its_contract_tests(rendered):
    done = run([rendered["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=rendered["root"] / DESTINATION)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert passed_count(done.stdout) >= 10


def test_installed_plugins_register_through_the_entry_point(rendered):
    done = run([rendered["python"], "-m", "threadline", "plugins", "--json"], cwd=rendered["root"])
    assert done.returncode == 0, done.stderr
    plugins = {p["name"]: p for p in json.loads(done.stdout)}
    assert plugins[CONNECTOR]["sources"] == [CONNECTOR] and plugins[CONNECTOR]["sandboxes"] == [CONNECTOR]
    assert plugins[DESTINATION]["destinations"] == [DESTINATION]


def test_new_prints_the_next_steps_a_user_types(rendered):
    out = rendered["outputs"]["connector"]
    target = rendered["root"] / CONNECTOR
    assert f"pip install -e {target}" in out
    assert f"pytest {target / 'tests'}" in out
    assert f"threadline sandbox {CONNECTOR}" in out


def test_the_rendered_readme_has_a_config_table_naming_every_field(rendered):
    readme = (rendered["root"] / CONNECTOR / "README.md").read_text()
    for field in ("base_url", "api_key", "page_size", "backoff_base"):
        assert f"| `{field}` |" in readme
    assert "{{" not in readme and "${TMPL_PROBE_CRM_API_KEY}" in readme


@pytest.mark.parametrize("name", ["MyCrm", "my-crm", "class"])
def test_new_refuses_a_name_that_cannot_be_a_package(tmp_path, name):
    done = run([sys.executable, "-m", "threadline", "new", "connector", name, "--into", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot name a plugin" in done.stderr and not any(tmp_path.iterdir())


def test_new_refuses_to_write_into_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "keep.txt").write_text("mine")
    done = run([sys.executable, "-m", "threadline", "new", "destination", "acme", "--into", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 2 and "not empty" in done.stderr
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["keep.txt"]


def test_new_tells_to_install_with_threadlines_python_and_the_test_extra(rendered):
    out = rendered["outputs"]["connector"]
    assert f"-m pip install -e {rendered['root'] / CONNECTOR}\\[test\\]" in out
    assert "-m pytest" in out
    pyproject = (rendered["root"] / CONNECTOR / "pyproject.toml").read_text()
    assert "\ntest = [" in pyproject and "\ndev = [" in pyproject  # dev.py installs `dev`
    readme = (rendered["root"] / CONNECTOR / "README.md").read_text()
    assert "python -m pip install -e '.[test]'" in readme


@pytest.mark.parametrize("kind, name", [("connector", "files"), ("destination", "duckdb"), ("connector", "rest")])
def test_new_refuses_the_name_of_an_installed_plugin(tmp_path, kind, name):
    done = run([sys.executable, "-m", "threadline", "new", kind, name, "--into", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 2
    assert f"{name!r} is already the name of an installed plugin" in done.stderr and not any(tmp_path.iterdir())


def test_install_keeps_a_plugin_installed_editable_from_that_folder_editable():
    from threadline.cli import _installed_editable_from

    root = Path(__file__).resolve().parents[2]
    assert _installed_editable_from(str(root / "connectors" / "files"))  # dev.py installs every plugin editable
    assert not _installed_editable_from(str(root / "connector_template"))  # no project there
