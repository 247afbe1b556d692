"""The Mailchimp Marketing API 3.0 as an HTTP client: the credentials (an API key, whose suffix
names the data centre, or an OAuth access token of a Mailchimp app with its data centre), the
retry policy, and what Mailchimp's errors mean (a credential refused as "the wrong datacenter"
is the config's `api_key` or `access_token`). Public: the `mailchimp_audiences` destination
talks to Mailchimp through it too."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from threadline.contracts import ConfigError, Spec
from threadline.http import DEFAULT_ACTIONS, Action, BasicAuth, BearerAuth, HttpClient, RetryPolicy, Rule

KEY_SHAPE = re.compile(r"^[0-9a-zA-Z]+-([a-z]+[0-9]+)$")
BASE_URL_HINT = "base_url must be the API root, ending in /3.0 (leave it unset for the vendor's own)"


class MailchimpCredentials(Spec):
    """How a config signs in to Mailchimp: an API key, or an OAuth access token and its data centre."""

    api_key: str | None = Field(None, description="A Mailchimp API key, `<key>-<dc>`; its suffix names the data "
                                                  "centre. Use ${MAILCHIMP_API_KEY} in the job file.")
    access_token: str | None = Field(None, description="Instead of api_key: an OAuth 2 access token of a Mailchimp "
                                                       "app (sent as Bearer; it does not expire). Needs data_center.")
    data_center: str | None = Field(None, pattern=r"^[a-z]+[0-9]+$", description="With access_token: the account's "
                                    "data centre (us21), the `dc` Mailchimp's OAuth metadata answers for the token.")

    @model_validator(mode="after")
    def _one_credential(self) -> MailchimpCredentials:
        if (self.api_key is None) == (self.access_token is None):
            raise ValueError("give exactly one of api_key (an API key) and access_token (an OAuth access token)")
        return self


def api_root(config: Any, connector: str = "mailchimp") -> str:
    """`base_url`, or https://<dc>.api.mailchimp.com/3.0 from `data_center` or the key's suffix."""
    if config.base_url:
        return config.base_url
    if config.access_token:
        if not config.data_center:
            raise ConfigError(
                "an OAuth access token does not say which data centre the account is on", field="data_center",
                where=connector, hint="set data_center to the `dc` that https://login.mailchimp.com/oauth2/metadata "
                                      "answers for the token (for example us21)")
        return f"https://{config.data_center}.api.mailchimp.com/3.0"
    match = KEY_SHAPE.match(config.api_key.strip())
    if not match:
        raise ConfigError(
            "the API key has no data-centre suffix (a Mailchimp key looks like 0123…cdef-us21)", field="api_key",
            where=connector, hint="copy the whole key from Mailchimp: Profile → Extras → API keys",
        )
    return f"https://{match.group(1)}.api.mailchimp.com/3.0"


def mailchimp_client(config: Any, connector: str = "mailchimp") -> HttpClient:
    """A client for `config` (any `MailchimpCredentials` with base_url, backoff_base and max_rate_limit_wait)."""
    root = api_root(config, connector)
    if config.access_token:
        auth: BasicAuth | BearerAuth = BearerAuth(config.access_token, field="access_token")
        refused = Rule(
            Action.CONFIG_ERROR, when="datacenter", field="access_token",
            message=f"Mailchimp refused the OAuth access token (401): the user disconnected the app, or the account "
                    f"is on another data centre than {root}",
            hint="connect the Mailchimp account to the app again, and set data_center to the token's `dc`",
        )
    else:
        match = KEY_SHAPE.match(config.api_key.strip())
        suffix = f"-{match.group(1)}" if match else "no data-centre suffix"
        auth = BasicAuth("threadline", config.api_key, field="api_key")
        refused = Rule(
            Action.CONFIG_ERROR, when="datacenter", field="api_key",
            message=f"Mailchimp refused the API key (401 API Key Invalid): the key is wrong or revoked, or it belongs "
                    f"to another data centre than {root} (the key ends in {suffix})",
            hint="copy the key again from Mailchimp (Profile → Extras → API keys); leave base_url unset so the "
                 "data centre is taken from the key's suffix",
        )
    return HttpClient(
        root, auth=auth,
        actions=DEFAULT_ACTIONS.override({401: [refused, Action.REFRESH_AUTH]}),
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
        connector=connector,
    )
