"""The sandbox's requests and answers checked against X's published OpenAPI document.

The schemas below are a hand-picked part of X's OpenAPI for API v2 (version 2.159, as served at
https://api.x.com/2/openapi.json; read on 2026-12-06 from the copy xdevplatform/xdk keeps as
latest-openapi.json): the parts that describe what the connector asks for and reads. They are
transcribed, not the vendor's file: `User` (with its `public_metrics` and `entities`),
`UserId`, `UserName`, `PaginationToken32`, the two response bodies and the problem types the
sandbox answers with. A field or rule of X's that the sandbox breaks fails here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from threadline_x import XConfig, XSource
from threadline_x.sandbox import BRANDS, XSandbox

jsonschema = pytest.importorskip("jsonschema", reason="needs jsonschema: pip install jsonschema")

USER_ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
USER_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_]{1,15}$"}
INDICES = {"start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 0}}
USER = {
    "type": "object", "required": ["id", "name", "username"],
    "properties": {
        "id": USER_ID, "username": USER_NAME, "name": {"type": "string"},
        "created_at": {"type": "string"}, "description": {"type": "string"}, "location": {"type": "string"},
        "url": {"type": "string"}, "profile_image_url": {"type": "string"},
        "protected": {"type": "boolean"}, "verified": {"type": "boolean"},
        "public_metrics": {
            "type": "object", "required": ["followers_count", "following_count", "tweet_count", "listed_count"],
            "properties": {k: {"type": "integer"} for k in
                           ("followers_count", "following_count", "tweet_count", "listed_count", "like_count")},
        },
        "entities": {"type": "object", "properties": {
            "url": {"type": "object", "properties": {"urls": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["start", "end", "url"],
                "properties": {**INDICES, "url": {"type": "string"}, "expanded_url": {"type": "string"},
                               "display_url": {"type": "string"}}}}}},
            "description": {"type": "object", "properties": {"mentions": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["start", "end", "username"],
                "properties": {**INDICES, "username": USER_NAME}}}}},
        }},
    },
}
PROBLEM = {"type": "object", "required": ["type", "title"],
           "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "detail": {"type": "string"},
                          "status": {"type": "integer"}}}
RESOURCE_NOT_FOUND = {"allOf": [PROBLEM, {"type": "object", "required": ["parameter", "value", "resource_id", "resource_type"],
                                          "properties": {"parameter": {"type": "string", "minLength": 1},
                                                         "resource_type": {"enum": ["user", "tweet", "media", "list", "space"]}}}]}
INVALID_REQUEST = {"allOf": [PROBLEM, {"type": "object", "properties": {"errors": {
    "type": "array", "minItems": 1, "items": {"type": "object", "properties": {
        "message": {"type": "string"},
        "parameters": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}}}}]}
CLIENT_FORBIDDEN = {"allOf": [PROBLEM, {"type": "object", "properties": {
    "reason": {"enum": ["official-client-forbidden", "client-not-enrolled"]}, "registration_url": {"type": "string"}}}]}
FOLLOWERS_RESPONSE = {"type": "object", "properties": {
    "data": {"type": "array", "minItems": 1, "items": USER},
    "errors": {"type": "array", "minItems": 1, "items": RESOURCE_NOT_FOUND},
    "meta": {"type": "object", "properties": {"next_token": {"type": "string", "minLength": 1},
                                              "previous_token": {"type": "string", "minLength": 1},
                                              "result_count": {"type": "integer"}}}}}
USERS_BY_RESPONSE = {"type": "object", "properties": {
    "data": {"type": "array", "minItems": 1, "items": USER},
    "errors": {"type": "array", "minItems": 1, "items": RESOURCE_NOT_FOUND}}}
PAGINATION_TOKEN = {"type": "string", "minLength": 16}


def valid(schema: dict[str, Any], value: Any) -> None:
    jsonschema.Draft7Validator(schema).validate(value)


@pytest.fixture(scope="module")
def x() -> Iterator[XSandbox]:
    with XSandbox(users=600, followers_limit=10_000, lookup_limit=10_000) as sandbox:
        yield sandbox


def get(x: XSandbox, path: str, token: str | None = None, **params: Any) -> requests.Response:
    return requests.get(f"{x.base_url}/2{path}", params=params, timeout=10,
                        headers={"Authorization": f"Bearer {token or x.BEARER_TOKEN}"})


def fields() -> str:
    """The `user.fields` the connector asks for."""
    config = XConfig(bearer_token="t", followers_of=["1"])
    return str(dict(XSource().stream(config, "followers").params)["user.fields"])


def test_every_follower_page_is_a_followers_response_of_valid_users(x):
    for brand in BRANDS:
        token, pages = None, 0
        while True:
            answer = get(x, f"/users/{brand}/followers", max_results=100, **{"user.fields": fields()},
                         **({"pagination_token": token} if token else {}))
            assert answer.status_code == 200
            body = answer.json()
            valid(FOLLOWERS_RESPONSE, body)
            for user in body.get("data", []):
                datetime.fromisoformat(user["created_at"].replace("Z", "+00:00"))  # format: date-time
            pages += 1
            token = body["meta"].get("next_token")
            if token is None:
                break
            valid(PAGINATION_TOKEN, token)  # before: 14 characters, shorter than X allows
        assert pages > 1


def test_a_lookup_answer_with_unknown_handles_is_a_users_by_response(x):
    names = x.usernames(100, start=200)
    answer = get(x, "/users/by", usernames=",".join([*names[:98], "nobody_here_1", "gone_2"]), **{"user.fields": fields()})
    body = answer.json()
    valid(USERS_BY_RESPONSE, body)
    assert len(body["data"]) == 98 and [e["value"] for e in body["errors"]] == ["nobody_here_1", "gone_2"]


def test_every_seeded_handle_and_mention_is_a_valid_x_username(x):
    valid({"type": "array", "items": USER_NAME}, x.usernames(600))


def test_a_handle_x_would_not_accept_is_refused_as_an_invalid_request(x):
    answer = get(x, "/users/by", usernames=f"{x.usernames(1)[0]},kelly.neal")
    assert answer.status_code == 400
    valid(INVALID_REQUEST, answer.json())
    assert answer.json()["errors"][0]["parameters"] == {"usernames": ["kelly.neal"]}


def test_the_sandboxs_problems_have_xs_problem_shapes(x):
    not_enrolled = get(x, f"/users/{next(iter(BRANDS))}/followers", token=x.BASIC_BEARER_TOKEN)
    assert not_enrolled.status_code == 403
    valid(CLIENT_FORBIDDEN, not_enrolled.json())
    bad_size = get(x, f"/users/{next(iter(BRANDS))}/followers", max_results=5000)
    assert bad_size.status_code == 400
    valid(INVALID_REQUEST, bad_size.json())
    unauthorized = get(x, "/users/by", token="wrong", usernames="a")
    assert unauthorized.status_code == 401
    valid(PROBLEM, unauthorized.json())


def test_a_spent_window_is_a_429_problem_with_the_rate_limit_headers_x_documents():
    with XSandbox(users=20, lookup_limit=1) as small:
        name = small.usernames(1)[0]
        first, second = (get(small, "/users/by", usernames=name) for _ in range(2))
    assert first.status_code == 200 and first.headers["x-rate-limit-remaining"] == "0"
    assert second.status_code == 429 and "retry-after" not in second.headers
    valid(PROBLEM, second.json())
    assert second.headers["x-rate-limit-limit"] == "1" and int(second.headers["x-rate-limit-reset"]) > time.time()


def test_the_connector_refuses_a_handle_x_would_refuse_before_asking_x():
    """One malformed handle makes X refuse the whole lookup of 100 (400 above), so the
    connector refuses it in the config, naming it, instead of failing the stream."""
    with pytest.raises(ValueError, match="'kelly.neal' is not an X handle"):
        XConfig.model_validate({"bearer_token": "t", "usernames": ["@kneal1985", "kelly.neal"]})
    with pytest.raises(ValueError, match="not an X handle"):
        XConfig.model_validate({"bearer_token": "t", "usernames": ["https://x.com/kneal1985"]})
    assert XConfig.model_validate({"bearer_token": "t", "usernames": ["@kneal1985", "Maria_Garcia"]}).usernames == \
        ["kneal1985", "Maria_Garcia"]
