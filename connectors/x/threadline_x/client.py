"""The X API v2 as an HTTP client: the app's bearer token, the retry policy, and what X's
errors mean (an answer naming no user for a brand account id is the config's `followers_of`).
Public, for anything else that talks to X."""

from __future__ import annotations

from typing import Any

from threadline.http import DEFAULT_ACTIONS, Action, BearerAuth, HttpClient, RetryPolicy, Rule
from threadline_x.users import XResponseError

ACTIONS = DEFAULT_ACTIONS.override({
    XResponseError: Rule(Action.CONFIG_ERROR, field="followers_of", hint="a brand account id in followers_of does not exist"),
})


def x_client(config: Any, connector: str = "x") -> HttpClient:
    """A client for `config` (an XConfig, or anything with its fields)."""
    return HttpClient(
        config.base_url, auth=BearerAuth(config.bearer_token, field="bearer_token"), actions=ACTIONS,
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
        connector=connector,
    )
