"""The `x` source: followers of brand accounts and users looked up by username, from the X API
v2, declared on the HTTP kit.

- Followers fan out over the brand accounts (`/users/{account_id}/followers`); users are
  looked up 100 handles a request. Profile hints are column paths (users.py).
- The followers endpoint allows 15 requests per 15-minute window. A window that resets later
  than this run may wait (`max_rate_limit_wait`) pauses the stream: every page read is
  committed, and the stream is resumable, so the checkpoint saves where the walk was (the
  account and its `pagination_token`) with when the window resets. A read handed that state
  resumes at the saved page; a token X no longer accepts restarts that account from its
  first page.
- X has no incremental filter for followers or users: both streams are full refresh, landed
  by upsert on their primary keys.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from threadline.contracts import ConfigError, Spec
from threadline.http import BodyCursorPaginator, Fixed, HttpClient, RestSource, RestStream, SinglePage
from threadline.http.stream import RESUME_KEY
from threadline_x.client import x_client
from threadline_x.users import FOLLOWERS_SCHEMA, USER_FIELDS, USER_PATHS, USERS_SCHEMA, UserPages

LOOKUP_BATCH = 100  # usernames per GET /2/users/by, X's maximum
HANDLE = re.compile(r"^[A-Za-z0-9_]{1,15}$")  # X's OpenAPI `UserName`

__all__ = ["RESUME_KEY", "XConfig", "XSource"]


class XConfig(Spec):
    bearer_token: str = Field(description="The app's Bearer token (OAuth 2.0 app-only). Use ${X_BEARER_TOKEN} in the job file.")
    base_url: str = Field("https://api.x.com/2", description="The API root; the sandbox's URL + /2 in tests.")
    followers_of: list[str] = Field(
        default_factory=list, description="Numeric user ids of the brand accounts whose followers are read.")
    usernames: list[str] = Field(default_factory=list, description="Handles to look up (with or without @).")
    page_size: int = Field(1000, ge=1, le=1000, description="Followers per page (`max_results`, 1 to 1000).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(
        300.0, gt=0, description="Longest this run waits for a rate-limit window to reset (or retries); a later "
                                 "reset stops the stream cleanly with its state saved and the time to resume.")

    @field_validator("followers_of")
    @classmethod
    def _numeric_ids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not str(i).isdigit()]
        if bad:
            raise ValueError(f"followers_of takes numeric user ids, not {bad[0]!r}: look the id up with "
                             "GET /2/users/by/username/<handle> (or list the handle under `usernames` and read its id)")
        return [str(i) for i in ids]

    @field_validator("usernames")
    @classmethod
    def _bare_handles(cls, names: list[str]) -> list[str]:
        handles, seen = [], set()
        for name in (n.strip().lstrip("@") for n in names):
            if name and not HANDLE.match(name):
                # X refuses the whole request of 100 handles for one that is malformed (400).
                raise ValueError(f"usernames: {name!r} is not an X handle (1 to 15 letters, digits or _, as "
                                 "X's API defines it): write the handle as it follows the @ on the profile, "
                                 "not a profile URL or a display name")
            if name and name.lower() not in seen:  # X's handles ignore case
                handles.append(name)
                seen.add(name.lower())
        return handles


class XSource(RestSource[XConfig]):
    """Followers of brand accounts, and users by username, from the X API v2."""

    name = "x"
    spec = XConfig
    vendor = "X"
    wait_for_bare_429 = None  # X always says when its window resets

    def client(self, config: XConfig) -> HttpClient:
        return x_client(config, self.name)

    def streams(self, config: XConfig) -> list[RestStream]:
        handles = config.usernames
        return [
            UserPages(
                name="followers", path="/users/{account_id}/followers", schema=FOLLOWERS_SCHEMA, columns=USER_PATHS,
                primary_key=("followed_id", "id"), params={"max_results": config.page_size, "user.fields": USER_FIELDS},
                paginator=BodyCursorPaginator(cursor_path="meta.next_token", cursor_param="pagination_token"),
                partitions=Fixed(items=[{"account_id": a} for a in config.followers_of], field="followers_of",
                                 noun="brand account", columns={"followed_id": "account_id"}),
                resumable=True,
                description="Followers of each brand account (followed_id), most recent first, with every profile hint.",
            ),
            UserPages(
                name="users", path="/users/by", schema=USERS_SCHEMA, columns=USER_PATHS, primary_key=("id",),
                paginator=SinglePage(), params={"user.fields": USER_FIELDS},
                partitions=Fixed(items=[{"usernames": ",".join(handles[i:i + LOOKUP_BATCH])}
                                        for i in range(0, len(handles), LOOKUP_BATCH)], noun="usernames"),
                description="Users looked up by username, with every profile hint.",
            ),
        ]

    def probes(self, config: XConfig) -> list[RestStream]:
        if not config.followers_of and not config.usernames:
            raise ConfigError("nothing to read: neither followers_of nor usernames is set", field="followers_of",
                              where=self.name, hint="list brand account ids under followers_of, handles under usernames")
        return [s for s in self.streams(config) if (s.name == "followers" and config.followers_of)
                or (s.name == "users" and config.usernames)]
