"""What both Google destinations share: the account and OAuth config, and the HTTP client.

Both APIs take an OAuth2 access token obtained with a refresh token (Google's installed-app
or web flow, scope `https://www.googleapis.com/auth/adwords` for the Ads API and
`https://www.googleapis.com/auth/datamanager` for the Data Manager API). The kit's OAuth2Auth
fetches it on first use, renews it before it expires, and once more when an answer says it
expired (a push can outlive a token).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from threadline.contracts import Spec
from threadline.http import HttpClient, OAuth2Auth, RequestBudget, RetryPolicy, Transport

from threadline_google_customer_match.errors import error_hook

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
_CUSTOMER_ID = re.compile(r"^\d{10}$")


class Consent(Spec):
    """The EU user consent sent with uploads (Google's `consent`). The profile store hands over
    only members with advertising consent, so GRANTED is what they gave."""

    ad_user_data: Literal["GRANTED", "DENIED"] = Field("GRANTED", description="consent to send user data to Google for advertising")
    ad_personalization: Literal["GRANTED", "DENIED"] = Field("GRANTED", description="consent to personalized advertising")


class GoogleAccountSpec(Spec):
    """The fields both destinations share (the README's config table documents each)."""

    customer_id: str
    user_list_id: str
    login_customer_id: str | None = None
    client_id: str
    client_secret: str
    refresh_token: str
    token_url: str = GOOGLE_TOKEN_URL
    consent: Consent = Consent()
    backoff_base: float = Field(1.0, gt=0)
    max_rate_limit_wait: float = Field(300.0, ge=0)

    @field_validator("customer_id", "login_customer_id")
    @classmethod
    def _ten_digits(cls, value: str | None) -> str | None:
        """Google Ads shows ids as 123-456-7890; the APIs want the 10 digits."""
        if value is None:
            return None
        digits = value.replace("-", "").strip()
        if not _CUSTOMER_ID.match(digits):
            raise ValueError(f"a Google Ads customer id has 10 digits (123-456-7890), not {value!r}")
        return digits

    @field_validator("user_list_id")
    @classmethod
    def _numeric(cls, value: str) -> str:
        if not value.strip().isdigit():
            raise ValueError(f"a user list id is a number (Audience manager → the list → its id), not {value!r}")
        return value.strip()


def google_client(name: str, base_url: str, config: GoogleAccountSpec, *, headers: dict[str, str] | None = None,
                  budget: RequestBudget | None = None) -> HttpClient:
    """The kit's client with OAuth2 (refresh token), the retry settings of `config`, and the
    hook turning Google's error bodies into classified errors (see `errors`)."""
    session = Transport()
    session.hooks["response"].append(error_hook(name))
    auth = OAuth2Auth(
        config.token_url, client_id=config.client_id, client_secret=config.client_secret,
        refresh_token=config.refresh_token, field="refresh_token",
    )
    retry = RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait)
    return HttpClient(base_url, auth=auth, retry=retry, budget=budget, headers=headers, connector=name, session=session)
