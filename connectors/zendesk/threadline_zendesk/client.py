"""Zendesk Support's API as an HTTP client: API-token or OAuth auth, the request budget, the
retry policy, and what Zendesk's 401 and 403 mean in the user's terms. Public, for anything
else that talks to Zendesk."""

from __future__ import annotations

from typing import Any

from threadline.http import DEFAULT_ACTIONS, Action, BasicAuth, BearerAuth, HttpClient, RequestBudget, RetryPolicy, Rule

ACTIONS = DEFAULT_ACTIONS.override({
    401: [Rule(Action.REFRESH_AUTH, message="Zendesk refused the credentials (wrong, expired or revoked)",
               hint="check email and api_token (or oauth_token) in the job file and the environment variables they "
                    "come from; a deleted or deactivated API token must be replaced")],
    403: Rule(Action.CONFIG_ERROR, message="Zendesk refused access",
              hint="the incremental exports need an admin: use an admin's email and API token, or an OAuth token "
                   "with the `read` scope"),
})


def zendesk_client(config: Any, connector: str = "zendesk") -> HttpClient:
    """A client for `config` (a ZendeskConfig, or anything with its fields)."""
    if config.oauth_token:
        auth: Any = BearerAuth(config.oauth_token, field="oauth_token")
    else:
        auth = BasicAuth(f"{config.email}/token", config.api_token or "", field="api_token")
    budget = RequestBudget(config.requests_per_minute, 60.0) if config.requests_per_minute else None
    return HttpClient(config.base_url, auth=auth, actions=ACTIONS, connector=connector, budget=budget,
                      retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_retry_time))
