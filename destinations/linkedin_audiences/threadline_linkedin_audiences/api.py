"""LinkedIn's REST API as this destination uses it: OAuth2 refresh, the versioned headers, and
what each error status means (a table, as for the HTTP kit).

The kit's client retries 429 and 5xx and refreshes the token once on a 401. The statuses in
`VENDOR_STATUSES` are handed to `classify` instead, which reads LinkedIn's error body and raises
the error that names the right config field: the generic 4xx handling would blame the
credential for a retired API version (426) or an ad account the member has no role on (403).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import requests
from threadline.contracts import ConfigError, FatalError
from threadline.http import DEFAULT_ACTIONS, Action, HttpClient, OAuth2Auth, RetryPolicy, Transport, describe_request
from threadline.secrets import redact, register_secret

from threadline_linkedin_audiences.config import LinkedInAudiencesConfig

NAME = "linkedin_audiences"
VENDOR_STATUSES = (400, 403, 404, 422, 426)
ACTIONS = DEFAULT_ACTIONS.override(dict.fromkeys(VENDOR_STATUSES, Action.SUCCESS))  # → classify()


@dataclass(frozen=True)
class StatusMeaning:
    meaning: str
    field: str = ""  # set: a ConfigError naming this field; empty: a FatalError
    hint: str = ""


STATUS_MEANINGS: dict[int, StatusMeaning] = {
    403: StatusMeaning("the member who authorized the app may not manage this ad account's audiences", "ad_account_id",
                       "the member needs a role other than VIEWER on ad_account_id, and the app the rw_dmp_segments "
                       "permission (Audiences program)"),
    404: StatusMeaning("no such DMP segment (or it was created under 5 seconds ago)",
                       hint="check segment_id, or wait a few seconds after creating a segment"),
    426: StatusMeaning("LinkedIn no longer serves this API version", "linkedin_version",
                       "set linkedin_version to an active YYYYMM (LinkedIn retires versions about a year after "
                       "release; see the API's versioning page)"),
}


class SegmentNotFound(FatalError):
    """A 404 for a segment: a config error in `check`, a fatal error in a push."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def classify(where: str) -> Callable[[requests.Response], Answer]:
    """The client's `parse` step: the answer of a 2xx, otherwise the error LinkedIn's body means."""

    def parse(response: requests.Response) -> Answer:
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {"message": response.text[:200]}
        body = body if isinstance(body, dict) else {"elements": body}
        if 200 <= response.status_code < 300:
            return Answer(response.status_code, body, dict(response.headers))
        line = describe_request(response.request.method or "GET", response.request.url or "")
        said = (f"answered {response.status_code} {body.get('code', '')}: "
                f"{redact(str(body.get('message') or body.get('error') or ''))[:200]}")
        meaning = STATUS_MEANINGS.get(response.status_code)
        if meaning is not None and meaning.field:
            raise ConfigError(f"{line} {said} — {meaning.meaning}", field=meaning.field, where=where, hint=meaning.hint)
        if response.status_code == 404:
            raise SegmentNotFound(f"{line} {said} — {STATUS_MEANINGS[404].meaning}", where=where,
                                  hint=STATUS_MEANINGS[404].hint)
        raise FatalError(f"{line} {said}", where=where,
                         hint="LinkedIn refused the request as built; if the message names no config field this is "
                              "a bug in the destination: report it with the message above")

    return parse


class LinkedInAuth(OAuth2Auth):
    """LinkedIn's refresh-token flow: client id and secret go in the form body, not basic auth."""

    def __init__(self, config: LinkedInAudiencesConfig) -> None:
        super().__init__(config.token_url, client_id=config.client_id, client_secret=config.client_secret,
                         refresh_token=config.refresh_token, field="refresh_token")
        if config.access_token:
            register_secret(config.access_token)
            self.access_token, self.expires_at = config.access_token, float("inf")  # a 401 renews it

    def refresh(self, session: Transport | None = None, timeout: Any = None) -> None:
        session = session or self._session or Transport()
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token,
                "client_id": self.client_id, "client_secret": self.client_secret}
        try:
            response = session.post(self.token_url, data=form, timeout=timeout or self._timeout)
        except requests.RequestException as exc:
            raise ConfigError(f"could not reach LinkedIn's token URL {redact(self.token_url)}: {redact(exc)}",
                              field="token_url", where=NAME, hint="check token_url and that it is reachable") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if response.status_code != 200 or not body.get("access_token"):
            error = str(body.get("error", ""))
            field_name = "client_secret" if error == "invalid_client" else "refresh_token"
            raise ConfigError(
                f"LinkedIn refused the token refresh ({response.status_code} {error}): "
                f"{redact(str(body.get('error_description', response.text[:200])))}", field=field_name, where=NAME,
                hint="check client_id and client_secret of the LinkedIn app" if field_name == "client_secret" else
                "the refresh token expired (they last a year) or was revoked: have the member authorize the app "
                "again and put the new refresh token in refresh_token")
        register_secret(body["access_token"])
        if body.get("refresh_token"):
            register_secret(body["refresh_token"])
            self.refresh_token = body["refresh_token"]
        self.access_token = body["access_token"]
        self.expires_at = time.time() + float(body.get("expires_in") or 3600)
        self.refreshes += 1


class LinkedInApi:
    """DMP segment calls with LinkedIn's headers, through the HTTP kit."""

    def __init__(self, config: LinkedInAudiencesConfig) -> None:
        self.config = config
        self.auth = LinkedInAuth(config)
        self.client = HttpClient(
            config.base_url, auth=self.auth, actions=ACTIONS, connector=NAME,
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_retry_time),
            headers={"LinkedIn-Version": config.linkedin_version, "X-Restli-Protocol-Version": "2.0.0"},
        )

    def call(self, method: str, path: str, *, stream: str, params: dict[str, Any] | None = None,
             body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        if body is not None:
            headers = {"Content-Type": "application/json", **(headers or {})}
        answer = self.client.request(method, path, params=params, data=body, headers=headers, stream=stream,
                                     parse=classify(f"{NAME} / {stream}"))
        return cast(Answer, answer)  # never None: no status is IGNOREd

    def segment(self, segment_id: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", f"/dmpSegments/{segment_id}", stream="check").body
        except SegmentNotFound:
            return None

    def segment_named(self, name: str) -> str | None:
        """The id of the ad account's USER segment called `name`, or None."""
        start, total = 0, 1
        while start < total:
            page = self.call("GET", "/dmpSegments", stream="segments", params={
                "q": "account", "account": self.config.account_urn, "start": start, "count": 100}).body
            for segment in page.get("elements", []):
                if segment.get("name") == name and segment.get("type") == "USER":
                    return str(segment["id"])
            total = int((page.get("paging") or {}).get("total") or 0)
            start += 100
        return None

    def create_segment(self, name: str) -> str:
        if not self.config.source_platform:
            raise ConfigError(f"no USER segment named {name!r} exists in ad account {self.config.ad_account_id}, and "
                              "creating one needs source_platform", field="source_platform", where=f"{NAME} / create",
                              hint="set source_platform to the value LinkedIn assigned your integration, or create "
                                   "the segment in Campaign Manager and set segment_id")
        body = json.dumps({"name": name, "sourcePlatform": self.config.source_platform,
                           "account": self.config.account_urn, "accessPolicy": "PRIVATE", "type": "USER",
                           "destinations": [{"destination": "LINKEDIN"}]}).encode()
        answer = self.call("POST", "/dmpSegments", stream=f"create segment {name!r}", body=body)
        created = {k.lower(): v for k, v in answer.headers.items()}.get("x-restli-id")
        if not created:
            raise FatalError("LinkedIn created the segment but named no id (x-restli-id header missing)",
                             where=f"{NAME} / create", hint="look the segment up in Campaign Manager and set segment_id")
        return str(created)

    def close(self) -> None:
        self.client.close()
