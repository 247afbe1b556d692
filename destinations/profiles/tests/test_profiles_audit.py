"""The audit log: every access is an entry, no entry names a person, and tampering shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from threadline_profiles.audit import log
from threadline_profiles.testing import Lander

MAPPING = {"crm.contacts": {"identifiers": {"email": "email", "phone": "phone"}, "traits": {"first_name": "first_name"},
                            "cleaning": {"phone_region": "US"}}}
CRM = [
    {"id": 1, "email": "Kelly.Neal@example.com", "phone": "(512) 353-5601", "first_name": "Kelly"},
    {"id": 2, "email": "sam.lee@example.com", "phone": "(512) 353-5602", "first_name": "Sam"},
]


def landed(store_config: dict) -> Lander:
    lander = Lander({**store_config, "mappings": MAPPING})
    lander.land("crm", "contacts", CRM)
    lander.build()
    return lander


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "threadline", "--log-format", "plain", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "COLUMNS": "200"}, timeout=120)


def test_an_entry_names_the_person_by_keyed_hash_and_the_same_person_by_any_spelling(store_config):
    with landed(store_config).store() as store:
        log.record(store, who="tok_a", action="lookup", subject=log.person(store, email=" KELLY.NEAL@example.com"),
                   reason="ticket 123", result="ok: 1 profile(s)")
        found = log.entries(store, subject=log.person(store, email="kelly.neal@example.com"))
        assert [(e.who, e.action, e.reason) for e in found] == [("tok_a", "lookup", "ticket 123")]
        assert "kelly" not in json.dumps([e.to_dict() for e in log.entries(store)]).lower()
        assert log.entries(store, subject=log.person(store, email="sam.lee@example.com")) == []


def test_an_email_or_phone_pasted_into_the_reason_is_not_kept(store_config):
    with landed(store_config).store() as store:
        log.record(store, who="tok_a", action="lookup", reason="customer kelly.neal@example.com called from +15123535601",
                   result="ok")
        [entry] = log.entries(store)
        assert "kelly.neal" not in entry.reason and "5123535601" not in entry.reason


def test_an_untouched_log_verifies(store_config):
    with landed(store_config).store() as store:
        for n in range(3):
            log.record(store, who="tok_a", action="lookup", subject=log.person(store, profile_id=f"p{n}"), result="ok")
        checked = log.verify(store)
        assert checked.ok and checked.entries == 3 and checked.head.startswith("3:")


@pytest.mark.parametrize("tamper, problem", [
    ("UPDATE tl_audit_log SET who = 'tok_b' WHERE seq = 2", "entry 2 was modified"),
    ("UPDATE tl_audit_log SET result = 'not found' WHERE seq = 1", "entry 1 was modified"),
    ("DELETE FROM tl_audit_log WHERE seq = 2", "entry 2 missing"),
    ("DELETE FROM tl_audit_log WHERE seq = 3", "newest entries were removed"),
], ids=["who-changed", "result-changed", "middle-deleted", "last-deleted"])
def test_a_modified_or_deleted_entry_is_detected(store_config, tamper, problem):
    with landed(store_config).store() as store:
        for n in range(3):
            log.record(store, who="tok_a", action="lookup", subject=log.person(store, profile_id=f"p{n}"), result="ok")
        store.engine.execute(tamper)
        checked = log.verify(store)
        assert not checked.ok and any(problem in b for b in checked.breaks), checked.breaks


def test_cutting_off_the_newest_entries_and_moving_the_head_back_is_detected(store_config):
    with landed(store_config).store() as store:
        for n in range(3):
            log.record(store, who="tok_a", action="lookup", subject=log.person(store, profile_id=f"p{n}"), result="ok")
        second = log.entries(store)[1]
        store.engine.execute("DELETE FROM tl_audit_log WHERE seq = 3")
        store.engine.execute(f"UPDATE tl_meta SET value = '2:{second.entry_hash}' WHERE key = 'audit_head'")
        checked = log.verify(store)
        assert not checked.ok and any("record of the last entry was altered" in b for b in checked.breaks)


def test_a_recomputed_plain_hash_does_not_pass_for_the_real_one(store_config):
    """Whoever edits an entry cannot re-seal it without the store's secret: the chain is keyed."""
    import hashlib

    with landed(store_config).store() as store:
        log.record(store, who="tok_a", action="lookup", result="ok")
        entry = log.entries(store)[0]
        forged = hashlib.sha256(json.dumps([entry.seq, entry.logged_at, "tok_b"]).encode()).hexdigest()
        store.engine.execute(f"UPDATE tl_audit_log SET who = 'tok_b', entry_hash = '{forged}'")
        store.engine.execute(f"UPDATE tl_meta SET value = '1:{forged}' WHERE key = 'audit_head'")
        assert not log.verify(store).ok


def test_the_cli_lookup_preview_and_forget_write_entries_and_audit_lists_and_verifies_them(tmp_path, store_config):
    landed(store_config)
    path = store_config["path"]
    assert cli("profiles", "get", "--path", path, "--email", "kelly.neal@example.com", "--reason", "ticket 9",
               cwd=tmp_path).returncode == 0
    assert cli("profiles", "get", "--path", path, "--email", "nobody@example.com", cwd=tmp_path).returncode == 1
    assert cli("forget", "--path", path, "--email", "sam.lee@example.com", "--yes", "--no-push", cwd=tmp_path).returncode == 0
    listed = cli("audit", "--path", path, "--json", cwd=tmp_path)
    entries = json.loads(listed.stdout)
    assert [(e["action"], e["result"]) for e in entries] == [
        ("lookup", "ok: 1 profile(s)"), ("lookup", "not found"), ("erasure", "ok: 1 profile(s), 1 record(s), 2 tombstone(s)")]
    assert entries[0]["reason"] == "ticket 9" and all(e["who"].startswith("cli:") for e in entries)
    about_kelly = json.loads(cli("audit", "--path", path, "--email", "Kelly.Neal@example.com", "--json", cwd=tmp_path).stdout)
    assert [e["seq"] for e in about_kelly] == [1]
    verified = cli("audit", "--path", path, "--verify", cwd=tmp_path)
    assert verified.returncode == 0 and "audit log intact: 5 entries" in verified.stdout  # the two listings are entries too
    with Lander({**store_config, "mappings": MAPPING}).store() as store:
        text = json.dumps([e.to_dict() for e in log.entries(store)]).lower()
        assert "kelly" not in text and "sam.lee" not in text and "5123535602" not in text


def test_audit_verify_exits_1_naming_the_altered_entry(tmp_path, store_config):
    landed(store_config)
    path = store_config["path"]
    cli("profiles", "get", "--path", path, "--email", "kelly.neal@example.com", cwd=tmp_path)
    from threadline_profiles.engines.duckdb_crypto import connect_file

    with connect_file(Path(path)) as con:  # the store as it is, encrypted or not
        con.execute("UPDATE tl_audit_log SET reason = 'routine' WHERE seq = 1")
    verified = cli("audit", "--path", path, "--verify", cwd=tmp_path)
    assert verified.returncode == 1 and "entry 1 was modified" in verified.stdout


def test_the_log_verifies_on_postgres_and_an_edit_shows(pg_schema, tmp_path):
    config = {"engine": "postgres", "schema": pg_schema, "report_dir": str(tmp_path), "resolve_on_finish": False}
    with Lander(config).store() as store:
        for n in range(3):
            log.record(store, who="tok_a", action="erasure", subject=log.person(store, email=f"x{n}@example.com"), result="ok")
        assert log.verify(store).ok
        store.engine.execute("UPDATE tl_audit_log SET action = 'lookup' WHERE seq = 2")
        assert [b for b in log.verify(store).breaks if "entry 2 was modified" in b]
