"""What to do about each response status and exception: a table you can read in one screen.

    DEFAULT_ACTIONS = ActionTable({
        401: Action.REFRESH_AUTH,       # refresh the token once, then it is a config error
        403: Action.CONFIG_ERROR,
        429: Action.RATE_LIMITED,
        "5xx": Action.RETRY,
        requests.ConnectionError: Action.RETRY,
        ...
    })

A connector overrides entries without copying the rest::

    ACTIONS = DEFAULT_ACTIONS.override({404: Action.IGNORE, 409: Action.RETRY})

Lookup order: the exact status, then its class ("4xx"), then "default" for statuses; for
exceptions the closest class in the exception's MRO. Anything 2xx is success unless listed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Union

import requests


class Action(str, enum.Enum):
    """What the HTTP client does with a response or an exception."""

    SUCCESS = "success"  # hand the body to the caller
    RETRY = "retry"  # back off (exponential, jitter) and try again
    REFRESH_AUTH = "refresh_auth"  # refresh credentials once and retry; again → CONFIG_ERROR
    RATE_LIMITED = "rate_limited"  # wait as long as the server asks (Retry-After / reset headers)
    CONFIG_ERROR = "config_error"  # the user must fix credentials or config: ConfigError
    FAIL = "fail"  # stop the stream: FatalError naming connector, stream and request
    IGNORE = "ignore"  # treat as an empty page and carry on


class BadPage(Exception):
    """A successful status whose body cannot be used. `hint` says what to check."""

    hint = "check the stream's path and records_path against the API's documentation"


class MalformedJson(BadPage):
    """The body claimed to be JSON (or was expected to be) and did not parse."""

    hint = "the API sent broken JSON repeatedly; try again later, or report it to the vendor"


class NotJson(BadPage):
    """The body is something else, typically an HTML login page or proxy error page."""

    hint = "check base_url and the stream's path point at the API, not a web page or login wall"


Key = Union[int, str, type]


@dataclass(frozen=True)
class ActionTable:
    """Maps a status code, a status class ("4xx") or an exception type to an `Action`."""

    rules: Mapping[Key, Action] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))

    def override(self, changes: Mapping[Key, Action | str]) -> ActionTable:
        """A copy with `changes` applied on top (a connector's own rules)."""
        return ActionTable({**self.rules, **{k: Action(v) for k, v in changes.items()}})

    def for_status(self, status: int) -> Action:
        for key in (status, f"{status // 100}xx"):
            if key in self.rules:
                return self.rules[key]
        if 200 <= status < 300:
            return Action.SUCCESS
        return self.rules.get("default", Action.FAIL)

    def for_exception(self, exc: BaseException) -> Action:
        for klass in type(exc).__mro__:
            if klass in self.rules:
                return self.rules[klass]
        return Action.FAIL


DEFAULT_ACTIONS = ActionTable({
    400: Action.FAIL,
    401: Action.REFRESH_AUTH,
    403: Action.CONFIG_ERROR,
    404: Action.FAIL,
    408: Action.RETRY,
    409: Action.RETRY,
    425: Action.RETRY,
    429: Action.RATE_LIMITED,
    "4xx": Action.FAIL,
    "5xx": Action.RETRY,
    501: Action.FAIL,
    "default": Action.FAIL,
    requests.Timeout: Action.RETRY,  # connect and read timeouts
    requests.ConnectionError: Action.RETRY,  # refused, reset, dropped mid-answer
    requests.exceptions.ChunkedEncodingError: Action.RETRY,
    MalformedJson: Action.RETRY,  # a truncated body is usually a broken connection
    NotJson: Action.FAIL,  # an HTML page will not become JSON by asking again
    BadPage: Action.FAIL,  # e.g. a records path that matches nothing
})
