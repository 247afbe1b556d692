"""`threadline serve`, tested as a penetration tester would: a real uvicorn server on a free
loopback port, a real HTTP client, and the store read afterwards.

The population: twelve customers of a shop (so that aggregates have groups of five or more),
each with an order; Kelly and Sam are the people looked up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from threadline_profiles.audit import log
from threadline_profiles.serve.tokens import create_token, revoke_token
from threadline_profiles.testing import Lander

MAPPING = {
    "crm.customers": {"identifiers": {"email": "email", "phone": "phone"},
                      "traits": {"first_name": "first", "last_name": "last", "birth_date": "born"},
                      "address": {"line1": "street", "city": "city", "postal_code": "zip", "country": "country"},
                      "cleaning": {"phone_region": "US"}},
    "shop.orders": {"identifiers": {"email": "email"}, "orders": {"order_id": "id", "timestamp": "at", "amount": "amount"}},
}
FIRST = ["Kelly", "Sam", "Ann", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo"]
LAST = ["Neal", "Lee", "Park", "Stone", "Vance", "Moss", "Hart", "Quinn", "Reyes", "Ortiz", "Blake", "Webb"]
PEOPLE = [{"id": n + 1, "email": f"{name.lower()}.neal{n}@example.com", "phone": f"(512) 353-56{n:02d}", "first": name,
           "last": LAST[n], "born": f"19{60 + n}-05-{n + 1:02d}", "street": f"{n} Elm St", "city": "Austin", "zip": "78701",
           "country": "us"} for n, name in enumerate(FIRST)]
ORDERS = [{"id": f"o{n}", "email": p["email"], "at": "2026-11-20T10:00:00", "amount": 20.0 + n} for n, p in enumerate(PEOPLE)]
KELLY, SAM, GUS = PEOPLE[0], PEOPLE[1], PEOPLE[8]
AUDIENCES = {"buyers": {"where": "orders_count >= 1"}}
PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")  # as conftest's pg_schema


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    config: dict[str, Any]  # the store's, as Lander takes it
    process: subprocess.Popen[bytes]
    stderr: Path
    tokens: dict[str, str]  # role (or "revoked") -> token
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # every /v1 call made: method, path, status

    def call(self, method: str, path: str, token: str | None = None, body: Any = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        answer = requests.request(method, self.url + path, headers=headers, json=body, params=params or None, timeout=60)
        self.calls.append((method, path, answer.status_code))
        return answer

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def make_store(folder: Path, config: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """A built store (DuckDB in `folder` unless `config` names another) and a token per role."""
    config = {**(config or {"path": str(folder / "profiles.duckdb")}), "resolve_on_finish": False}
    lander = Lander({**config, "mappings": MAPPING, "audiences": AUDIENCES})
    lander.land("crm", "customers", PEOPLE)
    lander.land("shop", "orders", ORDERS)
    lander.build()
    tokens = {}
    with lander.store() as store:
        for role in ("support", "marketer", "admin"):
            tokens[role] = create_token(store, role, f"{role} test", "cli:test")[1]
        record, tokens["revoked"] = create_token(store, "support", "left the company", "cli:test")
        revoke_token(store, record.token_id)
    return config, tokens


def start(config: dict[str, Any], tokens: dict[str, str], rate: str, folder: Path) -> Server:
    port = free_port()
    stderr = folder / f"serve-{port}.log"
    where = ["--path", config["path"]] if "path" in config else ["--dsn", config["dsn"], "--schema", config["schema"]]
    process = subprocess.Popen([sys.executable, "-m", "threadline", "--log-format", "plain", "serve", *where,
                                "--port", str(port), "--rate-limit", rate],
                               stdout=subprocess.DEVNULL, stderr=stderr.open("wb"), cwd=folder)
    server = Server(f"http://127.0.0.1:{port}", config, process, stderr, tokens)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"threadline serve exited: {stderr.read_text()}")
        try:
            if requests.get(server.url + "/health", timeout=1).ok:
                return server
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or too busy to answer in 1 s
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"threadline serve did not answer: {stderr.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    config, tokens = make_store(folder)
    running = start(config, tokens, "1000/hour", folder)
    yield running
    running.stop()


def leaks(answer: requests.Response, *values: str) -> list[str]:
    """Which personal values (or sent values) appear in an answer's body or headers."""
    text = (answer.text + json.dumps(dict(answer.headers))).lower()
    everyone = [v for p in PEOPLE for v in (p["email"], p["phone"], p["born"], p["street"], re.sub(r"\D", "", p["phone"]))]
    return [v for v in [*everyone, *values] if v.lower() in text]


UNAUTHORIZED = {"error": "unauthorized", "message": "a valid API token is required (Authorization: Bearer <token>)"}


# ------------------------------------------------------------------ 401: no valid token


@pytest.mark.parametrize("token", [None, "", "garbage", "tlk_0000000_short", "tlk_deadbeef_" + "A" * 43, "revoked", "basic"],
                         ids=["missing", "empty", "garbage", "malformed", "unknown-id", "revoked", "basic-scheme"])
def test_a_missing_invalid_or_revoked_token_gets_the_same_401_and_nothing_else(server, token):
    if token == "revoked":
        token = server.tokens["revoked"]
    if token == "basic":
        answer = requests.post(server.url + "/v1/lookup", auth=("admin", server.tokens["admin"]), timeout=30,
                               json={"email": KELLY["email"], "reason": "ticket 1"})
        server.calls.append(("POST", "/v1/lookup", answer.status_code))
    else:
        answer = server.call("POST", "/v1/lookup", token, {"email": KELLY["email"], "reason": "ticket 1"})
    assert answer.status_code == 401
    assert answer.json() == UNAUTHORIZED and answer.headers["www-authenticate"] == "Bearer"
    assert leaks(answer) == []


def test_a_token_with_the_right_id_and_a_wrong_secret_is_refused(server):
    real = server.tokens["admin"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    answer = server.call("GET", "/v1/audiences", forged)
    assert answer.status_code == 401 and answer.json() == UNAUTHORIZED


# ------------------------------------------------------------------ 403: the role may not


def test_a_marketer_asking_for_one_person_is_refused(server):
    answer = server.call("POST", "/v1/lookup", server.tokens["marketer"], {"email": KELLY["email"], "reason": "curious"})
    assert answer.status_code == 403
    assert answer.json() == {"error": "forbidden", "message": "the marketer role may not do this (lookup)"}
    assert leaks(answer) == []


def test_a_marketer_cannot_export_an_audience_or_read_the_audit_log(server):
    for path in ("/v1/audiences/buyers/export", "/v1/audit"):
        answer = server.call("GET", path, server.tokens["marketer"])
        assert answer.status_code == 403 and leaks(answer) == []


def test_support_asking_for_an_audience_export_is_refused(server):
    answer = server.call("GET", "/v1/audiences/buyers/export", server.tokens["support"])
    assert answer.status_code == 403
    assert answer.json() == {"error": "forbidden", "message": "the support role may not do this (export)"}
    assert leaks(answer) == []


@pytest.mark.parametrize("method, path", [("GET", "/v1/audiences"), ("GET", "/v1/audiences/buyers/preview"),
                                          ("GET", "/v1/traits"), ("POST", "/v1/erasure"), ("GET", "/v1/audit")])
def test_support_reaches_nothing_but_lookups(server, method, path):
    answer = server.call(method, path, server.tokens["support"], {"email": KELLY["email"], "reason": "x"} if method == "POST" else None)
    assert answer.status_code == 403 and leaks(answer) == []


# ------------------------------------------------------------------ exact identifiers only

NOT_EXACT = {"error": "not_an_exact_identifier", "message": "a person is looked up by one exact, complete email, phone or "
             "profile id: no wildcards, prefixes or partial values"}


@pytest.mark.parametrize("body", [
    {"email": "kelly.neal0@"}, {"email": "kelly"}, {"email": "kelly*"}, {"email": "kel%"}, {"email": "%@example.com"},
    {"email": "kelly.neal0@example.*"}, {"email": "kelly.neal0@exam"}, {"email": "k_lly.neal0@example.com%"},
    {"phone": "+1512"}, {"phone": "512*"}, {"profile_id": "p0"}, {"profile_id": "p%"},
    {"email": KELLY["email"], "phone": KELLY["phone"]},  # two at once
    {"email_prefix": "kelly"}, {"email": KELLY["email"], "match": "prefix"}, {"query": "email LIKE 'kel%'"},
], ids=lambda b: "-".join(f"{k}={v}" for k, v in b.items()))
def test_a_lookup_by_prefix_or_wildcard_is_refused(server, body):
    answer = server.call("POST", "/v1/lookup", server.tokens["support"], {**body, "reason": "ticket 7"})
    assert answer.status_code == 403 and answer.json() == NOT_EXACT
    assert leaks(answer, *[v for v in body.values() if len(v) > 3 and v not in NOT_EXACT["message"]]) == []


INJECTIONS = [
    {"email": "' OR '1'='1"},
    {"email": "kelly.neal0@example.com' OR '1'='1"},
    {"email": "x@example.com'; DROP TABLE tl_profiles;--"},
    {"email": "kelly.neal0@example.com'--"},
    {"email": "admin'--@example.com"},
    {"email": "kelly.neal0@example.com\x00"},
    {"email": "\"kelly\"@example.com"},
    {"phone": "+15123535600; DELETE FROM tl_members"},
    {"phone": "+1 512 353 5600 OR 1=1"},
    {"profile_id": "../../etc/passwd"},
    {"profile_id": "..%2F..%2Fetc%2Fpasswd"},
    {"profile_id": "p0123456789abcde' OR '1'='1"},
    {"profile_id": "p0123456789abcde/../../tl_meta"},
    {"profile_id": ["p0123456789abcde"]},
    {"email": {"$ne": None}},
]


@pytest.mark.parametrize("body", INJECTIONS, ids=range(len(INJECTIONS)))
def test_an_injection_attempt_in_an_identifier_is_refused_and_not_reflected(server, body):
    answer = server.call("POST", "/v1/lookup", server.tokens["admin"], {**body, "reason": "pen test"})
    assert answer.status_code == 403 and answer.json() == NOT_EXACT
    assert leaks(answer, *[v for v in body.values() if isinstance(v, str)], "DROP", "passwd") == []


def test_the_store_is_whole_after_the_injection_attempts(server):
    for body in INJECTIONS:
        server.call("POST", "/v1/lookup", server.tokens["admin"], {**body, "reason": "pen test"})
    answer = server.call("GET", "/v1/audiences", server.tokens["marketer"])
    assert answer.json()["audiences"][0]["size"] == len(PEOPLE)
    assert server.call("POST", "/v1/lookup", server.tokens["support"], {"email": SAM["email"], "reason": "t 2"}).status_code == 200


@pytest.mark.parametrize("path", ["/v1/audiences/..%2F..%2Fetc%2Fpasswd/preview", "/v1/audiences/buyers'--/preview",
                                  "/v1/audiences/../../etc/passwd"])
def test_a_path_traversal_in_an_audience_name_finds_nothing(server, path):
    answer = server.call("GET", path, server.tokens["admin"])
    assert answer.status_code == 404 and leaks(answer, "passwd", "'--") == []


# ------------------------------------------------------------------ what each role sees


def test_support_sees_one_profile_masked_except_what_the_role_allows(server):
    answer = server.call("POST", "/v1/lookup", server.tokens["support"],
                         {"email": " Kelly.Neal0@Example.com", "reason": "ticket 4711: wants her orders"})
    assert answer.status_code == 200
    fields = answer.json()["profile"]["fields"]
    assert fields["first_name"] == "Kelly" and fields["last_name"] == "N."
    assert fields["email"] == "k***@example.com" and fields["phone"] == "***5600"
    assert fields["birth_date"] == "(withheld)"
    assert leaks(answer) == []


def test_support_by_phone_and_by_profile_id_finds_the_same_person(server):
    by_phone = server.call("POST", "/v1/lookup", server.tokens["support"],
                           {"phone": "(512) 353-5600", "region": "US", "reason": "callback"}).json()["profile"]
    by_id = server.call("POST", "/v1/lookup", server.tokens["support"],
                        {"profile_id": by_phone["profile_id"], "reason": "callback"}).json()["profile"]
    assert by_phone["profile_id"] == by_id["profile_id"] and by_id["fields"]["first_name"] == "Kelly"


def test_a_lookup_without_a_reason_is_refused(server):
    for body in ({"email": KELLY["email"]}, {"email": KELLY["email"], "reason": "  "}):
        answer = server.call("POST", "/v1/lookup", server.tokens["support"], body)
        assert answer.status_code == 400 and answer.json()["error"] == "reason_required" and leaks(answer) == []


def test_nobody_found_is_a_404_that_repeats_nothing(server):
    answer = server.call("POST", "/v1/lookup", server.tokens["support"], {"email": "zed.nobody@example.com", "reason": "t 9"})
    assert answer.status_code == 404 and leaks(answer, "zed.nobody") == []


def test_a_marketer_sees_sizes_masked_previews_and_aggregates_but_no_person(server):
    token = server.tokens["marketer"]
    sizes = server.call("GET", "/v1/audiences", token).json()["audiences"]
    assert sizes == [{"audience": "buyers", "where": "orders_count >= 1", "size": len(PEOPLE), "status": "ok"}]
    preview = server.call("GET", "/v1/audiences/buyers/preview", token, sample=20)
    assert preview.status_code == 200 and len(preview.json()["sample"]) == len(PEOPLE)
    assert all(row["email"].split("@")[0].endswith("***") and row["profile_id"].endswith("…") for row in preview.json()["sample"])
    assert leaks(preview) == []
    traits = server.call("GET", "/v1/traits", token)
    body = traits.json()
    assert traits.status_code == 200 and body["profiles"] == len(PEOPLE)
    assert {t["trait"]: t["profiles"] for t in body["traits"]}["orders_count"] == len(PEOPLE)
    shown = [n for t in body["traits"] for n in t.get("values", {}).values()]
    assert all(n >= body["min_group"] for n in shown)  # no group small enough to be one person
    assert not any(t["trait"] in ("first_name", "email", "birth_date") for t in body["traits"])
    assert leaks(traits, "Kelly") == []
    too_many = server.call("GET", "/v1/audiences/buyers/preview", token, sample=1000)
    assert too_many.status_code == 400


def test_an_admin_exports_an_audience_and_sees_a_whole_profile(server):
    export = server.call("GET", "/v1/audiences/buyers/export", server.tokens["admin"])
    assert export.status_code == 200
    assert sorted(m["email"] for m in export.json()["members"]) == sorted(p["email"] for p in PEOPLE)
    whole = server.call("POST", "/v1/lookup", server.tokens["admin"], {"email": KELLY["email"], "reason": "DSAR 12"})
    assert whole.json()["profile"]["golden"]["birth_date"]["value"] == KELLY["born"]


def test_an_admin_erases_a_person_and_they_are_gone(server):
    erased = server.call("POST", "/v1/erasure", server.tokens["admin"], {"email": GUS["email"], "reason": "erasure request 88"})
    assert erased.status_code == 200 and erased.json()["erased"]["profiles"] == 1 and leaks(erased) == []
    after = server.call("POST", "/v1/lookup", server.tokens["admin"], {"email": GUS["email"], "reason": "check erasure 88"})
    assert after.status_code == 404


def test_an_admin_revokes_a_token_and_its_next_call_is_refused(server):
    with_token = server.tokens["support"]  # support's tests ran above; the audit test after this needs admin only
    token_id = "tok_" + with_token.split("_")[1]
    assert server.call("DELETE", f"/v1/tokens/{token_id}", server.tokens["marketer"]).status_code == 403
    assert server.call("DELETE", "/v1/tokens/tok_00000000", server.tokens["admin"]).status_code == 404
    assert server.call("DELETE", f"/v1/tokens/{token_id}", server.tokens["admin"]).status_code == 200
    answer = server.call("POST", "/v1/lookup", with_token, {"email": SAM["email"], "reason": "t 3"})
    assert answer.status_code == 401 and answer.json() == UNAUTHORIZED


def test_the_server_serves_its_openapi_document_and_docs(server):
    schema = requests.get(server.url + "/openapi.json", timeout=30).json()
    assert {"/v1/lookup", "/v1/audiences", "/v1/audiences/{name}/preview", "/v1/audiences/{name}/export", "/v1/traits",
            "/v1/erasure", "/v1/audit", "/v1/tokens/{token_id}"} == set(schema["paths"])
    assert "reason" in schema["paths"]["/v1/lookup"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"]
    assert "Roles: admin, support" in schema["paths"]["/v1/lookup"]["post"]["description"]
    page = requests.get(server.url + "/docs", timeout=30)
    assert page.status_code == 200 and "/v1/lookup" in page.text


# ------------------------------------------------------------------ the audit log (last: it counts the calls above)


def test_the_audit_log_records_every_call_holds_no_identifier_and_shows_an_edit(server):
    admin_reads = server.call("GET", "/v1/audit", server.tokens["admin"], limit=1000)
    assert admin_reads.status_code == 200
    server.stop()
    calls = server.calls
    with Lander(server.config).store() as store:
        entries = [e for e in log.entries(store) if e.who != "cli:test"]
        assert len(entries) == len(calls)
        assert [int(e.result.split(":")[0].split()[-1]) if e.result.startswith("refused") else 200
                for e in entries if e.result.startswith(("ok", "refused", "revoked"))] == \
            [s if s >= 400 else 200 for _, _, s in calls]
        lookups = [e for e in entries if e.action == "lookup" and e.result.startswith("ok")]
        assert lookups and all(e.reason for e in lookups)
        kelly = log.person(store, email=KELLY["email"])
        assert any(e.subject == kelly.value and e.who.startswith("tok_") for e in entries)
        text = json.dumps(store.engine.rows("SELECT * FROM tl_audit_log"), default=str)
        for p in PEOPLE:  # as written: "Stone" must not be found in "tombstone"
            assert p["email"] not in text.lower() and f"353{p['phone'][-4:]}" not in text and p["last"] not in text
        assert "drop table" not in text.lower() and "passwd" not in text
        assert log.verify(store).ok
        store.engine.execute("UPDATE tl_audit_log SET who = 'tok_someone' WHERE seq = 3")
    verified = subprocess.run([sys.executable, "-m", "threadline", "audit", "--path", server.config["path"], "--verify"],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 1 and "entry 3 was modified" in verified.stdout


# ------------------------------------------------------------------ rate limits


def test_the_rate_limit_holds_per_token_and_for_callers_without_one(tmp_path):
    config, tokens = make_store(tmp_path)
    limited = start(config, tokens, "5/hour", tmp_path)
    try:
        answers = [limited.call("GET", "/v1/audiences", tokens["marketer"]).status_code for _ in range(8)]
        assert answers == [200] * 5 + [429] * 3
        refused = limited.call("GET", "/v1/audiences", tokens["marketer"])
        assert int(refused.headers["retry-after"]) > 0 and refused.json()["error"] == "rate_limited"
        assert limited.call("GET", "/v1/audiences", tokens["admin"]).status_code == 200  # another token has its own
        guesses = [limited.call("GET", "/v1/audiences", "tlk_deadbeef_" + "A" * 43).status_code for _ in range(7)]
        assert guesses == [401] * 5 + [429] * 2  # guessing tokens is limited too
    finally:
        limited.stop()


# ------------------------------------------------------------------ tokens from the command line


def test_a_token_is_printed_once_kept_hashed_and_revoked_from_the_cli(tmp_path):
    from threadline_profiles.serve.tokens import authenticate

    config, _ = make_store(tmp_path)
    path = config["path"]

    def threadline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "threadline", "serve", "token", *args, "--path", path],
                              capture_output=True, text=True, timeout=120)

    made = threadline("create", "--role", "support", "--name", "desk two")
    token = made.stdout.strip()
    assert made.returncode == 0 and token.startswith("tlk_") and token not in made.stderr
    token_id = "tok_" + token.split("_")[1]
    assert f"{token_id}  support   desk two" in threadline("list").stdout
    with Lander({"path": path}).store() as store:
        assert authenticate(store, token) is not None
        assert token not in json.dumps(store.engine.rows("SELECT * FROM tl_api_tokens"))  # only its hash
    assert threadline("revoke", token_id).returncode == 0
    assert "revoked" in [line for line in threadline("list").stdout.splitlines() if token_id in line][0]
    assert threadline("revoke", "tok_00000000").returncode == 1
    with Lander({"path": path}).store() as store:
        assert authenticate(store, token) is None
        assert [e.result for e in log.entries(store, action="token")][-2:] == ["created: role support", "revoked"]
    assert threadline("create", "--role", "root", "--name", "x").returncode == 2


def test_on_a_postgres_store_the_roles_hold_and_every_call_is_audited(tmp_path, pg_schema, monkeypatch):
    monkeypatch.setenv("THREADLINE_STORE_SECRET", "s" * 40)  # the server process and this one share it
    config, tokens = make_store(tmp_path, {"engine": "postgres", "dsn": PG_DSN, "schema": pg_schema,
                                           "report_dir": str(tmp_path / "reports")})
    server = start(config, tokens, "100/hour", tmp_path)
    try:
        found = server.call("POST", "/v1/lookup", tokens["support"], {"email": KELLY["email"], "reason": "ticket 5"})
        assert found.status_code == 200 and found.json()["profile"]["fields"]["email"] == "k***@example.com"
        assert server.call("POST", "/v1/lookup", tokens["marketer"], {"email": KELLY["email"], "reason": "x"}).status_code == 403
        assert server.call("POST", "/v1/lookup", tokens["support"], {"email": "kel%", "reason": "x"}).status_code == 403
        assert server.call("GET", "/v1/audiences/buyers/export", tokens["support"]).status_code == 403
        assert server.call("GET", "/v1/traits", tokens["marketer"]).status_code == 200
    finally:
        server.stop()
    with Lander(config).store() as store:
        entries = log.entries(store)
        assert [e.result.split(":")[0] for e in entries] == ["ok", "refused 403", "refused 403", "refused 403", "ok"]
        assert KELLY["email"] not in json.dumps([e.to_dict() for e in entries]) and log.verify(store).ok
