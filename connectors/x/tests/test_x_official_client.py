"""tweepy (the X API's most used Python client, 4.17, unmodified) against the sandbox: it pages
the followers of each brand account and looks users up by username with the connector's own
parameters, loads every answer into its `User` model, and meets X's access tiers and errors
as its own exceptions.

tweepy sends to https://api.twitter.com, hard-coded; its session gets a transport adapter that
carries those requests to the sandbox on 127.0.0.1 (threadline.testing.vendor), as a proxy
would. The client, its URLs and its bearer auth are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tweepy
from threadline.testing.vendor import route_to_sandbox
from threadline_x import XSource
from threadline_x.sandbox import BRANDS, XSandbox
from threadline_x.source import LOOKUP_BATCH, XConfig

X_ROOT = "https://api.twitter.com"


@pytest.fixture(scope="module")
def x() -> Iterator[XSandbox]:
    with XSandbox(users=400, followers_limit=10_000, lookup_limit=10_000) as sandbox:
        yield sandbox


def client_for(x: XSandbox, token: str) -> tweepy.Client:
    client = tweepy.Client(bearer_token=token)
    route_to_sandbox(client.session, X_ROOT, x.base_url)
    return client


def connector_params(name: str) -> dict[str, Any]:
    """The query a connector stream sends (besides its partition), as it declares it."""
    config = XConfig(bearer_token="t", followers_of=["1"], usernames=["a"], page_size=100)
    return dict(XSource().stream(config, name).params)


def test_tweepy_pages_every_brands_followers_with_the_connectors_parameters(x):
    client = client_for(x, x.BEARER_TOKEN)
    params = connector_params("followers")
    for brand in BRANDS:
        users: list[tweepy.User] = []
        for page in tweepy.Paginator(client.get_users_followers, brand, max_results=params["max_results"],
                                     user_fields=params["user.fields"].split(",")):
            assert page.errors == []
            users += page.data or []
        expected = x.followers(brand)
        assert [u.id for u in users] == [int(u["id"]) for u in expected]  # most recent first, every page
        assert [u.username for u in users] == [u["username"] for u in expected]
        first = next(u for u in users if u.entities)
        raw = next(u for u in expected if int(u["id"]) == first.id)
        assert first.data == raw and first.created_at is not None and first.public_metrics == raw["public_metrics"]


def test_tweepy_looks_users_up_in_batches_and_reports_handles_x_does_not_know(x):
    client = client_for(x, x.BEARER_TOKEN)
    names = x.usernames(LOOKUP_BATCH)
    fields = connector_params("users")["user.fields"].split(",")
    answer = client.get_users(usernames=[*names[:-1], "nobody_here_123"], user_fields=fields)
    assert sorted(u.username for u in answer.data) == sorted(names[:-1])
    assert [e["value"] for e in answer.errors] == ["nobody_here_123"]
    assert all(isinstance(u, tweepy.User) and u.data == x.by_username(u.username) for u in answer.data)


def test_tweepy_meets_the_access_tiers_as_its_forbidden_error(x):
    basic = client_for(x, x.BASIC_BEARER_TOKEN)
    with pytest.raises(tweepy.Forbidden) as caught:
        basic.get_users_followers(next(iter(BRANDS)))
    assert caught.value.response.status_code == 403
    assert caught.value.response.json()["reason"] == "client-not-enrolled"
    assert basic.get_users(usernames=x.usernames(2)).data  # Basic includes user lookup
    with pytest.raises(tweepy.Forbidden):
        client_for(x, x.FREE_BEARER_TOKEN).get_users(usernames=x.usernames(2))


def test_tweepy_meets_a_wrong_token_and_bad_parameters_as_its_own_errors(x):
    with pytest.raises(tweepy.Unauthorized):
        client_for(x, "not-a-token").get_users(usernames=x.usernames(1))
    with pytest.raises(tweepy.BadRequest) as caught:
        client_for(x, x.BEARER_TOKEN).get_users_followers(next(iter(BRANDS)), max_results=5000)
    assert "max_results" in str(caught.value)
