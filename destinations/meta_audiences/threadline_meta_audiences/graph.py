"""Talking to Meta's Graph API with the HTTP kit: auth (token, appsecret_proof, renewal) and
what each Graph error code means.

The kit decides by HTTP status, but the Graph API states throttling and expired tokens in the
error body (`{"error": {"code": 80003, ...}}`, mostly under HTTP 400). `restate_graph_errors`
is a response hook that restates those answers in the status that means the same thing to
the kit — 429 with a Retry-After from `X-Business-Use-Case-Usage`, 503 for Meta's transient
codes, 401 for an expired token when it can be renewed — so the kit's retry, wait and
refresh rules apply unchanged. Every other Graph error reaches `parse_answer`, which raises
the classified error from `GRAPH_ERRORS` (what, where, what to do next).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import requests
from threadline.contracts import ConfigError, FatalError
from threadline.http import DEFAULT_ACTIONS, Action, Auth, HttpClient, RetryPolicy, Transport
from threadline.http.actions import MalformedJson
from threadline.http.client import expect_json_response
from threadline.secrets import redact, register_secret

from threadline_meta_audiences.config import MetaAudiencesConfig

log = logging.getLogger("threadline.meta_audiences")

DESTINATION = "meta_audiences"
THROTTLE_CODES = frozenset({4, 17, 613, 80003})  # app, user, API-specific and custom-audience rate limits
TRANSIENT_CODES = frozenset({1, 2})  # "unknown error", "service temporarily unavailable"
EXPIRED_TOKEN = 190

# 400 and 403 carry Graph errors; they go to parse_answer (which raises), not to the kit's FAIL.
GRAPH_ACTIONS = DEFAULT_ACTIONS.override({400: Action.SUCCESS, 403: Action.SUCCESS})


@dataclass(frozen=True)
class GraphError:
    """What a Graph error code means for a push: a config error on `field`, or a fatal one."""

    what: str
    hint: str
    field: str = ""  # set: ConfigError naming it; empty: FatalError


# Keyed by (code, subcode), or (code, a word of Meta's message) where the code alone is too broad.
GRAPH_ERRORS: dict[tuple[int, int | str | None], GraphError] = {
    (100, 33): GraphError("the audience does not exist, or this token cannot see it",
                          "check audience_id (Ads Manager → Audiences) and that the token's system user has the "
                          "audience's ad account assigned", field="audience_id"),
    (EXPIRED_TOKEN, None): GraphError("the access token is invalid or expired",
                                      "generate a new system-user token (Business Settings → System users) and set "
                                      "access_token, or set app_id, app_secret and exchange_token so it is renewed",
                                      field="access_token"),
    (100, "appsecret_proof"): GraphError("the app secret does not match the token's app (appsecret_proof refused)",
                                         "set app_secret to the secret of the app the token was issued for (App "
                                         "Dashboard → Settings → Basic)", field="app_secret"),
    (104, None): GraphError("no access token reached Meta", "set access_token", field="access_token"),
    (200, None): GraphError("the token lacks permission on this audience or its ad account",
                            "give the token's system user the ad account (Business Settings → Ad accounts) with "
                            "'Manage campaigns'", field="access_token"),
    (294, None): GraphError("the token lacks the ads_management permission",
                            "generate the token with the ads_management scope, from an app with Marketing API access",
                            field="access_token"),
    (2635, None): GraphError("Meta no longer serves this Marketing API version",
                             "set api_version to a current version (the Marketing API version history lists "
                             "them with their expiry dates), or remove it to use this plugin's default",
                             field="api_version"),
    (100, None): GraphError("Meta rejected the request's parameters",
                            "a row that does not match the schema or an unknown key is a bug in this plugin: report "
                            "it with the message above; other parameter errors name the parameter"),
}


def classify(error: Mapping[str, Any]) -> GraphError | None:
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    message = str(error.get("message") or "")
    worded = [meaning for (c, word), meaning in GRAPH_ERRORS.items()
              if c == code and isinstance(word, str) and word in message]
    exact = GRAPH_ERRORS.get((code, subcode)) if subcode is not None else None
    return exact or (worded[0] if worded else None) or GRAPH_ERRORS.get((code, None))


def describe(error: Mapping[str, Any]) -> str:
    """`(#100) Data is missing… [code 100/33]`: Meta's message and codes, never the payload."""
    code, subcode = error.get("code"), error.get("error_subcode")
    codes = f"code {code}" + (f"/{subcode}" if subcode else "")
    text = str(error.get("error_user_msg") or error.get("message") or "no message")
    return f"{redact(text)[:300]} [{codes}]"


def regain_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds until Meta lets the business call again, from `X-Business-Use-Case-Usage`
    (`{"<business id>": [{"type": ..., "estimated_time_to_regain_access": <minutes>}]}`)."""
    raw = headers.get("X-Business-Use-Case-Usage") or headers.get("x-business-use-case-usage")
    try:
        usage = json.loads(raw) if raw else {}
        minutes = [float(entry.get("estimated_time_to_regain_access") or 0)
                   for entries in usage.values() for entry in entries]
    except (ValueError, TypeError, AttributeError):
        return None
    return max(minutes) * 60 if minutes and max(minutes) > 0 else None


class MetaAuth(Auth):
    """The access token as a bearer header, `appsecret_proof` on every call when the app secret
    is known, and renewal through `fb_exchange_token` when app_id and exchange_token are set."""

    field = "access_token"

    def __init__(self, config: MetaAudiencesConfig) -> None:
        for secret in (config.access_token, config.app_secret, config.exchange_token):
            register_secret(secret)
        self.config = config
        self.token = config.access_token
        self.renewals = 0

    @property
    def can_refresh(self) -> bool:
        return self.config.can_renew

    def proof(self) -> str | None:
        if not self.config.app_secret:
            return None
        digest = hmac.new(self.config.app_secret.encode(), self.token.encode(), hashlib.sha256).hexdigest()
        register_secret(digest)
        return digest

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        proof = self.proof()
        if proof:
            r.prepare_url(r.url, {"appsecret_proof": proof})
        return r

    def refresh(self, session: Transport | None = None, timeout: Any = None) -> None:
        # A session of its own: the client's session restates Graph errors for the kit's loop.
        url = f"{self.config.graph_root}/oauth/access_token"
        params = {"grant_type": "fb_exchange_token", "client_id": self.config.app_id,
                  "client_secret": self.config.app_secret, "fb_exchange_token": self.config.exchange_token}
        try:
            response = Transport().get(url, params=params, timeout=timeout or (10, 30))
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ConfigError(f"could not renew the access token at {redact(url)}: {redact(exc)[:200]}",
                              field="access_token", where=DESTINATION,
                              hint="check base_url; the renewal asks Meta's oauth/access_token endpoint") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not token:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise ConfigError(
                f"the access token was refused and renewing it failed: Meta answered {response.status_code} "
                f"{describe(error)}", field="access_token", where=DESTINATION,
                hint="generate a new system-user token and set access_token and exchange_token; check app_id "
                     "and app_secret")
        register_secret(token)
        self.token = token
        self.renewals += 1
        log.info("%s: renewed the access token (fb_exchange_token)", DESTINATION)


def restate_graph_errors(auth: MetaAuth) -> Callable[..., requests.Response]:
    """The response hook (see the module docstring). Only error answers are touched."""

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if response.status_code < 400 or "json" not in response.headers.get("Content-Type", ""):
            return response
        error = _graph_error(response)
        if error is None:
            return response
        code = _int(error.get("code"))
        if code in THROTTLE_CODES:
            response.status_code = 429
            wait = regain_seconds(response.headers)
            if wait is not None:
                response.headers["Retry-After"] = str(int(wait))
        elif code in TRANSIENT_CODES or error.get("is_transient") is True:
            response.status_code = 503
        elif code == EXPIRED_TOKEN and auth.can_refresh:
            response.status_code = 401
        return response

    return hook


def make_client(config: MetaAudiencesConfig, stream: str) -> tuple[HttpClient, MetaAuth]:
    auth = MetaAuth(config)
    session = Transport()
    session.hooks["response"].append(restate_graph_errors(auth))
    client = HttpClient(
        config.graph_root, auth=auth, actions=GRAPH_ACTIONS, session=session, connector=DESTINATION,
        retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_wait),
    )
    return client, auth


def parse_answer(where: str) -> Callable[[requests.Response], dict[str, Any]]:
    """The kit's `parse` for Graph calls: the JSON body of a success, or the classified error."""

    def parse(response: requests.Response) -> dict[str, Any]:
        expect_json_response(response)
        try:
            body = response.json()
        except ValueError:
            raise MalformedJson(f"the answer is not valid JSON ({len(response.content)} bytes)") from None
        if response.status_code < 400 and isinstance(body, dict) and "error" not in body:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        line = f"{response.request.method} {redact(response.url.split('?')[0])}"
        if not isinstance(error, dict):
            raise FatalError(f"{line} answered {response.status_code}: {redact(response.text[:200])}", where=where,
                             hint="this is not a Graph API error: check base_url and api_version")
        meaning = classify(error)
        message = f"{line} answered {response.status_code}: {describe(error)}"
        if meaning is not None and meaning.field:
            raise ConfigError(f"{message} — {meaning.what}", field=meaning.field, where=where, hint=meaning.hint)
        what, hint = (meaning.what, meaning.hint) if meaning else ("Meta refused the call", "see Meta's message above")
        raise FatalError(f"{message} — {what}", where=where, hint=hint)

    return parse


def _graph_error(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
