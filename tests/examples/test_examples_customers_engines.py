"""The customers example on both engines: job.yaml (DuckDB) and job_postgres.yaml (Postgres)
give the same profiles, golden records, lookups and report, and a second build of each is
incremental and changes nothing."""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
LOOKUPS = [("--email", "sofia.jones102@example.com"), ("--email", "test@test.com"), ("--phone", "+15123535655")]


def postgres_unreachable() -> str:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: skip, saying why
        return f"no PostgreSQL server reachable at {PG_DSN.split('@')[-1]} ({type(exc).__name__})"


@pytest.fixture
def pg_schema():
    reason = postgres_unreachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"tl_example_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def threadline(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "threadline", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=600, env={**os.environ, **env})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def published(job: str, folder: Path, env: dict[str, str]) -> dict:
    """Profiles as sets of records, golden records by profile, and the last build's report."""
    from threadline_profiles import ProfileStore
    from threadline_profiles.cli.profiles import store_config

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        config = store_config(str(folder / job), None, None, None, None)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    with ProfileStore.open(config) as store:
        e = store.engine
        groups: dict[str, set[str]] = {}
        for r in e.rows("SELECT profile_id, record_key FROM tl_members"):
            groups.setdefault(r["profile_id"], set()).add(r["record_key"])
        name = {pid: tuple(sorted(keys)) for pid, keys in groups.items()}
        return {
            "profiles": sorted(name.values()),
            "golden": sorted((name[r["profile_id"]], r["field"], r["value"], r["record_key"], r["rule"])
                             for r in e.rows("SELECT * FROM tl_golden")),
            "links": sorted((r["record_key"], r["linked_record_key"], r["rule"], r["key"]) for r in e.rows("SELECT * FROM tl_links")),
            "dq": sorted((r["source"], r["stream"], r["field"], r["status"], r["reason"], int(r["n"]))
                         for r in e.rows("SELECT * FROM tl_dq")),
            "report": e.scalar("SELECT report FROM tl_builds ORDER BY finished_at DESC LIMIT 1"),
        }


def lookups(job: str, folder: Path, env: dict[str, str]) -> list:
    found = []
    for option, value in LOOKUPS:
        out = threadline("profiles", "get", "--job", job, option, value, "--region", "US", "--json", cwd=folder, env=env)
        found.append(sorted(
            (sorted(m["record_key"] for m in p["members"]), sorted((k, g["value"], g["record_key"]) for k, g in p["golden"].items()))
            for p in json.loads(out.stdout)))
    return found


def test_the_customers_example_gives_the_same_profiles_on_duckdb_and_postgres(tmp_path, pg_schema):
    folder = tmp_path / "customers"
    shutil.copytree(ROOT / "examples" / "customers", folder,
                    ignore=shutil.ignore_patterns(".threadline", "*.duckdb*", "*_reports"))
    runs = {"job.yaml": {}, "job_postgres.yaml": {"THREADLINE_PG_DSN": PG_DSN, "THREADLINE_PG_SCHEMA": pg_schema}}
    results = {}
    for job, env in runs.items():
        sync = threadline("sync", job, cwd=folder, env=env)
        assert "records resolved into" in sync.stderr
        assert "full build (no earlier build to start from)" in sync.stderr, "the sync's log line says why a build was full"
        first = published(job, folder, env)
        assert first["report"] and Path(first["report"]).is_file()
        again = threadline("profiles", "build", "--job", job, cwd=folder, env=env)
        assert "incremental build (0 records resolved)" in again.stdout
        assert {k: v for k, v in published(job, folder, env).items() if k != "report"} == \
            {k: v for k, v in first.items() if k != "report"}
        results[job] = (first, lookups(job, folder, env))
    (duck, duck_found), (pg, pg_found) = results["job.yaml"], results["job_postgres.yaml"]
    assert len(duck["profiles"]) < sum(len(p) for p in duck["profiles"])  # records did merge
    for part in ("profiles", "golden", "links", "dq"):
        assert pg[part] == duck[part], part
    assert pg_found == duck_found
    assert [len(p) for p in duck_found] == [1, 3, 1]  # one person; the placeholder's three holders kept apart
    assert Path(pg["report"]).parent.name == "profiles_postgres_reports"
