"""Values that are never a person's identifier: built-in placeholders (test@test.com,
0000000000, the fictional 555-01xx range, "n/a" ...) and the job's configured blocked values
and patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

# Words that stand in for a first name on forms ("Mom", "Customer", "Resident"): a first name
# made of nothing else is a placeholder, kept raw and never compared.
PLACEHOLDER_GIVEN = {"unknown", "none", "null", "na", "test", "customer", "guest", "resident", "occupant", "mom",
                     "dad", "mother", "father", "baby", "child", "kid", "girl", "boy", "son", "daughter", "grandchild",
                     "grandson", "granddaughter", "female", "male", "man", "woman", "lady", "senor", "senora", "friend",
                     "house", "household", "owner", "current", "name", "first", "anonymous", "noname", "xxx"}
PLACEHOLDER_EMAILS = {"test@test.com", "test@example.com", "email@email.com", "no@email.com", "none@none.com",
                      "na@na.com", "a@a.com", "x@x.com", "abc@abc.com", "asdf@asdf.com", "user@example.com"}
PLACEHOLDER_EMAIL_LOCALS = {"noemail", "no-email", "no.email", "noreply", "no-reply", "donotreply", "do-not-reply",
                            "none", "null", "unknown", "nomail", "invalid", "test"}
PLACEHOLDER_EMAIL_DOMAINS = {"test.com", "invalid", "none.com", "noemail.com"}
PLACEHOLDER_CODES = {"0", "-1", "null", "none", "n/a", "na", "unknown", "test", "undefined", "nan", "000000"}


def placeholder_reason(kind: str, key: str) -> str:
    """Why a normalized identifier is a placeholder rather than a person's ('' if it is not)."""
    if kind == "email":
        local, _, domain = key.partition("@")
        if key in PLACEHOLDER_EMAILS or local in PLACEHOLDER_EMAIL_LOCALS or domain in PLACEHOLDER_EMAIL_DOMAINS:
            return "placeholder email"
    elif kind == "phone":
        digits = key.lstrip("+")
        national = digits[-10:]
        if len(set(national)) <= 1 or national in {"1234567890", "0123456789", "9876543210"}:
            return "placeholder phone"
        if key.startswith("+1") and national[3:7] == "5550" and national[7:8] == "1":
            return "placeholder phone (fictional 555-01xx)"
    elif kind in {"customer_id", "device_id", "loyalty_card", "social_handle", "national_id"}:
        if key.lower() in PLACEHOLDER_CODES or set(key) <= {"0", "-", " "}:
            return f"placeholder {kind.replace('_', ' ')}"
        if kind == "national_id" and (len(set(key)) == 1 or key in {"123456789", "987654321"}):
            return "placeholder national id"
    return ""


@dataclass
class Blocklist:
    """Values never used to link records: built-in placeholders plus the configured ones."""

    values: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_config(cls, values: list[str], patterns: list[str]) -> Blocklist:
        return cls(frozenset(v.strip().lower() for v in values), tuple(re.compile(p, re.I) for p in patterns))

    def reason(self, kind: str, key: str) -> str:
        if key.lower() in self.values:
            return "blocked value (config)"
        if any(p.search(key) for p in self.patterns):
            return "blocked pattern (config)"
        return placeholder_reason(kind, key)


def placeholder_candidates(kind: str, key: pa.Array, values: frozenset[str], patterns: tuple) -> pa.Array | None:
    """Rows that might be blocked (the scalar check then gives the reason); None means the
    configured patterns cannot run as RE2, so every row must be checked."""
    lower = pc.utf8_lower(key)
    mask = pc.is_in(lower, pa.array(sorted(values), pa.string()))
    for pattern in patterns:
        try:
            mask = pc.or_(mask, pc.match_substring_regex(key, pattern.pattern, ignore_case=True))
        except pa.ArrowInvalid:
            return None
    if kind == "email":
        local = pc.replace_substring_regex(lower, r"@.*$", "")
        domain = pc.replace_substring_regex(lower, r"^.*@", "")
        mask = pc.or_(mask, pc.or_(pc.is_in(lower, pa.array(sorted(PLACEHOLDER_EMAILS))),
                                   pc.or_(pc.is_in(local, pa.array(sorted(PLACEHOLDER_EMAIL_LOCALS))),
                                          pc.is_in(domain, pa.array(sorted(PLACEHOLDER_EMAIL_DOMAINS))))))
    elif kind == "phone":
        same = "|".join(str(d) * 10 for d in range(10))
        mask = pc.or_(mask, pc.match_substring_regex(key, rf"({same}|1234567890|0123456789|9876543210)$|^\+1\d{{3}}55501"))
    else:
        mask = pc.or_(mask, pc.or_(pc.is_in(lower, pa.array(sorted(PLACEHOLDER_CODES))), pc.match_substring_regex(key, r"^[0\- ]+$")))
        if kind == "national_id":
            same = "|".join(f"{d}+" for d in range(10))
            mask = pc.or_(mask, pc.match_substring_regex(key, rf"^({same}|123456789|987654321)$"))
    return pc.fill_null(mask, False)
