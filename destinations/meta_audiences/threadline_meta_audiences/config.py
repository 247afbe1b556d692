"""The `meta_audiences` config: which audience, which token, which identifiers go out."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from threadline.contracts import Spec

# The identifiers prepare() can build from the profile store's members, in the order they are
# sent (Meta's multi-key schema is positional). GEN and MADID are not in the member columns.
HASHED_KEYS = ("EMAIL", "PHONE", "FN", "LN", "FI", "CT", "ST", "ZIP", "COUNTRY", "DOBY", "DOBM", "DOBD")
Identifier = Literal["EMAIL", "PHONE", "FN", "LN", "FI", "CT", "ST", "ZIP", "COUNTRY", "DOBY", "DOBM", "DOBD"]

GRAPH_URL = "https://graph.facebook.com"
# Meta's newest Marketing API version (released 2026-11-04; checked 2026-12-06 in the Marketing
# API version history). Marketing API versions expire about a year after release: v25.0 on
# 2027-02-23, v24.0 expired 2026-11-10.
API_VERSION = "v27.0"


class MetaAudiencesConfig(Spec):
    access_token: str = Field(description="A Marketing API access token with ads_management on the audience's ad "
                                          "account (a system-user token). Use ${META_ACCESS_TOKEN}.")
    audience_id: str = Field(pattern=r"^\d+$", description="The customer-file Custom Audience to push to (its "
                                                           "numeric id, from Audiences in Ads Manager).")
    base_url: str = Field(GRAPH_URL, description="The Graph API root; the sandbox's URL to test.")
    api_version: str = Field(API_VERSION, pattern=r"^v\d+\.0$", description="Marketing API version, e.g. v27.0.")
    identifiers: list[Identifier] = Field(
        default_factory=lambda: list(HASHED_KEYS), min_length=1,
        description="Which of Meta's match keys to send (hashed), in this order.")
    extern_id: bool = Field(False, description="Also send the profile id as EXTERN_ID (not hashed), so Meta can "
                                               "match later uploads by it.")
    app_secret: str | None = Field(None, description="The app's secret: every call then carries appsecret_proof "
                                                     "(needed when the app requires it). Use ${META_APP_SECRET}.")
    app_id: str | None = Field(None, description="The app's id; with app_secret and exchange_token, an expired "
                                                 "access token is renewed mid-push.")
    exchange_token: str | None = Field(None, description="A long-lived token exchanged (fb_exchange_token) for a "
                                                         "fresh access token when Meta answers 190. Use ${META_EXCHANGE_TOKEN}.")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry of a failed call; doubles each retry.")
    max_wait: float = Field(300.0, gt=0, description="Longest one call is retried or waits out Meta's throttling "
                                                     "before the push fails with a transient error.")

    @model_validator(mode="after")
    def _renewal_is_complete(self) -> MetaAudiencesConfig:
        renewal = {"app_id": self.app_id, "exchange_token": self.exchange_token}
        if any(renewal.values()) and not (all(renewal.values()) and self.app_secret):
            missing = [k for k, v in {**renewal, "app_secret": self.app_secret}.items() if not v]
            raise ValueError(f"renewing the access token needs app_id, app_secret and exchange_token; missing {missing}")
        return self

    @property
    def can_renew(self) -> bool:
        return bool(self.app_id and self.app_secret and self.exchange_token)

    @property
    def graph_root(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.api_version}"
