"""The X API v2 (users) on loopback, for tests and demos (`threadline sandbox x`).

    GET /2/users/:id/followers   ?max_results=1..1000 (default 100) &pagination_token= &user.fields=
                                 → {"data": [user, ...], "meta": {"result_count": n, "next_token": t}},
                                 most recent follower first; no "data" key when there are none.
    GET /2/users/by              ?usernames=a,b,... (1..100, case-insensitive, each ^[A-Za-z0-9_]{1,15}$) &user.fields=
                                 → {"data": [...], "errors": [{"title": "Not Found Error", ...}]}

Access tiers, as X documents them: an app's tier decides which endpoints it may call at all.
The follows lookup (followers) is "only available to those with Enterprise access" (X's
follows page); user lookup needs Basic or above (Free has neither). A call the app's tier
does not cover is answered 403 with X's problem JSON, `"reason": "client-not-enrolled"`,
`"title": "Client Forbidden"`, `"required_enrollment": "Appropriate Level of API Access"`,
before any rate limit is spent. `BEARER_TOKEN` is an Enterprise app (`tier=` or `set_tier`
changes that); `BASIC_BEARER_TOKEN` and `FREE_BEARER_TOKEN` are apps at those tiers.

As documented: app-only `Authorization: Bearer <token>` (401 problem JSON otherwise); fields
are only sent when asked for in `user.fields` and absent fields are left out, not null; every
answer carries `x-rate-limit-limit`, `x-rate-limit-remaining` and `x-rate-limit-reset` (epoch
seconds) for the endpoint's 15-minute window, and a request past the limit is answered 429
`Too Many Requests` with those headers and no Retry-After. The windows (15 followers pages,
300 lookups per 15 minutes for an app) can be raised for tests (`followers_limit=`).

Seeded users: people of the population shared by every vendor sandbox
(`threadline.sandbox.people`, population `2026 + seed`) who have a handle, so the same people
are customers in the shop, the CRMs and the loyalty program; X knows only what they chose to
show. The mess that comes with it: handles loosely made from the name and birth year
(`kneal1985`), from the name, or saying nothing about the person; display names with emoji,
initials or the handle; free-text locations ("ATX", "NYC 🗽", "somewhere") or none; `url: ""`
when the profile has no link and the real address only in `entities.url.urls[].expanded_url`;
descriptions mentioning other handles; protected accounts. Nearly everyone follows the shop's
account; people who needed help (and a few others) follow the help account too; followers come
most recent first.
"""

from __future__ import annotations

import json
import random
import re
import time
from datetime import datetime, timedelta
from typing import Any

from threadline.sandbox import Reply, Sandbox, SandboxError, SandboxRequest
from threadline.sandbox.people import AS_OF, Person, members_of, population_seed

BRANDS = {"1500000000000000001": "threadline_shop", "1500000000000000002": "threadline_help"}
# Every name `user.fields` takes, as X's OpenAPI enumerates it now (checked 2026-12-06): a name
# outside it is a 400; a valid one this sandbox keeps no value for is left out of the answer, as
# X leaves out fields a user has no value for.
USER_FIELDS = {
    "affiliation", "confirmed_email", "connection_status", "created_at", "description", "entities", "id",
    "is_identity_verified", "location", "most_recent_tweet_id", "name", "parody", "pinned_tweet_id",
    "profile_banner_url", "profile_image_url", "protected", "public_metrics", "receives_your_dm", "subscription",
    "subscription_type", "url", "username", "verified", "verified_followers_count", "verified_type", "withheld",
}
# A handle as X's OpenAPI types it (UserName): what `usernames` takes, and what every user's `username` is.
USERNAME = re.compile(r"^[A-Za-z0-9_]{1,15}$")
WINDOW = 900.0  # seconds: X's rate-limit windows are 15 minutes
TIERS = ("free", "basic", "pro", "enterprise")
# The tiers that may call each endpoint: follows lookup is Enterprise only (X's follows page, read
# 2026-12-06); user lookup starts at Basic.
ENDPOINT_TIERS = {"followers": {"enterprise"}, "users_by": {"basic", "pro", "enterprise"}}

_SITES = ["linktr.ee/{h}", "{h}.dev", "www.{h}.com", "github.com/{h}", "instagram.com/{h}"]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def problem(status: int, title: str, detail: str, kind: str = "about:blank", headers: dict[str, str] | None = None,
            **extra: Any) -> Reply:
    return Reply.json({"title": title, "detail": detail, "type": kind, "status": status, **extra}, status, headers)


def not_enrolled() -> Reply:
    """X's answer to an app whose access tier does not include the endpoint."""
    return Reply.json({
        "client_id": "28974514",
        "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a "
                  "Twitter developer App that is attached to a Project. You can create a project via the developer "
                  "portal.",
        "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
        "title": "Client Forbidden", "required_enrollment": "Appropriate Level of API Access",
        "reason": "client-not-enrolled", "type": "https://api.twitter.com/2/problems/client-forbidden",
    }, 403)


class XSandbox(Sandbox):
    name = "x"
    BEARER_TOKEN = "AAAAAAAAAAAAAAAAAAAAAsandbox-x-app-only-token"
    BASIC_BEARER_TOKEN = "AAAAAAAAAAAAAAAAAAAAAsandbox-x-basic-app-token"
    FREE_BEARER_TOKEN = "AAAAAAAAAAAAAAAAAAAAAsandbox-x-free-app-token"

    def __init__(self, *, seed: int = 0, port: int = 0, users: int = 3000, followers_limit: int = 15,
                 lookup_limit: int = 300, tier: str = "enterprise") -> None:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}, not {tier!r}")
        self.tier = tier
        self.user_count = users
        self.limits = {"followers": followers_limit, "users_by": lookup_limit}
        super().__init__(seed=seed, port=port)

    # ------------------------------------------------------------------ data

    def seed_data(self) -> None:
        rng = random.Random(self.seed)
        base = 1_600_000_000_000_000_000
        self._users: dict[str, dict[str, Any]] = {}
        followed: dict[str, list[tuple[datetime, str]]] = {brand: [] for brand in BRANDS}
        shop, help_ = BRANDS
        for person in members_of("x", self.user_count, population_seed(self.seed)):
            user = self._make_user(rng, str(base + person.number * 7919), person)
            self._users[user["id"]] = user
            since = max(person.social.created_at, person.first_seen) if person.social else person.first_seen
            follows = since + (AS_OF - since) * rng.random()
            if rng.random() < 0.9:
                followed[shop].append((follows, user["id"]))
            if (person.tickets and rng.random() < 0.6) or rng.random() < 0.08:
                followed[help_].append((follows + timedelta(days=rng.uniform(0, 30)), user["id"]))
        self._by_name = {u["username"].lower(): uid for uid, u in self._users.items()}
        # Followers, most recent first.
        self._followers = {brand: [uid for _, uid in sorted(pairs, reverse=True)] for brand, pairs in followed.items()}
        self._windows: dict[str, tuple[float, int]] = {}  # endpoint → (window reset epoch, used)
        self._revoked = False

    def _make_user(self, rng: random.Random, uid: str, person: Person) -> dict[str, Any]:
        social = person.social
        assert social is not None
        handle = social.handle
        user: dict[str, Any] = {
            "id": uid, "name": social.display_name, "username": handle, "created_at": stamp(social.created_at),
            "protected": rng.random() < 0.05, "verified": rng.random() < 0.02,
            "profile_image_url": f"https://pbs.twimg.com/profile_images/{uid}/photo_normal.jpg",
            "public_metrics": {
                "followers_count": int(rng.paretovariate(1.2) * 20), "following_count": rng.randint(0, 3000),
                "tweet_count": rng.randint(0, 40000), "listed_count": rng.randint(0, 40), "like_count": rng.randint(0, 90000),
            },
        }
        if social.location is not None:
            user["location"] = social.location
        mentions: list[str] = []
        description = social.bio
        if description and rng.random() < 0.25:
            other = f"{person.first_name}{person.last_name}work"[:15].lower().replace(" ", "").replace("'", "")
            other = "".join(ch for ch in other if ch.isascii() and (ch.isalnum() or ch == "_")) or "work_account"
            mentions.append(other)
            description = f"{description} · also @{other}"
        user["description"] = description
        entities: dict[str, Any] = {}
        if rng.random() < 0.4:
            site = rng.choice(_SITES).format(h=handle.lower())
            short = f"https://t.co/{uid[-10:]}"
            user["url"] = short
            entities["url"] = {"urls": [{"start": 0, "end": len(short), "url": short,
                                         "expanded_url": f"https://{site}", "display_url": site}]}
        else:
            user["url"] = ""
        if mentions:
            start = description.index("@")
            entities["description"] = {"mentions": [{"start": start, "end": start + len(mentions[0]) + 1,
                                                     "username": mentions[0]}]}
        if entities:
            user["entities"] = entities
        return user

    def secrets(self) -> list[str]:
        return [self.BEARER_TOKEN, self.BASIC_BEARER_TOKEN, self.FREE_BEARER_TOKEN]

    def set_tier(self, tier: str) -> None:
        """Move the app of BEARER_TOKEN to another access tier (free, basic, pro, enterprise)."""
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}, not {tier!r}")
        with self._lock:
            self.tier = tier

    def control_set_tier(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            self.set_tier(str(body["tier"]))
        except ValueError as exc:
            raise SandboxError(400, str(exc)) from None
        return {"tier": self.tier}

    def _tier_of(self, authorization: str | None) -> str | None:
        tokens = {self.BEARER_TOKEN: self.tier, self.BASIC_BEARER_TOKEN: "basic", self.FREE_BEARER_TOKEN: "free"}
        scheme, _, token = (authorization or "").partition(" ")
        return tokens.get(token) if scheme == "Bearer" else None

    # ------------------------------------------------------------------ what tests use

    def user(self, uid: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._users[uid]))

    def followers(self, brand: str) -> list[dict[str, Any]]:
        """The followers of `brand`, most recent first, as the API holds them."""
        with self._lock:
            return [self.user(uid) for uid in self._followers[brand]]

    def usernames(self, n: int, start: int = 0) -> list[str]:
        with self._lock:
            return [u["username"] for u in list(self._users.values())[start:start + n]]

    def by_username(self, username: str) -> dict[str, Any] | None:
        with self._lock:
            for user in self._users.values():
                if user["username"].lower() == username.lower().lstrip("@"):
                    return self.user(user["id"])
        return None

    def rename(self, uid: str, username: str) -> None:
        """The person changes their handle (X keeps the id)."""
        with self._lock:
            del self._by_name[self._users[uid]["username"].lower()]
            self._users[uid]["username"] = username
            self._by_name[username.lower()] = uid

    def follow(self, brand: str, n: int) -> list[str]:
        """`n` people who did not follow `brand` start to (most recent first); returns their ids."""
        with self._lock:
            following = set(self._followers[brand])
            new = [uid for uid in self._users if uid not in following][:n]
            self._followers[brand][:0] = list(reversed(new))
            return new

    def set_user_field(self, uid: str, path: str, value: Any) -> None:
        """Put an odd value into a user (`public_metrics.followers_count`, say) for bad-input tests."""
        with self._lock:
            target = self._users[uid]
            *parents, leaf = path.split(".")
            for key in parents:
                target = target.setdefault(key, {})
            target[leaf] = value

    def exhaust_window(self, endpoint: str = "followers", resets_in: float = WINDOW) -> float:
        """Spend the endpoint's window now; returns its reset time (epoch seconds)."""
        with self._lock:
            reset = float(int(time.time() + resets_in))
            self._windows[endpoint] = (reset, self.limits[endpoint])
            return reset

    def window_reset(self, endpoint: str = "followers") -> float:
        """When the endpoint's current window resets (epoch seconds), as its headers say."""
        with self._lock:
            return self._windows.get(endpoint, (0.0, 0))[0]

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True

    def control_revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        self.revoke_credentials()
        return {"revoked": True}

    # ------------------------------------------------------------------ the API

    _FOLLOWERS = re.compile(r"^/2/users/([0-9]+)/followers$")

    def _dispatch(self, req: SandboxRequest) -> Reply:
        """X's paths carry ids, so routes are patterns rather than the base's exact paths."""
        if req.method != "GET":
            return problem(404, "Not Found Error", f"no route {req.method} {req.path}")
        tier = self._tier_of(req.headers.get("authorization"))
        if tier is None or self._revoked:
            return problem(401, "Unauthorized", "Unauthorized")
        match = self._FOLLOWERS.match(req.path)
        endpoint = "followers" if match else "users_by" if req.path == "/2/users/by" else None
        if endpoint is None:
            return problem(404, "Not Found Error", f"Sorry, that page does not exist: {req.path}")
        if tier not in ENDPOINT_TIERS[endpoint]:  # before the rate limit: X does not count it
            return not_enrolled()
        headers, allowed = self._spend(endpoint)
        if not allowed:
            return problem(429, "Too Many Requests", "Too Many Requests", headers=headers)
        try:
            fields = self._fields(req)
            with self._lock:
                body = self._followers_page(req, match.group(1), fields) if match else self._lookup(req, fields)
        except SandboxError as exc:
            return Reply.json(json.loads(exc.error), exc.status, headers)
        return Reply.json(body, headers=headers)

    def _spend(self, endpoint: str) -> tuple[dict[str, str], bool]:
        with self._lock:
            now = time.time()
            reset, used = self._windows.get(endpoint, (0.0, 0))
            if now >= reset:
                reset, used = float(int(now + WINDOW)), 0
            limit = self.limits[endpoint]
            allowed = used < limit
            used = used + 1 if allowed else used
            self._windows[endpoint] = (reset, used)
            return {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(max(0, limit - used)),
                    "x-rate-limit-reset": str(int(reset))}, allowed

    def _fields(self, req: SandboxRequest) -> set[str]:
        asked = {f for f in (req.param("user.fields") or "").split(",") if f}
        unknown = sorted(asked - USER_FIELDS)
        if unknown:
            raise _invalid("user.fields", ",".join(unknown), f"The `user.fields` query parameter value [{unknown[0]}] "
                           f"is not one of [{', '.join(sorted(USER_FIELDS))}]")
        return asked | {"id", "name", "username"}

    def _view(self, uid: str, fields: set[str]) -> dict[str, Any]:
        return {k: v for k, v in self._users[uid].items() if k in fields}

    def _followers_page(self, req: SandboxRequest, brand: str, fields: set[str]) -> dict[str, Any]:
        if brand not in self._followers:
            if brand in self._users:
                followers: list[str] = []
            else:
                raise SandboxError(200, json.dumps({"errors": [{
                    "value": brand, "detail": f"Could not find user with id: [{brand}].", "title": "Not Found Error",
                    "resource_type": "user", "parameter": "id", "resource_id": brand,
                    "type": "https://api.twitter.com/2/problems/resource-not-found"}]}))
        else:
            followers = self._followers[brand]
        size = req.int_param("max_results", 100)
        if not 1 <= size <= 1000:
            raise _invalid("max_results", str(size), f"The `max_results` query parameter value [{size}] is not between 1 and 1000")
        token = req.param("pagination_token")
        offset = 0
        if token:
            offset = _decode_token(token, brand)
            if offset is None or offset > len(followers):
                raise _invalid("pagination_token", token, f"The `pagination_token` query parameter value [{token}] is not valid")
        page = followers[offset:offset + size]
        meta: dict[str, Any] = {"result_count": len(page)}
        if offset:
            meta["previous_token"] = _encode_token(brand, max(0, offset - size))
        if offset + size < len(followers):
            meta["next_token"] = _encode_token(brand, offset + size)
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = [self._view(uid, fields) for uid in page]
        return body

    def _lookup(self, req: SandboxRequest, fields: set[str]) -> dict[str, Any]:
        names = [n for n in (req.param("usernames") or "").split(",") if n]
        if not 1 <= len(names) <= 100:
            raise _invalid("usernames", req.param("usernames") or "",
                           f"The number of values in the `usernames` query parameter list [{len(names)}] is not between 1 and 100")
        malformed = [n for n in names if not USERNAME.match(n)]
        if malformed:  # one bad handle fails the whole request, as at X
            raise _invalid("usernames", malformed[0], f"The `usernames` query parameter value [{malformed[0]}] does not "
                           f"match {USERNAME.pattern}")
        data, errors = [], []
        for name in names:
            uid = self._by_name.get(name.lower())
            if uid is None:
                errors.append({"value": name, "detail": f"Could not find user with usernames: [{name}].",
                               "title": "Not Found Error", "resource_type": "user", "parameter": "usernames",
                               "resource_id": name, "type": "https://api.twitter.com/2/problems/resource-not-found"})
            else:
                data.append(self._view(uid, fields))
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        return body


def expected_user(user: dict[str, Any], **constants: Any) -> dict[str, Any]:
    """What a record of the `x` source should be for one raw user object of this sandbox, built
    in plain Python (independently of the connector's Arrow flattening); for tests."""
    entities = user.get("entities", {})
    desc = entities.get("description", {})
    links = [u["expanded_url"] for u in entities.get("url", {}).get("urls", [])]
    return {
        **constants, **{k: user.get(k) for k in ("id", "username", "name", "location", "description", "url",
                                                 "created_at", "protected", "verified", "profile_image_url")},
        "profile_url": links[0] if links else None,
        "description_urls": [u["expanded_url"] for u in desc.get("urls", [])],
        "description_mentions": [m["username"] for m in desc.get("mentions", [])],
        **{k: user["public_metrics"][k] for k in ("followers_count", "following_count", "tweet_count", "listed_count")},
    }


def _invalid(parameter: str, value: str, message: str) -> SandboxError:
    return SandboxError(400, json.dumps({
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }))


def _encode_token(brand: str, offset: int) -> str:
    # X's OpenAPI types pagination tokens as PaginationToken32: a string of at least 16 characters.
    return f"{int(brand) % 9973:04X}{offset:010X}QZ"


def _decode_token(token: str, brand: str) -> int | None:
    if len(token) != 16 or not token.endswith("QZ") or token[:4] != f"{int(brand) % 9973:04X}":
        return None
    try:
        return int(token[4:14], 16)
    except ValueError:
        return None
