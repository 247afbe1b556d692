"""HubSpot's CRM API v3 as an HTTP client: the private app token, the request budget, the
retry policy, HubSpot's 429s (no Retry-After: the window's length is waited out), and what its
401 and 403 mean in the user's terms. Public, for anything else that talks to HubSpot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import requests

from threadline.http import DEFAULT_ACTIONS, Action, BearerAuth, HttpClient, RequestBudget, RetryPolicy, Rule

SCOPES_HINT = ("in HubSpot: Settings → Integrations → Private Apps → Scopes; add the CRM read scopes for contacts, "
               "companies and deals, then use the new token")


def _missing_scopes(response: requests.Response) -> str:
    """HubSpot answers 403 only for missing scopes (MISSING_SCOPES), and names them."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    scopes = sorted({s for e in errors if isinstance(e, dict)
                     for s in (e.get("context") or {}).get("requiredGranularScopes") or []})
    return f"the private app token lacks a scope this stream needs ({', '.join(scopes) or 'a crm.objects read scope'})"


ACTIONS = DEFAULT_ACTIONS.override({
    401: Rule(Action.REFRESH_AUTH, field="access_token",
              message="HubSpot refused the access token (expired, rotated or revoked)",
              hint="copy the private app's current token into HUBSPOT_ACCESS_TOKEN (HubSpot Settings → "
                   "Integrations → Private Apps → Auth)"),
    403: Rule(Action.CONFIG_ERROR, field="access_token", message=_missing_scopes, hint=SCOPES_HINT),
})


def hubspot_wait(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """HubSpot's 429 says which window was hit but not when to retry: wait the window out."""
    if response.status_code == 429 and "Retry-After" not in response.headers:
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        policy = ""
        try:
            policy = json.loads(response.content).get("policyName", "")
        except (ValueError, AttributeError):
            pass
        if policy == "DAILY":
            now = datetime.now(UTC)
            seconds = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)  # resets at midnight
            response.headers["Retry-After"] = str(seconds)
        elif interval and interval.isdigit():
            response.headers["Retry-After"] = f"{int(interval) / 1000:g}"
    return response


def hubspot_client(config: Any, connector: str = "hubspot") -> HttpClient:
    """A client for `config` (a HubspotConfig, or anything with its fields)."""
    budget = RequestBudget(config.requests_per_10_seconds, 10.0) if config.requests_per_10_seconds else None
    client = HttpClient(
        config.base_url, auth=BearerAuth(config.access_token, field="access_token"), actions=ACTIONS,
        connector=connector, budget=budget,
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_retry_time),
    )
    client.session.hooks["response"].append(hubspot_wait)
    return client
