"""The canary test: a secret and a person planted in a job's config and data, then every
output searched. The job syncs a CSV (one of the person's rows is quarantined) into a profile
store that pushes an audience to Klaviyo's sandbox; then `forget` runs while Klaviyo is down.

- The secrets (the Klaviyo key, the store secret) are never found: not in logs at any level,
  plain or JSON, errors, reports, state, run history, quarantine, nor the store file.
- The person is never found in logs, errors, reports, state or run history, and after
  `forget` nowhere at all: quarantine, push ledger and the store file's bytes included.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

klaviyo = pytest.importorskip("threadline_klaviyo_lists", reason="threadline-klaviyo-lists is not installed")
from threadline_klaviyo_lists.sandbox import KlaviyoListsSandbox  # noqa: E402

PERSON = {"id": "77", "email": "Zephyrine.Quillfeather@Canary-Mail.example", "phone": "(737) 214-8890",
          "first_name": "Zephyrine", "last_name": "Quillfeather", "signup": "2024-03-02"}
PERSON_TRACES = ("quillfeather", "zephyrine", "7372148890", "214-8890")
STORE_SECRET = "store-secret-canary-5d1f0c3b9a7e6d2c8b4a"
OTHERS = [{"id": str(i), "email": f"member.{i}@example.com", "phone": f"(512) 353-{6000 + i:04d}", "first_name": "Ann",
           "last_name": f"Lee{i}", "signup": "2024-01-01"} for i in range(40)]


def person_in(text: str) -> list[str]:
    low = text.lower()
    return [t for t in PERSON_TRACES if t in low]


def write_job(folder: Path, base_url: str) -> Path:
    with (folder / "contacts.csv").open("w", newline="") as out:
        rows = csv.DictWriter(out, fieldnames=list(PERSON))
        rows.writeheader()
        rows.writerows([*OTHERS, PERSON, {**PERSON, "id": "78", "signup": "not a date"}])  # her second row is quarantined
    job = folder / "job.yaml"
    job.write_text(f"""
name: canary
max_rejected_share: 0.5
sources:
  crm:
    connector: files
    config:
      streams:
        - name: contacts
          path: contacts.csv
          primary_key: [id]
          columns: {{signup: {{type: date}}, phone: {{type: string}}, id: {{type: string}}}}
destinations:
  store:
    connector: profiles
    config:
      path: store/profiles.duckdb
      encryption: off                # its bytes readable: the key holder's view of what is left
      mappings:
        crm.contacts:
          identifiers: {{email: email, phone: phone}}
          traits: {{first_name: first_name, last_name: last_name}}
          cleaning: {{phone_region: US}}
      consent: {{defaults: {{email: granted}}}}
      audiences:
        everyone: {{where: "email is not null"}}
      activations:
        everyone_to_klaviyo:
          audience: everyone
          connector: klaviyo_lists
          config:
            api_key: ${{CANARY_KLAVIYO_KEY}}
            base_url: {base_url}/api
            list_id: {KlaviyoListsSandbox.AUDIENCE_LIST_ID}
            backoff_base: 0.01
            max_rate_limit_wait: 1
""")
    return job


def threadline(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("threadline")
    return subprocess.run([str(exe), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def files_text(*folders: Path) -> str:
    out = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.append(path.read_bytes().decode("latin-1"))
    return "\n".join(out)


def test_no_output_holds_a_secret_and_a_forgotten_person_is_nowhere(tmp_path):
    with KlaviyoListsSandbox(people=5, contacts=[r["email"].lower() for r in [*OTHERS, PERSON]]) as box:
        key = box.API_KEY
        env = {**os.environ, "CANARY_KLAVIYO_KEY": key, "THREADLINE_STORE_SECRET": STORE_SECRET}
        job = write_job(tmp_path, box.base_url)
        said = [threadline(tmp_path, env, "-vv", "sync", str(job)),
                threadline(tmp_path, env, "--log-format", "json", "-vv", "push", "--job", str(job)),
                threadline(tmp_path, env, "runs", str(job), "--json"),
                threadline(tmp_path, env, "state", "show", str(job))]
        assert said[0].returncode == 0, said[0].stderr[-3000:]
        assert PERSON["email"].lower() in box.list_emails(box.AUDIENCE_LIST_ID), "she was pushed to Klaviyo"
        quarantine = tmp_path / ".threadline" / "quarantine"
        assert person_in(files_text(quarantine)), "the test needs her in the quarantine before"
    # Klaviyo is down now: forget's removal push fails and is retried with lookup URLs naming her
    said += [threadline(tmp_path, env, "-vv", "forget", "--job", str(job), "--email", PERSON["email"], "--yes"),
             threadline(tmp_path, env, "--log-format", "json", "-vv", "push", "--job", str(job)),
             threadline(tmp_path, env, "--log-format", "json", "-v", "forget", "--job", str(job),
                        "--phone", PERSON["phone"], "--region", "US", "--yes")]
    forget_run = said[4]
    assert forget_run.returncode == 1, "the removal could not be pushed"
    assert "forgot 1 profile(s), 1 record(s)" in forget_run.stdout and "1 quarantined row(s) deleted" in forget_run.stdout
    assert "nobody in the profile store holds" in said[6].stdout, "forgotten already: nothing found"
    assert "retry" in forget_run.stderr.lower() and "/api/profiles" in forget_run.stderr, "the lookups were logged"

    outputs = "\n".join(p.stdout + p.stderr for p in said)
    stored = {"reports": files_text(tmp_path / "store" / "profiles_reports"),
              "state and run history": files_text(tmp_path / ".threadline"),
              "store file": files_text(tmp_path / "store")}
    for where, text in {"command output and logs": outputs, **stored}.items():
        assert key not in text and STORE_SECRET not in text, f"a secret is in the {where}"
        assert person_in(text) == [], f"the person is in the {where}"
    assert "member.3@example.com" not in outputs, "nobody's address is logged, not only hers"
    assert "tl1:" in stored["store file"] or "tl_ledger" in stored["store file"]
    audit = threadline(tmp_path, env, "audit", "--job", str(job), "--json")
    entries = [(e["who"].split(":")[0], e["action"], e["result"].split(":")[0]) for e in json.loads(audit.stdout)]
    assert ("sync", "push", "pushed") in entries and ("cli", "push", "pushed") in entries  # every push, by whom
    assert ("cli", "erasure", "ok") in entries and ("cli", "erasure", "not found") in entries
