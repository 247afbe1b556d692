"""Personal data never appears in logs or errors: emails and phone numbers are scrubbed.

A request to an email tool carries its members' addresses in the URL (Klaviyo's
`filter=any(email,["ana@example.com", ...])`), an API answers with a body quoting them, a
driver's error repeats the row it choked on. `scrub_personal_data` replaces what looks like
an email address or a phone number in any text with `<email>` / `<phone>`, in the clear and
URL-encoded (`ana%40example.com`, `%2B14155550100`), and blanks the values of query
parameters whose names say they hold one (`?email=...`, `&phone=...`). `secrets.redact` runs
every text through it, so the CLI's log handler (every level, plain, rich and JSON) and its
error printer, the run history and the HTTP kit's request descriptions and error bodies are
all covered by this one function.

What it cannot know is a name or a street: those stay out of messages by construction
(errors name fields, not values).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

EMAIL_MASK = "<email>"
PHONE_MASK = "<phone>"

# local@domain.tld, with @ or its URL encoding (a local part may hold an encoded + or ');
# not user@host in a URL's authority (`postgresql://postgres@127.0.0.1`: no domain name there)
_EMAIL = re.compile(
    r"(?<![\w.+'-])(?:[\w.+'-]|%2B|%27)+(?:@|%40)(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}\b", re.IGNORECASE)
# + (or its URL encoding), a country code and more digits, 8 to 15 in all, spaces, dots,
# dashes or brackets between them: E.164 as the store writes it, or as people type it
_PHONE_INTL = re.compile(r"(?:(?<!\w)\+|%2B)\d(?:[ .()\-]{0,2}\d){7,14}(?!\d)", re.IGNORECASE)
# North American numbers as people write them: (415) 555-0100, 415-555-0100, 415.555.0100
_PHONE_NANP = re.compile(r"(?<![\w.+-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w.-])")
# a query parameter: ?name=value / &name=value
_PARAM = re.compile(r"([?&;])([^=&#\s?;]+)=([^&#\s\"']*)")
_PERSONAL_WORDS = {"email", "e-mail", "mail", "phone", "mobile", "msisdn", "tel", "telephone", "cell"}


def scrub_personal_data(text: str) -> str:
    """`text` with emails and phone numbers (plain or URL-encoded) masked."""
    if not text:
        return text
    out = _PARAM.sub(_scrub_param, text) if "=" in text else text
    out = _EMAIL.sub(EMAIL_MASK, out)
    out = _PHONE_INTL.sub(PHONE_MASK, out)
    return _PHONE_NANP.sub(PHONE_MASK, out)


def _scrub_param(match: re.Match[str]) -> str:
    """`&email=ana%40x.com` -> `&email=<personal>`: a parameter named for an email or phone."""
    words = set(re.split(r"[^a-z-]+", unquote(match.group(2)).lower()))
    if words & _PERSONAL_WORDS and match.group(3):
        return f"{match.group(1)}{match.group(2)}=<personal>"
    return match.group(0)
