"""The `linkedin_audiences` config: OAuth2 app credentials, the ad account and the DMP segment."""

from __future__ import annotations

from pydantic import Field, model_validator
from threadline.contracts import Spec


class LinkedInAudiencesConfig(Spec):
    client_id: str = Field(min_length=1, description="The LinkedIn app's client id (Developer Portal → Auth).")
    client_secret: str = Field(min_length=1, description="The LinkedIn app's client secret. Use ${LINKEDIN_CLIENT_SECRET}.")
    refresh_token: str = Field(min_length=1, description="A refresh token from the member's OAuth consent with the "
                                                         "rw_dmp_segments scope (valid a year). Use ${LINKEDIN_REFRESH_TOKEN}.")
    access_token: str | None = Field(None, description="An access token to start with (valid 60 days); renewed from "
                                                       "refresh_token when missing or expired.")
    ad_account_id: str = Field(pattern=r"^\d+$", description="The sponsored ad account (Campaign Manager account id).")
    segment_id: str | None = Field(None, pattern=r"^\d+$", description="The USER DMP segment to push to. Set this or "
                                                                        "segment_name.")
    segment_name: str | None = Field(None, min_length=1, description="Push to the ad account's USER segment with this "
                                                                     "name, creating it on the first push if there is none.")
    source_platform: str | None = Field(None, description="The sourcePlatform LinkedIn assigned your integration; needed "
                                                          "only to create a segment (segment_name).")
    linkedin_version: str = Field("202607", pattern=r"^\d{6}$", description="LinkedIn-Version header (YYYYMM); LinkedIn "
                                                                            "retires a version about a year after release.")
    send_names: bool = Field(False, description="Also send firstName, lastName and country, IN THE CLEAR (LinkedIn does "
                                                "not take them hashed); off by default.")
    created_segment_wait: float = Field(5.0, ge=0, description="Seconds to wait after creating a segment before adding "
                                                               "users (LinkedIn: wait 5 seconds).")
    base_url: str = Field("https://api.linkedin.com/rest", description="REST API root (the sandbox's URL + /rest in tests).")
    token_url: str = Field("https://www.linkedin.com/oauth/v2/accessToken", description="OAuth token endpoint.")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_retry_time: float = Field(300.0, gt=0, description="Longest one call is retried (429 throttling, 5xx) before "
                                                           "the push stops with a transient error.")

    @model_validator(mode="after")
    def _one_segment(self) -> LinkedInAudiencesConfig:
        if not (self.segment_id or self.segment_name):
            raise ValueError("set segment_id (an existing USER segment) or segment_name (found or created by name)")
        return self

    @property
    def account_urn(self) -> str:
        return f"urn:li:sponsoredAccount:{self.ad_account_id}"
