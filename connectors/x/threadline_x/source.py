"""The `x` source: followers of brand accounts and users looked up by username, from the X API v2.

Both streams are `RestStream` declarations; what is unusual is written around them:

- X leaves `data` out of an empty answer and nests the profile hints, so pages go through
  `UserPageParser` (users.py), which flattens them with Arrow kernels.
- The followers endpoint allows 15 requests per 15-minute window. A window that resets later
  than this run may wait (`max_rate_limit_wait`) stops the stream cleanly: every page read is
  committed, a checkpoint saves where the walk was (account and `pagination_token`) and when the
  window resets, and the error says when to run again. A read handed that state resumes at the
  saved page; a token X no longer accepts restarts that account from its first page.
- X has no incremental filter for followers or users: both streams are full refresh, landed
  by upsert on their primary keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydantic import Field, field_validator

from threadline.contracts import (
    Batch, Catalog, Checkpoint, ConfigError, FatalError, Message, ReadRequest, Source, Spec, TransientError,
)
from threadline.http.pause import stop_for_rate_limit
from threadline.http.source import checking, read_first_page
from threadline.http import BearerAuth, BodyCursorPaginator, HttpClient, RestStream, RetryPolicy, SinglePage
from threadline.http.records import ParsedPage
from threadline_x.users import FOLLOWERS_SCHEMA, USER_FIELDS, USERS_SCHEMA, UserPageParser

log = logging.getLogger("threadline.x")

LOOKUP_BATCH = 100  # usernames per GET /2/users/by, X's maximum
RESUME_KEY = "resume"  # where the followers walk stopped: {"account_id", "pagination_token", "accounts_done"}


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
            if name and name.lower() not in seen:  # X's handles ignore case
                handles.append(name)
                seen.add(name.lower())
        return handles



class UsersPages(RestStream):
    """An endpoint answering X user objects; `parser` flattens them (see users.py)."""

    parser: UserPageParser | None = None
    last_next_token: str | None = None  # meta.next_token of the last page parsed: where a resume starts

    def parse_page(self, response: Any) -> ParsedPage:
        assert self.parser is not None
        page = self.parser(response)
        self.last_next_token = (page.body.get("meta") or {}).get("next_token")
        return page


class XSource(Source[XConfig]):
    """Followers of brand accounts, and users by username, from the X API v2."""

    name = "x"
    spec = XConfig

    # ------------------------------------------------------------------ client and declarations

    def client(self, config: XConfig) -> HttpClient:
        return HttpClient(
            config.base_url,
            auth=BearerAuth(config.bearer_token, field="bearer_token"),
            retry=RetryPolicy(backoff_base=config.backoff_base, max_retry_time=config.max_rate_limit_wait),
            connector=self.name,
        )

    def followers_stream(self, config: XConfig, account_id: str = "{id}", token: str | None = None) -> UsersPages:
        params: dict[str, Any] = {"max_results": config.page_size, "user.fields": USER_FIELDS}
        if token:
            params["pagination_token"] = token
        stream = UsersPages(
            name="followers", path=f"/users/{account_id}/followers", schema=FOLLOWERS_SCHEMA,
            primary_key=("followed_id", "id"), params=params,
            paginator=BodyCursorPaginator(cursor_path="meta.next_token", cursor_param="pagination_token"),
            description="Followers of each brand account (followed_id), most recent first, with every profile hint.",
        )
        stream.parser = UserPageParser(FOLLOWERS_SCHEMA, {"followed_id": account_id})
        return stream

    def users_stream(self, config: XConfig, usernames: list[str] | None = None) -> UsersPages:
        stream = UsersPages(
            name="users", path="/users/by", schema=USERS_SCHEMA, primary_key=("id",), paginator=SinglePage(),
            params={"usernames": ",".join(usernames or []), "user.fields": USER_FIELDS},
            description="Users looked up by username, with every profile hint.",
        )
        stream.parser = UserPageParser(USERS_SCHEMA)
        return stream

    # ------------------------------------------------------------------ the contract

    def discover(self, config: XConfig) -> Catalog:
        return Catalog((self.followers_stream(config).to_stream(), self.users_stream(config).to_stream()))

    def check(self, config: XConfig) -> None:
        if not config.followers_of and not config.usernames:
            raise ConfigError("nothing to read: neither followers_of nor usernames is set", field="followers_of",
                              where=self.name, hint="list brand account ids under followers_of, handles under usernames")
        probes = [self.followers_stream(config, account) for account in config.followers_of]
        probes += [self.users_stream(config, config.usernames[:LOOKUP_BATCH])] if config.usernames else []
        with checking(self.client(config)) as client:
            try:
                for stream in probes:
                    read_first_page(stream, client)
            except FatalError as exc:
                if "Not Found Error" in exc.message or "Could not find user" in exc.message:
                    raise ConfigError(exc.message, field="followers_of", where=exc.where,
                                      hint="a brand account id in followers_of does not exist") from None
                raise

    def read(self, config: XConfig, request: ReadRequest) -> Iterator[Message]:
        readers = {"followers": self._read_followers, "users": self._read_users}
        reader = readers.get(request.stream.name)
        if reader is None:
            raise ConfigError(f"no stream named {request.stream.name!r}", hint=f"declared: {', '.join(readers)}")
        client = self.client(config)
        position: dict[str, Any] = {}  # where the read is, for a clean stop
        try:
            yield from reader(config, client, request, position)
        except TransientError as exc:
            yield from stop_for_rate_limit(exc, vendor="X", stream=request.stream.name, connector=self.name,
                                           state=position, max_wait=config.max_rate_limit_wait)
        finally:
            client.close()

    # ------------------------------------------------------------------ readers

    def _read_followers(self, config: XConfig, client: HttpClient, request: ReadRequest,
                        position: dict[str, Any]) -> Iterator[Message]:
        saved = request.state.get(RESUME_KEY) or {}
        done: list[str] = [a for a in saved.get("accounts_done", []) if a in config.followers_of]
        for account in config.followers_of:
            if account in done:
                continue
            token = saved.get("pagination_token") if saved.get("account_id") == account else None
            position[RESUME_KEY] = {"account_id": account, "pagination_token": token, "accounts_done": list(done)}
            yield from self._walk(config, client, request, account, token, done, position)
            done.append(account)
        # The walk is complete: the next run starts again from the first page.
        position[RESUME_KEY] = None
        yield Checkpoint("followers", {RESUME_KEY: None})

    def _walk(self, config: XConfig, client: HttpClient, request: ReadRequest, account: str, token: str | None,
              done: list[str], position: dict[str, Any]) -> Iterator[Message]:
        stream = self.followers_stream(config, account, token)
        try:
            for message in stream.read(client, request):
                if isinstance(message, Checkpoint):
                    resume = {"account_id": account, "pagination_token": stream.last_next_token, "accounts_done": list(done)}
                    position[RESUME_KEY] = resume
                    message = Checkpoint("followers", {RESUME_KEY: resume})
                yield message
        except FatalError as exc:
            if not token or "pagination_token" not in exc.message:
                raise
            # Tokens do not live forever: start this account again from its first page (upserts make it harmless).
            log.warning("x / followers: X refused the saved pagination_token of account %s; reading it from the start", account)
            yield from self._walk(config, client, request, account, None, done, position)

    def _read_users(self, config: XConfig, client: HttpClient, request: ReadRequest,
                    position: dict[str, Any]) -> Iterator[Message]:
        for start in range(0, len(config.usernames), LOOKUP_BATCH):
            chunk = config.usernames[start:start + LOOKUP_BATCH]
            stream = self.users_stream(config, chunk)
            page = client.request("GET", stream.path, params=stream.request_params(request), stream="users",
                                  parse=stream.parse_page)
            if page is None:
                continue
            missing = [e.get("value") for e in page.body.get("errors") or []]
            if missing:
                log.warning("x / users: X has no user for %d handle(s) (renamed, deleted or suspended): %s",
                            len(missing), ", ".join(f"@{m}" for m in missing[:20]))
            if page.records.num_rows:
                yield Batch("users", page.records)
                yield Checkpoint("users", {})
