"""The example jobs in examples/ run end to end, as their headers say, on free loopback ports."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def threadline(*args, cwd, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "threadline", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def copy_example(name: str, into: Path) -> Path:
    shutil.copytree(ROOT / "examples" / name, into / name, ignore=shutil.ignore_patterns(".threadline", "*.duckdb*", "*_reports"))
    return into / name


def landed(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()]
        return {t: con.execute(f'select count(*) from "{t}"').fetchall()[0][0] for t in tables}
    finally:
        con.close()


def test_the_customers_example_unifies_its_three_sources_into_profiles(tmp_path):
    folder = copy_example("customers", tmp_path)
    out = threadline("sync", "job.yaml", cwd=folder)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "records resolved into" in out.stderr
    found = threadline("profiles", "get", "--job", "job.yaml", "--email", "sofia.jones102@example.com", "--json", cwd=folder)
    assert found.returncode == 0, found.stderr
    (profile,) = json.loads(found.stdout)
    members = sorted(m["record_key"].split(":")[0] for m in profile["members"])
    assert members == ["crm.customers", "email.subscribers", "loyalty.cards"]  # one person, three systems
    # three front-desk records share the placeholder test@test.com: blocked, so never merged
    shared = threadline("profiles", "get", "--job", "job.yaml", "--email", "test@test.com", "--json", cwd=folder)
    assert [len(p["members"]) for p in json.loads(shared.stdout)] == [1, 1, 1]


@pytest.mark.parametrize("example, sandboxes, urls", [
    ("crm", ["hubspot", "salesforce", "zendesk", "shopify"],
     {"HUBSPOT_URL": "", "SALESFORCE_LOGIN_URL": "", "ZENDESK_URL": "", "SHOPIFY_URL": ""}),
    ("engagement", ["mailchimp", "klaviyo", "x", "loyaltylion"],
     {"MAILCHIMP_URL": "/3.0", "KLAVIYO_URL": "/api", "X_URL": "/2", "LOYALTYLION_URL": "/v2"}),
])
def test_a_vendor_example_syncs_every_stream_from_its_sandboxes(tmp_path, example, sandboxes, urls):
    folder = copy_example(example, tmp_path)
    ports = free_ports(len(sandboxes))
    env = {var: f"http://127.0.0.1:{port}{suffix}" for (var, suffix), port in zip(urls.items(), ports)}
    names = [f"{name}={port}" for name, port in zip(sandboxes, ports)]
    out = threadline("sandbox", *names, "--run", "threadline sync job.yaml", cwd=folder, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    counts = landed(folder / "warehouse.duckdb")
    for source in sandboxes:
        tables = {t: n for t, n in counts.items() if t.startswith(f"{source}__")}
        assert tables and sum(tables.values()) > 0, f"{source} landed nothing: {counts}"
