"""What to do about each response status and exception: a table you can read in one screen.

    DEFAULT_ACTIONS = ActionTable({
        401: Action.REFRESH_AUTH,       # refresh the token once, then it is a config error
        403: Action.CONFIG_ERROR,
        429: Action.RATE_LIMITED,
        "5xx": Action.RETRY,
        requests.ConnectionError: Action.RETRY,
        ...
    })

A connector overrides entries without copying the rest, and an entry may be a `Rule`: an
action with the config field to name, a hint, a message, and a condition on the answer's
body (the first matching rule of a list wins), as Airbyte's error resolutions do::

    ACTIONS = DEFAULT_ACTIONS.override({
        404: Action.IGNORE,
        400: [Rule(Action.CONFIG_ERROR, when="revision", field="revision",
                   hint="set revision to a date the API supports (YYYY-MM-DD)"),
              Action.FAIL],
    })

Lookup order: the exact status, then its class ("4xx"), then "default" for statuses; for
exceptions the closest class in the exception's MRO. Anything 2xx is success unless listed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Union

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


Message = Union[str, Callable[[requests.Response], str]]


@dataclass(frozen=True)
class Rule:
    """An action, and what the error says when the action is an error.

    `when`: the rule applies only when the answer's body contains this text (case-insensitive).
    `field`: the config field a ConfigError names (default: the auth's field).
    `hint`: what the user should do. `message`: said before the request and the answer
    (a function of the response may read the body, e.g. to name a missing scope).
    """

    action: Action
    field: str = ""
    hint: str = ""
    message: Message = ""
    when: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))

    def matches(self, body: str) -> bool:
        return not self.when or self.when.lower() in body.lower()

    def describe(self, response: requests.Response | None) -> str:
        if callable(self.message):
            return self.message(response) if response is not None else ""
        return self.message


Key = Union[int, str, type]
Entry = Union[Action, str, Rule, Sequence[Union[Action, str, Rule]]]


def _rules(entry: Entry) -> tuple[Rule, ...]:
    if isinstance(entry, Rule):
        return (entry,)
    if isinstance(entry, (Action, str)):
        return (Rule(Action(entry)),)
    return tuple(r for item in entry for r in _rules(item))


@dataclass(frozen=True)
class ActionTable:
    """Maps a status code, a status class ("4xx") or an exception type to rules (see `Rule`)."""

    rules: Mapping[Key, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", MappingProxyType({k: _rules(v) for k, v in self.rules.items()}))

    def override(self, changes: Mapping[Key, Entry]) -> ActionTable:
        """A copy with `changes` applied on top (a connector's own rules)."""
        return ActionTable({**self.rules, **changes})

    def rule_for_status(self, status: int, body: str = "") -> Rule:
        for key in (status, f"{status // 100}xx"):
            if key in self.rules:
                found = next((r for r in self.rules[key] if r.matches(body)), None)
                if found is not None:
                    return found
        if 200 <= status < 300:
            return Rule(Action.SUCCESS)
        return next((r for r in self.rules.get("default", ()) if r.matches(body)), Rule(Action.FAIL))

    def rule_for_exception(self, exc: BaseException) -> Rule:
        for klass in type(exc).__mro__:
            if klass in self.rules:
                return self.rules[klass][0]
        return Rule(Action.FAIL)

    def for_status(self, status: int, body: str = "") -> Action:
        return self.rule_for_status(status, body).action

    def for_exception(self, exc: BaseException) -> Action:
        return self.rule_for_exception(exc).action

    def needs_body(self, status: int) -> bool:
        """Whether a rule for `status` looks at the body (so the client reads it first)."""
        return any(r.when for key in (status, f"{status // 100}xx") for r in self.rules.get(key, ()))


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
