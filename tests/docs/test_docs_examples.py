"""Docs that run: every YAML block in the READMEs parses, and the main README's job file
passes `threadline check` as a user would run it (issue 13, "docs that don't match")."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from threadline.job import load_job
from threadline.sandbox import CustomersSandbox

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "node_modules", ".git"}


def markdown_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.md") if not SKIP.intersection(p.relative_to(ROOT).parts))


def yaml_blocks(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every ```yaml block."""
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"```ya?ml\n(.*?)```", text, re.S)]


BLOCKS = [(path, line, block) for path in markdown_files() for line, block in yaml_blocks(path)]


@pytest.mark.parametrize("path, line, block", BLOCKS, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in BLOCKS])
def test_every_yaml_block_in_the_docs_parses(path, line, block):
    try:
        yaml.safe_load(block)
    except yaml.YAMLError as exc:
        pytest.fail(f"{path.relative_to(ROOT)}:{line}: {exc}")


def readme_job() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### A job file"):]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_readmes_job_file_passes_check(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm_2024.csv").write_text("customer_id,email,signup_date\n1,ana@example.com,01/31/24\n")
    (tmp_path / "job.yaml").write_text(readme_job())
    with CustomersSandbox(seed=1) as api:
        env = {**os.environ, "SHOP_API_URL": api.base_url, "SHOP_API_TOKEN": CustomersSandbox.TOKEN}
        out = subprocess.run([sys.executable, "-m", "threadline", "check", "job.yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok") >= 4  # two sources, one destination, the job's streams


@pytest.mark.parametrize("job", sorted(ROOT.glob("examples/*/job*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_job_file_loads(job):
    assert load_job(job, require_env=False).name
