"""X user objects as flat rows: every hint the profile store can match a handle on, declared
as column paths into the nested objects X sends (read in bulk by the HTTP kit):

    entities.url.urls[0].expanded_url        → profile_url   (the link behind `url`'s t.co)
    entities.description.urls[].expanded_url → description_urls
    entities.description.mentions[].username → description_mentions
    public_metrics.*                         → followers_count, following_count, tweet_count, listed_count

X leaves `data` out of an answer with nothing in it (no followers, no username found):
`UserPages.parse_page` reads such an answer as an empty page, and logs the handles X does not
know; other errors without data stop the read (`XResponseError`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import requests

from threadline.http import ParsedPage, RecordsPathMissing, RestStream, schema_from_mapping
from threadline.http.actions import MalformedJson

log = logging.getLogger("threadline.x")

USER_FIELDS = "created_at,description,entities,location,profile_image_url,protected,public_metrics,url,verified"
METRICS = ("followers_count", "following_count", "tweet_count", "listed_count")

USER_COLUMNS = {
    "id": "string", "username": "string", "name": "string", "location": "string", "description": "string",
    "url": "string", "profile_url": "string", "description_urls": "list<string>",
    "description_mentions": "list<string>", "created_at": "timestamp",
    **{m: "int64" for m in METRICS},
    "protected": "bool", "verified": "bool", "profile_image_url": "string",
}
USERS_SCHEMA = schema_from_mapping(USER_COLUMNS)
FOLLOWERS_SCHEMA = schema_from_mapping({"followed_id": "string", **USER_COLUMNS})
USER_PATHS = {
    "profile_url": "entities.url.urls[0].expanded_url",
    "description_urls": "entities.description.urls[].expanded_url",
    "description_mentions": "entities.description.mentions[].username",
    **{m: f"public_metrics.{m}" for m in METRICS},
}


class XResponseError(RecordsPathMissing):
    """A 200 answer with X's `errors` and no `data` (a user id that does not exist, say)."""

    hint = "check the user ids and usernames in the config"


@dataclass
class UserPages(RestStream):
    """An endpoint answering X user objects (see the module docstring)."""

    def parse_page(self, response: requests.Response) -> ParsedPage:
        try:
            page = super().parse_page(response)
        except RecordsPathMissing:
            return self._without_data(response)
        _log_unknown_handles(page.body)
        return page

    def _without_data(self, response: requests.Response) -> ParsedPage:
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise MalformedJson(f"the response is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise RecordsPathMissing(f"expected a JSON object, got {type(body).__name__}")
        errors = body.get("errors") or []
        if (body.get("meta") or {}).get("result_count") is None and not errors:
            raise RecordsPathMissing(f"no 'data' in the answer (keys: {', '.join(body) or '-'})")
        if errors and not all(e.get("parameter") == "usernames" for e in errors):
            detail = "; ".join(str(e.get("detail") or e.get("message") or e) for e in errors[:3])
            raise XResponseError(f"X answered with errors and no data: {detail}")
        _log_unknown_handles(body)
        assert isinstance(self.schema, pa.Schema)
        return ParsedPage(pa.RecordBatch.from_pylist([], schema=self.schema), body, response)


def _log_unknown_handles(body: dict[str, Any]) -> None:
    """Usernames X no longer knows (renamed, deleted, suspended) are skipped with a warning."""
    missing = [e.get("value") for e in body.get("errors") or [] if e.get("parameter") == "usernames"]
    if missing:
        log.warning("x / users: X has no user for %d handle(s) (renamed, deleted or suspended): %s",
                    len(missing), ", ".join(f"@{m}" for m in missing[:20]))
