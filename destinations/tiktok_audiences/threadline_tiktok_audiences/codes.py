"""TikTok's return codes and what to do about each: a table you can read in one screen.

The Business API answers HTTP 200 for errors too; the verdict is the body's `code` (0 is
success). `classify_response` is the `parse` step the HTTP kit's client calls on every 2xx
answer: it returns `data` on code 0, raises `TikTokBusy` (which the client retries with
back-off, like a 429 or a 503) for throttling and system errors, and raises the contract's
ConfigError or FatalError for the rest, naming the config field or the audience.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from threadline.contracts import ConfigError, FatalError
from threadline.http import Action, BadPage, MalformedJson, describe_request
from threadline.secrets import redact


@dataclass(frozen=True)
class ReturnCode:
    meaning: str
    action: Action  # RATE_LIMITED and RETRY are retried; CONFIG_ERROR names `field`; FAIL stops the push
    field: str = ""
    hint: str = ""


RETURN_CODES: dict[int, ReturnCode] = {
    40001: ReturnCode("no permission to operate this advertiser", Action.CONFIG_ERROR, "advertiser_id",
                      "check advertiser_id, and that the access token was authorized for that ad account "
                      "(TikTok Business Center → the app's authorized advertisers)"),
    40002: ReturnCode("parameter error: TikTok refused the request, nothing in it was applied", Action.FAIL,
                      hint="check audience_id belongs to advertiser_id; if it does, this is a bug in the "
                           "request the destination built: report it with the request_id"),
    40100: ReturnCode("requests made too frequently (the app's QPS limit)", Action.RATE_LIMITED),
    40104: ReturnCode("the access token is missing", Action.CONFIG_ERROR, "access_token",
                      "set access_token (from ${TIKTOK_ACCESS_TOKEN})"),
    40105: ReturnCode("the access token is incorrect or has been revoked", Action.CONFIG_ERROR, "access_token",
                      "authorize the app for the advertiser again and put the new long-term access token in "
                      "access_token"),
    50000: ReturnCode("TikTok system error", Action.RETRY),
    51021: ReturnCode("too many requests", Action.RATE_LIMITED),
}


class TikTokBusy(BadPage):
    """A code TikTok means as "try again later" (throttling, system errors)."""


def classify_response(where: str) -> Callable[[requests.Response], Any]:
    """The client's `parse` step for one call: `data` on code 0, otherwise the error the code means."""

    def parse(response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise MalformedJson("TikTok answered with a body that is not JSON") from None
        code = body.get("code") if isinstance(body, dict) else None
        if code == 0:
            return body.get("data") or {}
        line = describe_request(response.request.method or "POST", response.request.url or "")
        said = f"code {code}: {redact(str(body.get('message', '')))[:200]} (request_id {body.get('request_id', '-')})"
        known = RETURN_CODES.get(code) if isinstance(code, int) else None
        if known is None:
            raise FatalError(f"{line} answered {said}", where=where,
                             hint="an undocumented TikTok code; the message says what went wrong")
        if known.action in (Action.RATE_LIMITED, Action.RETRY):
            raise TikTokBusy(f"TikTok {said} — {known.meaning}")
        if known.action is Action.CONFIG_ERROR:
            raise ConfigError(f"{line} answered {said} — {known.meaning}", field=known.field, where=where,
                              hint=known.hint)
        raise FatalError(f"{line} answered {said} — {known.meaning}", where=where, hint=known.hint)

    return parse
