"""The Klaviyo API as an HTTP client: the key header, the revision header, the retry policy
and budget, and what Klaviyo's errors mean (a refused revision is the config's `revision`).
Public: the `klaviyo_lists` audience destination talks to Klaviyo through it too, so reading
and writing behave alike."""

from __future__ import annotations

from typing import Any

from threadline.http import DEFAULT_ACTIONS, Action, ActionTable, ApiKeyAuth, HttpClient, RequestBudget, RetryPolicy, Rule
from threadline.secrets import register_secret

# Klaviyo's current revision (checked 2026-12-06: the newest GA revision, the one klaviyo-api 25
# sends). A revision is stable for a year and deprecated the next, then retired; move this on
# before then.
DEFAULT_REVISION = "2026-10-15"
BASE_URL_HINT = "base_url must be the API root, ending in /api (leave it unset for the vendor's own)"


def klaviyo_actions(revision: str) -> ActionTable:
    """Klaviyo's answers: a 400 about the revision header names the `revision` field."""
    return DEFAULT_ACTIONS.override({
        400: [Rule(Action.CONFIG_ERROR, when="revision", field="revision",
                   message=f"Klaviyo refused the revision header {revision!r}",
                   hint=f"set revision to a date Klaviyo supports and has not retired (YYYY-MM-DD, e.g. {DEFAULT_REVISION})"),
              Action.FAIL],
    })


def klaviyo_client(config: Any, connector: str = "klaviyo") -> HttpClient:
    """A client for `config` (any config with api_key, base_url, revision, requests_per_second,
    backoff_base and max_rate_limit_wait: the source's and the destination's)."""
    register_secret(config.api_key)
    budget = None
    if config.requests_per_second:
        rate = config.requests_per_second
        budget = RequestBudget(int(rate), 1.0) if rate >= 1 else RequestBudget(1, 1 / rate)
    return HttpClient(
        config.base_url,
        auth=ApiKeyAuth(f"Klaviyo-API-Key {config.api_key}", name="Authorization", field="api_key"),
        headers={"revision": config.revision, "accept": "application/vnd.api+json"},
        actions=klaviyo_actions(config.revision),
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
        budget=budget, connector=connector,
    )
