"""Stopping cleanly when a vendor asks for a longer wait than the run may take.

The client retries and waits out rate limits up to its cap on total retry time; past that it
raises a TransientError carrying the wait the vendor asked for. `RestSource.read` then calls
`stop_for_rate_limit`: the stream's position is saved in a final checkpoint with the time to
resume, and RateLimitStop tells the engine the stream is paused (not failed), so it is not
read again until then and the sync exits 75.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from threadline.contracts import Checkpoint, RateLimitStop, TransientError

RESUME_AFTER_KEY = "resume_after"  # in the final checkpoint's state: ISO time the window resets


def stop_for_rate_limit(
    exc: TransientError,
    *,
    vendor: str,
    stream: str,
    connector: str,
    state: dict[str, Any],
    max_wait: float,
    wait_for_bare_429: float | None = None,
    setting: str = "max_rate_limit_wait",
) -> Iterator[Checkpoint]:
    """Yield the final Checkpoint (`state` plus `resume_after`) and raise RateLimitStop.

    Re-raises `exc` when it is not a wait to sit out: no Retry-After (or reset header), and
    not a 429 for which `wait_for_bare_429` seconds are to be assumed (some APIs answer 429
    without saying for how long). `setting` names the config field that caps the wait."""
    wait = exc.retry_after
    if not wait and wait_for_bare_429 and exc.status == 429:
        wait = wait_for_bare_429
    if not wait:
        raise exc
    resume = datetime.now(timezone.utc) + timedelta(seconds=wait)
    yield Checkpoint(stream, {**state, RESUME_AFTER_KEY: resume.isoformat(timespec="seconds")})
    raise RateLimitStop(
        f"{vendor} asked to wait {wait:.0f}s, longer than this run allows ({setting} = {max_wait:g}s). "
        f"Stopped cleanly: every page read so far is committed and the stream's position is saved. "
        f"Last answer: {exc.message}",
        resume_after=resume, retry_after=wait, where=f"{connector} / {stream}",
        hint=f"run the sync again after {resume:%Y-%m-%d %H:%M:%S} UTC; it resumes from the saved position",
        status=exc.status, method=exc.method, url=exc.url,
    ) from None
