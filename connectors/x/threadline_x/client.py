"""The X API v2 as an HTTP client: the app's bearer token, the retry policy, and what X's
errors mean (an answer naming no user for a brand account id is the config's `followers_of`;
a 403 `client-not-enrolled` is an app whose access tier does not include the endpoint, which
the bearer token decides). Public, for anything else that talks to X."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from threadline.http import DEFAULT_ACTIONS, Action, BearerAuth, HttpClient, RetryPolicy, Rule
from threadline_x.users import XResponseError

# Which access tier X documents for each endpoint the connector calls (checked 2026-12-06).
TIER_NEEDED = {"followers": "Enterprise (follows lookup)", "users/by": "Basic or above (user lookup)"}


def _not_enrolled(response: requests.Response) -> str:
    path = urlsplit(response.url).path
    endpoint = "followers" if path.endswith("/followers") else "users/by" if path.endswith("/users/by") else path
    needs = TIER_NEEDED.get(endpoint, "a higher access tier")
    return (f"X refused the app behind bearer_token (client-not-enrolled): its access tier does not include "
            f"{endpoint}, which needs {needs}")


ACTIONS = DEFAULT_ACTIONS.override({
    XResponseError: Rule(Action.CONFIG_ERROR, field="followers_of", hint="a brand account id in followers_of does not exist"),
    403: [Rule(Action.CONFIG_ERROR, when="client-not-enrolled", field="bearer_token", message=_not_enrolled,
               hint="use the bearer token of an app on an access tier that includes this endpoint (the X developer "
                    "portal shows the tier), or drop the stream: followers need Enterprise, usernames Basic"),
          Rule(Action.CONFIG_ERROR, field="bearer_token")],
})


def x_client(config: Any, connector: str = "x") -> HttpClient:
    """A client for `config` (an XConfig, or anything with its fields)."""
    return HttpClient(
        config.base_url, auth=BearerAuth(config.bearer_token, field="bearer_token"), actions=ACTIONS,
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
        connector=connector,
    )
