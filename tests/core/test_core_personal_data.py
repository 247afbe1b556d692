"""Personal data never reaches a log line or an error: emails and phones are scrubbed in the
one place every message goes through (`secrets.redact` → `personal.scrub_personal_data`)."""

from __future__ import annotations

import json
import logging
import socket
from urllib.parse import urlencode

import pytest
from threadline.cli import setup_logging
from threadline.contracts import TransientError
from threadline.http import HttpClient
from threadline.http.backoff import RetryPolicy
from threadline.personal import scrub_personal_data
from threadline.secrets import redact, redact_secrets, register_secret

CANARY_EMAIL = "zephyrine.quillfeather@canary-mail.example"
CANARY_PHONE = "+15125550199"
CANARY_SECRET = "sk_canary_9f8e7d6c5b4a"


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    found = [c for c in ("zephyrine", "quillfeather", CANARY_SECRET.lower()) if c in lowered]
    return found + (["phone"] if "5125550199" in text.replace("-", "").replace(" ", "") else [])


def test_a_klaviyo_lookup_url_loses_every_address_plain_and_url_encoded():
    url = "GET https://a.klaviyo.com/api/profiles?" + urlencode(
        {"filter": f'any(email,["{CANARY_EMAIL}","sam+news@ex.co.uk"])', "page[size]": 100}, safe="*:/")
    scrubbed = scrub_personal_data(url)
    assert leaks(scrubbed) == [] and "sam" not in scrubbed
    assert scrubbed.startswith("GET https://a.klaviyo.com/api/profiles?filter=") and "page%5Bsize%5D=100" in scrubbed


@pytest.mark.parametrize("phone", [CANARY_PHONE, "+1 512 555 0199", "(512) 555-0199", "512-555-0199", "512.555.0199",
                                   "%2B15125550199"])
def test_phone_numbers_as_people_write_them_are_masked(phone):
    assert scrub_personal_data(f"number {phone} refused") == "number <phone> refused"


def test_query_parameters_named_for_an_email_or_phone_are_masked_whatever_they_hold():
    assert scrub_personal_data("GET /v1/find?phone=5125550199&fields=id&telemetry=on") == \
        "GET /v1/find?phone=<personal>&fields=id&telemetry=on"
    assert scrub_personal_data("GET /search?filter%5Bemail%5D=abc") == "GET /search?filter%5Bemail%5D=<personal>"


@pytest.mark.parametrize("text", [
    "postgresql://postgres@127.0.0.1:5432/test",  # a DSN's user is not an email
    "2024-05-01T10:00:00+02:00 took 12.5s",
    "push lapsed: 1,234,567 members; sent +12,345 −0",
    "run 20240601T000000-ab12cd: 8,795 profiles",
    "https://us1.api.mailchimp.com/3.0/lists/abc123/segments/3001?fields=id,name",
])
def test_ordinary_messages_are_left_alone(text):
    assert scrub_personal_data(text) == text


def test_redact_masks_secrets_and_personal_data_and_the_sandbox_record_keeps_members():
    register_secret(CANARY_SECRET)
    text = f"key {CANARY_SECRET} for {CANARY_EMAIL}"
    assert redact(text) == "key *** for <email>"
    assert redact_secrets(text) == f"key *** for {CANARY_EMAIL}"


@pytest.fixture
def cli_logging():
    """setup_logging rewires the `threadline` logger; put it back for the tests after."""
    root = logging.getLogger("threadline")
    saved = (root.handlers[:], root.level, root.propagate)
    yield
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]


@pytest.mark.parametrize("fmt", ["plain", "json", "auto"])
@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_no_log_level_or_format_prints_a_person_or_a_secret(fmt, verbose, capsys, cli_logging):
    register_secret(CANARY_SECRET)
    setup_logging(fmt, verbose)
    log = logging.getLogger("threadline.test.canary")
    url = "https://a.klaviyo.com/api/profiles?" + urlencode({"filter": f'any(email,["{CANARY_EMAIL}"])'})
    log.debug("request %s with %s", url, CANARY_SECRET)
    log.info("member %s, phone %s", CANARY_EMAIL, CANARY_PHONE)
    log.warning("retrying %s", url, extra={"fields": {"email": CANARY_EMAIL, "count": 3}})
    log.error("answered 400: %s", json.dumps({"email_address": CANARY_EMAIL, "phone": "(512) 555-0199"}))
    try:
        raise ValueError(f"row {CANARY_EMAIL} {CANARY_PHONE} token {CANARY_SECRET}")
    except ValueError:
        log.exception("a bug")
    err = capsys.readouterr().err
    assert "<email>" in err, "the lines were logged (at least the error and the exception)"
    assert leaks(err) == []
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert lines and all(set(line) >= {"level", "message"} for line in lines)
        assert any(line.get("email") == "<email>" for line in lines), "structured fields are masked too"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_request_to_a_platform_that_is_down_names_no_member_in_its_warnings_or_error(caplog):
    client = HttpClient(f"http://127.0.0.1:{_closed_port()}/api", connector="klaviyo_lists",
                        retry=RetryPolicy(max_attempts=3, backoff_base=0.01, max_backoff=0.02))
    caplog.set_level(logging.DEBUG, logger="threadline")
    with pytest.raises(TransientError) as failed:
        client.request("GET", "/profiles", params={"filter": f'any(email,["{CANARY_EMAIL}"])', "phone": CANARY_PHONE})
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, "each retry is logged"
    assert leaks(" ".join(warnings) + failed.value.render()) == []
    assert "/profiles?filter=" in failed.value.render(), "the request is still named"
