"""The Mailchimp Marketing API 3.0 as an HTTP client: the data centre taken from the key, basic
auth with the key, the retry policy, and what Mailchimp's errors mean (a key refused as
"the wrong datacenter" is the config's `api_key`). Public: the `mailchimp_audiences`
destination talks to Mailchimp through it too."""

from __future__ import annotations

import re
from typing import Any

from threadline.contracts import ConfigError
from threadline.http import DEFAULT_ACTIONS, Action, BasicAuth, HttpClient, RetryPolicy, Rule

KEY_SHAPE = re.compile(r"^[0-9a-zA-Z]+-([a-z]+[0-9]+)$")
BASE_URL_HINT = "base_url must be the API root, ending in /3.0 (leave it unset for the vendor's own)"


def api_root(config: Any, connector: str = "mailchimp") -> str:
    """`base_url`, or https://<dc>.api.mailchimp.com/3.0 from the key's data-centre suffix."""
    if config.base_url:
        return config.base_url
    match = KEY_SHAPE.match(config.api_key.strip())
    if not match:
        raise ConfigError(
            "the API key has no data-centre suffix (a Mailchimp key looks like 0123…cdef-us21)", field="api_key",
            where=connector, hint="copy the whole key from Mailchimp: Profile → Extras → API keys",
        )
    return f"https://{match.group(1)}.api.mailchimp.com/3.0"


def mailchimp_client(config: Any, connector: str = "mailchimp") -> HttpClient:
    """A client for `config` (any config with api_key, base_url, backoff_base and max_rate_limit_wait)."""
    root = api_root(config, connector)
    match = KEY_SHAPE.match(config.api_key.strip())
    suffix = f"-{match.group(1)}" if match else "no data-centre suffix"
    refused = Rule(
        Action.CONFIG_ERROR, when="datacenter", field="api_key",
        message=f"Mailchimp refused the API key (401 API Key Invalid): the key is wrong or revoked, or it belongs to "
                f"another data centre than {root} (the key ends in {suffix})",
        hint="copy the key again from Mailchimp (Profile → Extras → API keys); leave base_url unset so the "
             "data centre is taken from the key's suffix",
    )
    return HttpClient(
        root,
        auth=BasicAuth("threadline", config.api_key, field="api_key"),
        actions=DEFAULT_ACTIONS.override({401: [refused, Action.REFRESH_AUTH]}),
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
        connector=connector,
    )
