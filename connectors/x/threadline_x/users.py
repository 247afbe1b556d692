"""X user objects as flat Arrow rows: every hint the profile store can match a handle on.

A page is read by the kit's `PageParser` against the *nested* shape X sends (`public_metrics`
and `entities` as structs), then flattened with Arrow kernels, so no Python runs per record:

    entities.url.urls[0].expanded_url        → profile_url   (the link behind `url`'s t.co)
    entities.description.urls[].expanded_url → description_urls
    entities.description.mentions[].username → description_mentions
    public_metrics.*                         → followers_count, following_count, tweet_count, listed_count

A page the fast path cannot read (a value of an unexpected type inside `public_metrics`, say)
is flattened in Python instead; odd values are handed over as text, and the engine quarantines
the rows it cannot coerce, with a reason.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import requests

from threadline.http import PageParser, ParsedPage, RecordsPathMissing, schema_from_mapping
from threadline.http.actions import MalformedJson
from threadline.http.client import expect_json_response

USER_FIELDS = "created_at,description,entities,location,profile_image_url,protected,public_metrics,url,verified"

_URLS = "list<struct<expanded_url: string>>"
RAW_SCHEMA = schema_from_mapping({
    "id": "string", "username": "string", "name": "string", "location": "string", "description": "string",
    "url": "string", "created_at": "timestamp", "protected": "bool", "verified": "bool", "profile_image_url": "string",
    "public_metrics": "struct<followers_count: int64, following_count: int64, tweet_count: int64, listed_count: int64>",
    "entities": f"struct<url: struct<urls: {_URLS}>, description: struct<urls: {_URLS}, "
                "mentions: list<struct<username: string>>>>",
})
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

_NESTED = ("public_metrics", "entities")


class XResponseError(RecordsPathMissing):
    """A 200 answer with X's `errors` and no `data` (a user id that does not exist, say)."""

    hint = "check the user ids and usernames in the config"


class UserPageParser:
    """Parses one page of X user objects into `schema` (USERS_SCHEMA or FOLLOWERS_SCHEMA);
    `constants` fill columns the API does not send (`followed_id`)."""

    def __init__(self, schema: pa.Schema, constants: dict[str, str] | None = None) -> None:
        self.schema = schema
        self.constants = constants or {}
        self._raw = PageParser(RAW_SCHEMA, "data")

    def __call__(self, response: requests.Response) -> ParsedPage:
        expect_json_response(response)
        try:
            page = self._raw(response)
        except RecordsPathMissing:
            return self._without_data(response)
        if all(pa.types.is_struct(page.records.schema.field(name).type) for name in _NESTED):
            return ParsedPage(self._flatten(page.records), page.body, response)
        return self._careful(response)

    # ------------------------------------------------------------------ Arrow: the fast way

    def _flatten(self, raw: pa.RecordBatch) -> pa.RecordBatch:
        n = raw.num_rows
        metrics, entities = raw.column("public_metrics"), raw.column("entities")
        profile_urls = _expanded(pc.struct_field(pc.struct_field(entities, "url"), "urls"))
        description = pc.struct_field(entities, "description")
        columns: dict[str, pa.Array] = {
            **{name: pa.array([value] * n, pa.string()) for name, value in self.constants.items()},
            **{name: raw.column(name) for name in ("id", "username", "name", "location", "description", "url")},
            "profile_url": _first(profile_urls),
            "description_urls": _expanded(pc.struct_field(description, "urls")),
            "description_mentions": _strings_of(pc.struct_field(description, "mentions"), "username"),
            "created_at": raw.column("created_at"),
            **{m: pc.struct_field(metrics, m) for m in METRICS},
            **{name: raw.column(name) for name in ("protected", "verified", "profile_image_url")},
        }
        # By name, not by schema: a column the careful parser kept as text stays text for the
        # engine to coerce (and quarantine, with a reason, what it cannot).
        return pa.RecordBatch.from_arrays([columns[f.name] for f in self.schema], names=self.schema.names)

    # ------------------------------------------------------------------ Python: pages with odd values

    def _careful(self, response: requests.Response) -> ParsedPage:
        body = _json(response)
        records = body.get("data") or []
        values: dict[str, list[Any]] = {f.name: [] for f in self.schema}
        for user in records:
            entities = _dict(user.get("entities"))
            metrics = _dict(user.get("public_metrics"))
            desc = _dict(entities.get("description"))
            links = [_dict(u).get("expanded_url") for u in _list(_dict(entities.get("url")).get("urls"))]
            row = {
                **self.constants, **{k: user.get(k) for k in USER_COLUMNS if k in user},
                "profile_url": links[0] if links else None,
                "description_urls": [_dict(u).get("expanded_url") for u in _list(desc.get("urls"))],
                "description_mentions": [_dict(m).get("username") for m in _list(desc.get("mentions"))],
                **{m: metrics.get(m) for m in METRICS},
            }
            for name in values:
                values[name].append(row.get(name))
        arrays = [_array(values[f.name], f.type) for f in self.schema]
        batch = pa.RecordBatch.from_arrays(arrays, names=self.schema.names)
        return ParsedPage(batch, {k: v for k, v in body.items() if k != "data"}, response)

    def _without_data(self, response: requests.Response) -> ParsedPage:
        """X leaves `data` out when there is nothing: no followers, or no username found."""
        body = _json(response)
        errors = body.get("errors") or []
        count = (body.get("meta") or {}).get("result_count")
        if count is None and not errors:
            raise RecordsPathMissing(f"no 'data' in the answer (keys: {', '.join(body) or '-'})")
        if errors and not _all_not_found(errors, "usernames"):
            detail = "; ".join(str(e.get("detail") or e.get("message") or e) for e in errors[:3])
            raise XResponseError(f"X answered with errors and no data: {detail}")
        empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in self.schema], schema=self.schema)
        return ParsedPage(empty, body, response)


def _all_not_found(errors: list[dict[str, Any]], parameter: str) -> bool:
    """Usernames that no longer exist (renamed, deleted, suspended) are not an error of the read."""
    return all(e.get("parameter") == parameter for e in errors)


def _expanded(urls: pa.Array) -> pa.Array:
    return _strings_of(urls, "expanded_url")


def _strings_of(items: pa.Array, key: str) -> pa.Array:
    """list<struct<key: string>> → list<string>, in bulk; no list (null) becomes an empty one."""
    if isinstance(items, pa.ChunkedArray):
        items = items.combine_chunks()
    return pa.ListArray.from_arrays(items.offsets, items.values.field(key))


def _first(lists: pa.ListArray) -> pa.Array:
    """The first element of each list, null where a list is empty or null."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    starts = lists.offsets.slice(0, len(lists))
    index = pc.if_else(pc.greater(lengths, 0), starts, pa.scalar(None, starts.type))
    return pc.take(lists.values, index)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise MalformedJson(f"the response is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise RecordsPathMissing(f"expected a JSON object, got {type(body).__name__}")
    return body


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        # Handed over as text: the engine coerces to the schema, and quarantines with a reason
        # the rows it cannot (a follower count of "1.2K", a date that is not one).
        return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values], pa.string())
