"""The LoyaltyLion Admin API v2 as an HTTP client: the key, the request budget, the retry
policy and what LoyaltyLion's errors mean. Public: anything else talking to LoyaltyLion
(an audience destination, a script) uses it too."""

from __future__ import annotations

from threadline.http import DEFAULT_ACTIONS, Action, BearerAuth, HttpClient, RequestBudget, RetryPolicy, Rule

ACTIONS = DEFAULT_ACTIONS.override({
    403: Rule(Action.CONFIG_ERROR, field="api_key",
              hint="the API key lacks a scope: give it read_customers in LoyaltyLion (Manage → API keys)"),
})


def loyaltylion_client(config, connector: str = "loyaltylion") -> HttpClient:
    """A client for `config` (a LoyaltylionConfig, or anything with its fields)."""
    return HttpClient(
        config.base_url,
        auth=BearerAuth(config.api_key, field="api_key"),
        actions=ACTIONS,
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
        budget=RequestBudget(calls=config.requests_per_second, per_seconds=1.0),
        connector=connector,
    )
