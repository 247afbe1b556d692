"""The HTTP client every HTTP connector uses: retries, rate limits, auth refresh, classified errors.

    client = HttpClient("https://api.example.com/v2", auth=BearerAuth(token), connector="crm")
    page = client.request("GET", "/contacts", params={"limit": 100}, stream="contacts")

What happens to each response or exception is decided by an `ActionTable` (see `actions`);
how long to wait by a `RetryPolicy` and the server's own headers (see `backoff`); how many
requests may go per window by an optional `RequestBudget`. Errors raised are the contract
classes: `ConfigError` (credentials, permissions), `TransientError` (retries exhausted on
something that may pass), `FatalError` (anything else); each names the connector, the stream
and the request (method and URL, secrets masked).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from threadline.contracts import ConfigError, FatalError, TransientError
from threadline.http.actions import DEFAULT_ACTIONS, Action, ActionTable, BadPage, NotJson, Rule
from threadline.http.auth import Auth, NoAuth, OAuth2Auth
from threadline.http.backoff import RetryPolicy, server_wait
from threadline.http.budget import BothBudgets, RequestBudget
from threadline.http.transport import Transport, with_query
from threadline.secrets import RedactingFilter, redact

log = logging.getLogger("threadline.http")
log.addFilter(RedactingFilter())

T = TypeVar("T")

# Query parameters masked in request descriptions even when their value was never registered.
SENSITIVE_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token", "client_secret", "refresh_token"})


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection, and for each read of the answer."""

    connect: float = 10.0
    read: float = 60.0

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass
class ClientStats:
    """Counters a progress display can show."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # waits because the server said "too many requests"
    waited: float = 0.0  # seconds spent waiting (back-off, rate limits, budget)
    auth_refreshes: int = 0


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying (the retry loop catches it)."""

    def __init__(self, action: Action, reason: str, server_wait: float | None = None, status: int | None = None,
                 rule: Rule | None = None) -> None:
        super().__init__(reason)
        self.action, self.reason, self.server_wait, self.status = action, reason, server_wait, status
        self.rule = rule


class _Described:
    """The request being sent, as errors and logs name it (`describe_request`): worked out only
    when something is said about it, not for every page of a read."""

    def __init__(self, method: str, url: str, params: dict[str, Any] | None) -> None:
        self.method, self._url, self._params = method, url, params

    def sent(self, url: str) -> None:
        """The URL as it went out (query included)."""
        self._url, self._params = url, None

    @property
    def line(self) -> str:
        return describe_request(self.method, with_query(self._url, self._params))

    @property
    def url(self) -> str:
        return describe_request("", with_query(self._url, self._params)).strip()


def describe_request(method: str, url: str) -> str:
    """`GET https://host/path?a=1&api_key=***`: for errors and logs, secrets masked."""
    parts = urlsplit(url)
    if parts.query:
        query = [(k, "***" if k.lower() in SENSITIVE_PARAMS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        url = urlunsplit(parts._replace(query=urlencode(query, safe="*:/")))
    return redact(f"{method.upper()} {url}")


def expect_json_response(response: requests.Response) -> requests.Response:
    """The default check of a successful response: it must not be an HTML page."""
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type or response.content[:64].lstrip()[:1] == b"<":
        raise NotJson(f"expected JSON but the server answered with HTML ({content_type or 'no content type'})")
    return response


class HttpClient:
    """A `Transport` (kept-alive connections) with the retry, rate-limit, budget and auth rules
    of one connector. Responses are `requests.Response` values (see `transport`)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        actions: ActionTable = DEFAULT_ACTIONS,
        retry: RetryPolicy = RetryPolicy(),
        budget: RequestBudget | None = None,
        timeouts: Timeouts = Timeouts(),
        headers: dict[str, str] | None = None,
        connector: str = "",
        session: Transport | None = None,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth or NoAuth()
        self.actions, self.retry, self.budget, self.timeouts = actions, retry, budget, timeouts
        self.connector = connector
        self.session = session or Transport()
        self.session.headers.update(headers or {})
        self.stats = ClientStats()
        self.on_wait = on_wait  # progress hook: (seconds, why)
        if isinstance(self.auth, OAuth2Auth):
            self.auth.bind(self.session, timeouts.as_requests())

    def url(self, path_or_url: str) -> str:
        """Absolute URLs (next-page links) pass through; paths are joined to the base URL."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}" if path_or_url else self.base_url

    def close(self) -> None:
        self.session.close()

    def also_limited_by(self, budget: RequestBudget | None) -> HttpClient:
        """This client (same session, auth and rules) with `budget` spent on top of its own:
        for an endpoint the vendor limits on its own (a search endpoint)."""
        if budget is None:
            return self
        limited = copy.copy(self)
        limited.budget = budget if self.budget is None else BothBudgets(self.budget, budget)
        return limited

    # ------------------------------------------------------------------ the request loop

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        stream: str = "",
        parse: Callable[[requests.Response], T] = expect_json_response,  # type: ignore[assignment]
    ) -> T | None:
        """Send a request, retrying as the action table says; `parse` turns a successful
        response into the value returned (raising `MalformedJson` / `NotJson` if it cannot).
        Returns None when the table says IGNORE."""
        url = self.url(path_or_url)
        where = " / ".join(p for p in (self.connector, stream) if p)
        started = time.monotonic()
        refreshed = False
        last = _Described(method, url, params)

        def attempt() -> T | None:
            nonlocal refreshed
            self._spend_budget(where)
            self.stats.requests += 1
            try:
                response = self.session.request(
                    method, url, params=params, json=json, data=data, headers=headers,
                    auth=self.auth, timeout=self.timeouts.as_requests(),
                )
            except requests.RequestException as exc:
                rule = self.actions.rule_for_exception(exc)
                reason = _exception_reason(exc)
                if rule.action in (Action.RETRY, Action.RATE_LIMITED):
                    raise _Retry(rule.action, reason, rule=rule) from None
                raise FatalError(f"{last.line} failed: {reason}", where=where, hint=rule.hint,
                                 method=method, url=last.url) from None
            last.sent(response.request.url or url)
            status = response.status_code
            if log.isEnabledFor(logging.DEBUG):  # the request dump, secrets masked
                log.debug(
                    "%s → %d, %d bytes in %.0f ms", last.line, status, len(response.content),
                    response.elapsed.total_seconds() * 1000,
                )
            body = response.text[:2000] if self.actions.needs_body(status) else ""
            rule = self.actions.rule_for_status(status, body)
            action = rule.action
            if action is Action.SUCCESS:
                try:
                    return parse(response)
                except BadPage as exc:
                    rule = self.actions.rule_for_exception(exc)
                    if rule.action is Action.RETRY:
                        raise _Retry(rule.action, f"{exc}", status=status, rule=rule) from None
                    if rule.action is Action.IGNORE:
                        return None
                    about = {"method": method.upper(), "url": last.url, "status": status}
                    if rule.action is Action.CONFIG_ERROR:
                        raise ConfigError(_said(rule, response, f"{last.line}: {exc}"), field=rule.field or "base_url",
                                          where=where, hint=rule.hint or exc.hint, **about) from None
                    raise FatalError(_said(rule, response, f"{last.line}: {exc}"), where=where,
                                     hint=rule.hint or exc.hint, **about) from None
            if action is Action.IGNORE:
                return None
            about = {"method": method.upper(), "url": last.url, "status": status}
            status_text = f"answered {status}: {_snippet(response)}"
            said = _said(rule, response, f"{last.line} {status_text}")
            if action is Action.REFRESH_AUTH:
                if refreshed or not self.auth.can_refresh:
                    raise ConfigError(
                        said + (" — the credentials were refused" if not rule.message else "")
                        + (" again after refreshing the token" if refreshed else ""),
                        field=rule.field or self.auth.field, where=where,
                        hint=rule.hint or "check the credentials in the job file (or the environment variables they come from)",
                        **about,
                    )
                refreshed = True
                self.auth.refresh(self.session, self.timeouts.as_requests())
                self.stats.auth_refreshes += 1
                log.info("%s: %s; refreshed the access token and retrying", where, f"{last.line} {status_text}")
                raise _Retry(action, status_text, server_wait=0.0, status=status, rule=rule)
            if action in (Action.RETRY, Action.RATE_LIMITED):
                raise _Retry(action, status_text, server_wait(response.headers), status=status, rule=rule)
            if action is Action.CONFIG_ERROR:
                raise ConfigError(
                    said, field=rule.field or self.auth.field, where=where,
                    hint=rule.hint or "the credentials lack permission for this resource, or the config points at the wrong one",
                    **about,
                )
            raise FatalError(said, where=where, hint=rule.hint or _hint_for(status), **about)

        # At most `max_attempts` attempts, and no wait that would end past `max_retry_time`. (Was
        # tenacity: its machinery cost ~20 us of CPU on every request, most of them never retried.)
        number = 1  # the attempt being made
        while True:
            try:
                return attempt()
            except _Retry as exc:
                seconds = exc.server_wait if exc.server_wait is not None else self.retry.backoff(number)
                elapsed = time.monotonic() - started
                if number < self.retry.max_attempts and elapsed + seconds < self.retry.max_retry_time:
                    self._before_sleep(exc, number, seconds, where, last.line)
                    time.sleep(seconds)
                    number += 1
                    continue
                asked = f"; the server asked to wait {exc.server_wait:.0f}s" if exc.server_wait else ""
                raise TransientError(
                    f"{last.line} still failing after {number} attempts over {elapsed:.1f}s: {exc.reason}{asked}",
                    retry_after=exc.server_wait, where=where,
                    hint=(exc.rule.hint if exc.rule else "") or _transient_hint(exc.reason),
                    status=exc.status, method=method.upper(), url=last.url,
                ) from None

    # ------------------------------------------------------------------ waiting

    def _before_sleep(self, exc: _Retry, number: int, seconds: float, where: str, line: str) -> None:
        """Counted and said before waiting `seconds` to retry after attempt `number` failed."""
        self.stats.retries += 1
        self.stats.waited += seconds
        if exc.action is Action.RATE_LIMITED:
            self.stats.rate_limited += 1
            why = "as the server asked" if exc.server_wait is not None else "(back-off)"
            log.warning("%s: rate limited by the API (%s); waiting %.1fs %s before retrying", where, line, seconds, why)
            self._notify(seconds, "rate limited")
        elif exc.action is not Action.REFRESH_AUTH:
            log.warning(
                "%s: %s — %s; retry %d of %d in %.1fs", where, line, exc.reason,
                number, self.retry.max_attempts - 1, seconds,
            )
            self._notify(seconds, "retrying")

    def _spend_budget(self, where: str) -> None:
        if self.budget is None:
            return
        waited = self.budget.acquire()
        if waited > 0:
            self.stats.waited += waited
            log.info(
                "%s: request budget of %d calls per %gs spent; waited %.1fs",
                where, self.budget.calls, self.budget.per_seconds, waited,
            )
            self._notify(waited, "request budget")

    def _notify(self, seconds: float, why: str) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds, why)


# ---------------------------------------------------------------------- helpers


def _said(rule: Rule, response: requests.Response, what: str) -> str:
    """The rule's own words first (when it has some), then the request and the answer."""
    message = rule.describe(response)
    return f"{message}: {what}" if message else what


def _snippet(response: requests.Response, limit: int = 200) -> str:
    text = response.text[:limit].replace("\n", " ").strip()
    return redact(text) or "(empty body)"


def _exception_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer within the read timeout"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused"
        if "aborted" in text.lower() or "reset" in text.lower() or "closed" in text.lower():
            return "the server closed the connection without answering"
        return f"connection failed: {redact(text)[:200]}"
    return f"{type(exc).__name__}: {redact(exc)[:200]}"


def _transient_hint(reason: str) -> str:
    if reason == "connection refused":
        return "nothing is listening at that address: check base_url (host and port) and that the service is up"
    if "timed out" in reason or "timeout" in reason:
        return "the API is slow or unreachable; try again later or raise the timeouts in the connector config"
    return "the API kept failing; the sync can be re-run later and resumes from the last checkpoint"


def _hint_for(status: int) -> str:
    if status == 404:
        return "check base_url and the stream's path"
    if status == 400:
        return "the API rejected the request's parameters; check the stream's params and cursor settings"
    return "see the API's answer above"
