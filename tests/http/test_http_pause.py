"""stop_for_rate_limit: a wait the run cannot sit out ends the stream cleanly, or is re-raised."""

import pytest

from threadline.contracts import Checkpoint, RateLimitStop, TransientError
from threadline.http.pause import RESUME_AFTER_KEY, stop_for_rate_limit


def run(exc, **kw):
    messages = []
    with pytest.raises(Exception) as raised:
        for m in stop_for_rate_limit(exc, vendor="Acme", stream="contacts", connector="acme", state={"page": 4},
                                     max_wait=30, **kw):
            messages.append(m)
    return messages, raised.value


def test_a_long_wait_saves_the_position_with_a_resume_time_then_pauses():
    messages, raised = run(TransientError("GET /contacts answered 429", retry_after=900, status=429))
    assert isinstance(raised, RateLimitStop) and raised.where == "acme / contacts"
    (checkpoint,) = messages
    assert isinstance(checkpoint, Checkpoint) and checkpoint.state["page"] == 4
    assert checkpoint.state[RESUME_AFTER_KEY] == raised.resume_after.isoformat(timespec="seconds")
    assert "Stopped cleanly" in raised.render() and "max_rate_limit_wait = 30s" in raised.render()


def test_a_bare_429_pauses_only_when_the_source_names_a_wait_for_it():
    bare = TransientError("GET /contacts answered 429", status=429)
    messages, raised = run(bare)
    assert raised is bare and messages == []
    messages, raised = run(TransientError("GET /contacts answered 429", status=429), wait_for_bare_429=60)
    assert isinstance(raised, RateLimitStop) and raised.retry_after == 60


def test_a_transient_error_with_no_wait_is_re_raised_untouched():
    timeout = TransientError("GET /contacts timed out")
    messages, raised = run(timeout, wait_for_bare_429=60)
    assert raised is timeout and messages == []
