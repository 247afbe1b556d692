"""Upload sessions, request shape and per-row rejections: what Meta's contract asks beyond the
generic audience suite, checked against the sandbox (which enforces it)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import requests
from threadline.activation import sha256_hex
from threadline.contracts import PushMode
from threadline.plugins import load_registry
from threadline.testing import sample_members
from threadline_meta_audiences import MetaAudiences


def bodies(meta, path_end: str, method: str = "POST") -> list[dict]:
    return [json.loads(r.body) for r in meta.requests if r.method == method and r.path.endswith(path_end)]


def sessions_of(meta, path_end: str, method: str = "POST") -> list[dict]:
    return [b["session"] for b in bodies(meta, path_end, method)]


def emails(members) -> set[str]:
    return {sha256_hex(e) for e in members.column("email").to_pylist()}


def graph(meta, method: str, edge: str, body: dict, **params) -> requests.Response:
    url = f"{meta.base_url}/{meta.API_VERSION}/{meta.AUDIENCE_ID}/{edge}"
    return requests.request(method, url, json=body, params=params,
                            headers={"Authorization": f"Bearer {meta.ACCESS_TOKEN}"}, timeout=10)


def test_declares_advertising_meta_batch_maximum_and_minimum_audience():
    assert MetaAudiences.channel == "advertising"
    assert MetaAudiences.max_batch_rows == 10_000
    assert MetaAudiences.min_members == 100


def test_destination_and_sandbox_are_registered_under_meta_audiences():
    registry = load_registry()
    assert registry.destinations["meta_audiences"] is MetaAudiences
    assert "meta_audiences" in registry.sandboxes


def test_a_multi_batch_add_is_one_session_numbered_from_one_closed_by_its_last_batch(meta, make_config, pusher):
    pusher(make_config(), adds=sample_members(0, 25), batch=10)
    sent = sessions_of(meta, "/users")
    assert [s["batch_seq"] for s in sent] == [1, 2, 3]
    assert [s["last_batch_flag"] for s in sent] == [False, False, True]
    assert len({s["session_id"] for s in sent}) == 1 and {s["estimated_num_total"] for s in sent} == {25}
    assert meta.open_sessions() == []


def test_rows_are_positional_under_the_schema(meta, make_config, pusher):
    members = sample_members(0, 2)
    pusher(make_config(identifiers=["PHONE", "EMAIL"], extern_id=True), adds=members)
    payload = bodies(meta, "/users")[0]["payload"]
    assert payload["schema"] == ["PHONE", "EMAIL", "EXTERN_ID"]
    first = members.to_pylist()[0]
    assert payload["data"][0] == [sha256_hex(first["phone"][1:]), sha256_hex(first["email"]), first["member_id"]]


def test_removes_send_the_payload_in_the_body_of_a_delete(meta, make_config, pusher):
    config = make_config()
    members = sample_members(0, 12)
    pusher(config, adds=members)
    pusher(config, removes=members.slice(0, 5), batch=4)
    deletes = [r for r in meta.requests if r.method == "DELETE"]
    assert len(deletes) == 2 and all("payload" not in r.query for r in deletes)
    assert [json.loads(r.body)["session"]["last_batch_flag"] for r in deletes] == [False, True]
    assert meta.audience_hashes() == emails(members.slice(5))


def test_the_sandbox_reads_a_deletes_payload_from_the_url_as_the_graph_api_does(meta):
    row = ["a" * 64]
    assert graph(meta, "POST", "users", {"payload": {"schema": ["EMAIL"], "data": [row]}}).status_code == 200
    answer = graph(meta, "DELETE", "users", {}, payload=json.dumps({"schema": ["EMAIL"], "data": [row]}))
    assert answer.status_code == 200 and answer.json()["num_received"] == 1
    assert meta.audience_hashes() == set()


def test_the_sandbox_refuses_rows_that_do_not_match_the_schema(meta):
    answer = graph(meta, "POST", "users", {"payload": {"schema": ["EMAIL", "PHONE"], "data": [["a" * 64]]}})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "(#100) Data is missing or does not match schema"


def test_the_sandbox_refuses_more_than_ten_thousand_rows(meta):
    answer = graph(meta, "POST", "users", {"payload": {"schema": ["EMAIL"], "data": [["a" * 64]] * 10_001}})
    assert answer.status_code == 400 and "at most 10000" in answer.json()["error"]["message"]


def test_a_retried_batch_is_answered_again_not_applied_twice(meta):
    meta.replace_timeout = 60
    session = {"session_id": 7, "batch_seq": 1, "last_batch_flag": False, "estimated_num_total": 2}
    first = graph(meta, "POST", "usersreplace", {"payload": {"schema": ["EMAIL"], "data": [["a" * 64]]}, "session": session})
    again = graph(meta, "POST", "usersreplace", {"payload": {"schema": ["EMAIL"], "data": [["a" * 64]]}, "session": session})
    assert first.json() == again.json()
    last = {**session, "batch_seq": 2, "last_batch_flag": True}
    graph(meta, "POST", "usersreplace", {"payload": {"schema": ["EMAIL"], "data": [["b" * 64]]}, "session": last})
    assert meta.audience_hashes() == {"a" * 64, "b" * 64}
    late = graph(meta, "POST", "usersreplace", {"payload": {"schema": ["EMAIL"], "data": [["c" * 64]]},
                                                "session": {**session, "batch_seq": 3}})
    assert late.status_code == 400 and "has ended" in late.json()["error"]["message"]


def test_a_mirror_is_one_replace_session_applied_only_by_its_last_batch(meta, make_config, pusher):
    config = make_config()
    before = sample_members(0, 30)
    pusher(config, adds=before)
    seen_midway = []
    latest = sample_members(20, 25)

    original = meta._upload

    def spy(req, audience_id, kind):
        reply = original(req, audience_id, kind)
        seen_midway.append(meta.audience_hashes())
        return reply

    meta._upload = spy
    pusher(config, adds=latest, mode=PushMode.MIRROR, batch=10)
    sent = sessions_of(meta, "/usersreplace")
    assert [s["batch_seq"] for s in sent] == [1, 2, 3] and len({s["session_id"] for s in sent}) == 1
    assert seen_midway[0] == seen_midway[1] == emails(before), "a replace applied before its last batch"
    assert meta.audience_hashes() == emails(latest)


def test_finish_closes_a_session_whose_declared_total_was_not_reached(meta, make_config, pusher):
    pusher(make_config(), adds=sample_members(0, 15), mode=PushMode.MIRROR, batch=10, declared_adds=40)
    sent = sessions_of(meta, "/usersreplace")
    assert [s["last_batch_flag"] for s in sent] == [False, False, True]
    assert bodies(meta, "/usersreplace")[2]["payload"] == bodies(meta, "/usersreplace")[1]["payload"]
    assert meta.open_sessions() == [] and len(meta.audience_hashes()) == 15


def test_a_push_that_breaks_midway_still_closes_its_session(meta, make_config, pusher):
    with pytest.raises(RuntimeError):
        pusher(make_config(), adds=sample_members(0, 30), batch=10, fail_after=2)
    assert meta.open_sessions() == []
    assert sessions_of(meta, "/users")[-1]["last_batch_flag"] is True


def test_adds_wait_for_an_open_replace_in_the_sandbox(meta):
    session = {"session_id": 9, "batch_seq": 1, "last_batch_flag": False, "estimated_num_total": 2}
    graph(meta, "POST", "usersreplace", {"payload": {"schema": ["EMAIL"], "data": [["a" * 64]]}, "session": session})
    answer = graph(meta, "POST", "users", {"payload": {"schema": ["EMAIL"], "data": [["b" * 64]]}})
    assert answer.status_code == 400 and "being replaced" in answer.json()["error"]["message"]


def test_invalid_rows_are_reported_per_member_with_metas_reason(meta, make_config, pusher):
    members = sample_members(0, 6)
    refused = members.to_pylist()[2]
    reason = meta.refuse("EMAIL", sha256_hex(refused["email"]), "Invalid entry for EMAIL")
    empty = sample_members(100, 1).to_pylist()[0]
    for column in ("email", "phone", "first_name", "last_name", "city", "region", "postal_code", "country",
                   "birth_date"):
        empty[column] = None
    adds = pa.concat_tables([members, pa.Table.from_pylist([empty], schema=members.schema)])
    pushed = pusher(make_config(), adds=adds)
    rejected = {r.member_id: r.reason for result in pushed.results for r in result.rejected}
    assert rejected == {refused["member_id"]: f"Meta: {reason}",
                        empty["member_id"]: "Meta: No identifier: every value in the row is empty"}
    assert (pushed.report.sent, pushed.report.accepted, pushed.report.rejected) == (7, 5, 2)
    assert all(sha256_hex(refused["email"]) not in r for r in rejected.values())


def test_invalid_rows_beyond_metas_samples_are_counted_without_a_member(meta, make_config, pusher):
    meta.INVALID_SAMPLES = 1
    members = sample_members(0, 5)
    for m in members.to_pylist()[:3]:
        meta.refuse("EMAIL", sha256_hex(m["email"]))
    pushed = pusher(make_config(), adds=members)
    assert sum(len(r.rejected) for r in pushed.results) == 1
    assert (pushed.report.rejected, pushed.report.accepted) == (3, 2)
    assert pushed.report.details["rejections_without_row"] == 2


def test_report_gives_metas_audience_size_estimate(meta, make_config, pusher):
    pushed = pusher(make_config(), adds=sample_members(0, 12))
    assert pushed.report.match_estimate == 12
    assert pushed.report.details["audience_id"] == meta.AUDIENCE_ID
