"""`threadline new connector NAME` / `threadline new destination NAME`: a new plugin package from
threadline's template — installable, registered through the `threadline` entry point, with a
README config table and contract tests that pass before you change a line.

The template is a folder of files (`connector_template/source` and `.../destination` in the
repository, `threadline/_template` in a wheel). Paths and the contents of `*.tmpl` files have
`{{placeholders}}` replaced (see `placeholders`); other files are copied as they are.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import sys
from pathlib import Path

import click

from threadline.errors import ConfigError

KINDS = {"connector": "source", "destination": "destination"}  # command word → template folder
TEMPLATE_SUFFIX = ".tmpl"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_SKIP = {"__pycache__", ".pytest_cache"}


def template_root() -> Path:
    """The template folder: packaged with threadline, or the repository's connector_template/."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "_template", here.parents[3] / "connector_template"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "threadline's connector template is not installed alongside it",
        hint="install threadline from its repository (pip install -e .) to get connector_template/",
    )


def placeholders(name: str) -> dict[str, str]:
    """`my_crm` → name my_crm, dist my-crm, Class MyCrm, title My Crm, NAME MY_CRM."""
    parts = name.split("_")
    return {
        "name": name,
        "dist": name.replace("_", "-"),
        "Class": "".join(p.capitalize() for p in parts),
        "title": " ".join(p.capitalize() for p in parts if p),
        "NAME": name.upper(),
    }


def render_text(text: str, values: dict[str, str], where: str = "") -> str:
    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ValueError(f"{where}: unknown placeholder {{{{{key}}}}} (known: {', '.join(sorted(values))})")
        return values[key]

    return _PLACEHOLDER.sub(substitute, text)


def check_name(name: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name) or "__" in name or name.endswith("_"):
        raise ConfigError(
            f"{name!r} cannot name a plugin",
            hint="use lower-case letters, digits and single underscores, starting with a letter: my_crm",
        )


def check_name_is_free(kind: str, name: str) -> None:
    """A new plugin must not take the name of an installed one: its entry point would shadow
    or clash with it, and `connector: NAME` in a job would mean two things."""
    import importlib.metadata as md

    from threadline.plugins import registry

    taken = {ep.name: ep.dist.name if ep.dist else "?" for ep in md.entry_points(group="threadline")}
    reg = registry()
    if name in taken:
        owner = taken[name]
    elif kind == "connector" and name in reg.sources:
        owner = reg.owners.get(("source", name)).distribution if reg.owners.get(("source", name)) else "?"
    elif kind == "destination" and name in reg.destinations:
        owner = reg.owners.get(("destination", name)).distribution if reg.owners.get(("destination", name)) else "?"
    else:
        return
    raise ConfigError(f"{name!r} is already the name of an installed plugin ({owner})",
                      hint=f"choose another NAME, e.g. my_{name}; `threadline plugins` lists the names taken")


def render(kind: str, name: str, target: Path) -> list[Path]:
    """Render the `kind` template ('connector' or 'destination') for `name` into `target`
    (which must not exist, or be empty); returns the files written."""
    check_name(name)
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} already exists and is not empty", hint="choose another NAME or --into folder")
    root = template_root() / KINDS[kind]
    values = placeholders(name)
    written: list[Path] = []
    for source in sorted(root.rglob("*")):
        relative = source.relative_to(root)
        if source.is_dir() or _SKIP.intersection(relative.parts):
            continue
        out = target / render_text(str(relative), values, str(relative))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.name.endswith(TEMPLATE_SUFFIX):
            out = out.with_name(out.name[: -len(TEMPLATE_SUFFIX)])
            out.write_text(render_text(source.read_text(encoding="utf-8"), values, str(relative)), encoding="utf-8")
        else:
            shutil.copyfile(source, out)
        written.append(out)
    return written


def _shell_path(path: Path) -> str:
    """`path` relative to the current folder when it is under it (shorter to copy), else absolute."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def _default_parent(kind: str) -> Path:
    """connectors/ or destinations/ when run at the root of a threadline-style repository."""
    folder = Path("connectors" if kind == "connector" else "destinations")
    return folder if folder.is_dir() else Path(".")


def _create(kind: str, name: str, into: str | None) -> None:
    target = (Path(into) if into else _default_parent(kind)) / name
    check_name(name)
    check_name_is_free(kind, name)
    files = render(kind, name, target)
    values = placeholders(name)
    package = f"threadline_{name}"
    click.echo(f"created {target}/ (threadline-{values['dist']}), {len(files)} files:")
    for path in files:
        click.echo(f"  {path.relative_to(target)}")
    module = "source.py" if kind == "connector" else "destination.py"
    # the Python threadline runs in: a plain `pip` may belong to another environment
    python = _shell_path(Path(sys.executable))
    steps = [
        # `\[`: the extra survives zsh's globbing as well as bash's
        (f"{python} -m pip install -e {target}\\[test\\]", f"registers `{name}` with threadline, with what its tests need"),
        (f"{python} -m pytest {target / 'tests'}", "the contract suite, passing as rendered"),
    ]
    if kind == "connector":
        steps.append((f"threadline sandbox {name}", "its sandbox API, to try by hand"))
    width = max(len(step) for step, _ in steps) + 2
    click.echo("\nnext steps:")
    for step, why in steps:
        click.echo(f"  {step.ljust(width)}# {why}")
    click.echo(f"then edit {target / package / module} and the README's config table; keep the tests passing.")


@click.group("new")
def command() -> None:
    """Start a new plugin package from threadline's template (tests pass as rendered)."""


@command.command("connector")
@click.argument("name")
@click.option("--into", type=click.Path(file_okay=False), help="Parent folder (default: ./connectors if it exists, else .).")
def new_connector(name: str, into: str | None) -> None:
    """A source plugin NAME: a declarative REST stream, its sandbox, README and contract tests."""
    _create("connector", name, into)


@command.command("destination")
@click.argument("name")
@click.option("--into", type=click.Path(file_okay=False), help="Parent folder (default: ./destinations if it exists, else .).")
def new_destination(name: str, into: str | None) -> None:
    """A destination plugin NAME: a working SQLite writer to adapt, README and contract tests."""
    _create("destination", name, into)
