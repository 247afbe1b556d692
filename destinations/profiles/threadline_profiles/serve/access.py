"""Who may do what through `threadline serve`, what each role sees, and what counts as an
exact identifier. Each is a table to read, not a branch to find."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from threadline_profiles.audiences.membership import mask_email
from threadline_profiles.resolve.lookup import Profile
from threadline_profiles.resolve.normalize import normalize_email, normalize_phone

# action (the audit log's word for it) -> the roles that may do it
PERMISSIONS: dict[str, frozenset[str]] = {
    "lookup": frozenset({"support", "admin"}),      # one person, by an exact identifier, with a reason
    "sizes": frozenset({"marketer", "admin"}),      # audience sizes
    "preview": frozenset({"marketer", "admin"}),    # an audience's figures and a masked sample
    "traits": frozenset({"marketer", "admin"}),     # aggregate traits (no group smaller than MIN_GROUP)
    "export": frozenset({"admin"}),                 # an audience's members with their identifiers
    "erasure": frozenset({"admin"}),                # forget a person
    "audit": frozenset({"admin"}),                  # read the audit log
    "token": frozenset({"admin"}),                  # revoke a token
    "probe": frozenset({"support", "marketer", "admin"}),  # a path no endpoint has: 404, audited
}

# How support sees a golden-record field: enough to confirm they have the right person on
# the phone, not enough to learn anything new about them. A field not listed is withheld.
SUPPORT_VIEW = {"first_name": "clear", "last_name": "initial", "email": "email", "phone": "last4", "city": "clear",
                "country": "clear"}
WITHHELD = "(withheld)"

# Aggregates hide any group of fewer profiles than this: a count of 1 is one person's data.
MIN_GROUP = 5
MAX_SAMPLE = 20

# Exact identifiers only: a complete, valid email, phone or profile id, written with nothing
# a wildcard, a prefix match, SQL or a path could use. Lookups compare whole normalized values
# with quoted literals anyway; refusing these up front keeps probes out of the store entirely.
_EMAIL = re.compile(r"[A-Za-z0-9._+'-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+")
_PHONE = re.compile(r"\+?[0-9 ().-]{7,24}")
_PROFILE_ID = re.compile(r"p[0-9a-f]{15}")  # resolve/ids.py: 'p' and 15 hex digits of an MD5
_REGION = re.compile(r"[A-Za-z]{2}")
_SUSPECT = ("--", "..", "/*", "*/")


@dataclass(frozen=True)
class Identifier:
    email: str | None = None
    phone: str | None = None
    profile_id: str | None = None
    region: str | None = None

    def as_lookup(self) -> dict[str, Any]:
        return {"email": self.email, "phone": self.phone, "profile_id": self.profile_id, "region": self.region}


def exact_identifier(body: dict[str, Any]) -> Identifier | None:
    """The identifier in a request body when it is one exact, complete email, phone or profile
    id (and a country for a phone without +code); None for anything else."""
    given = {k: body.get(k) for k in ("email", "phone", "profile_id") if body.get(k) is not None}
    region = body.get("region")
    if len(given) != 1 or (region is not None and not (isinstance(region, str) and _REGION.fullmatch(region))):
        return None
    (kind, value), = given.items()
    if not isinstance(value, str) or any(s in value for s in _SUSPECT):
        return None
    value = value.strip(" ")  # pasted with spaces around is still exact; spaces inside are not
    if kind == "email" and _EMAIL.fullmatch(value) and normalize_email(value).status == "ok":
        return Identifier(email=value)
    if kind == "phone" and _PHONE.fullmatch(value) and normalize_phone(value, (region or "").upper()).status == "ok":
        return Identifier(phone=value, region=region)
    if kind == "profile_id" and _PROFILE_ID.fullmatch(value):
        return Identifier(profile_id=value)
    return None


def _mask(how: str, value: str) -> str:
    if how == "clear":
        return value
    if how == "initial":
        return (value[:1] + ".") if value else ""
    if how == "email":
        return mask_email(value)
    if how == "last4":
        digits = re.sub(r"\D", "", value)
        return f"***{digits[-4:]}" if len(digits) >= 4 else "***"
    return WITHHELD


def support_view(profile: Profile) -> dict[str, Any]:
    """A profile as support sees it: the fields of `SUPPORT_VIEW` masked as it says, the
    others withheld; which sources hold the person, never their records' values."""
    sources: dict[str, int] = {}
    for m in profile.members:
        sources[f"{m.source}.{m.stream}"] = sources.get(f"{m.source}.{m.stream}", 0) + 1
    return {
        "profile_id": profile.profile_id,
        "created_at": str(profile.created_at),
        "updated_at": str(profile.updated_at),
        "fields": {name: _mask(SUPPORT_VIEW.get(name, "withheld"), str(g.value)) for name, g in profile.golden.items()},
        "records": len(profile.members),
        "sources": sources,
    }


def admin_view(profile: Profile) -> dict[str, Any]:
    return profile.to_dict()


def mask_profile_id(profile_id: str) -> str:
    """p3f2…: tells sample rows apart without naming a profile that can be looked up."""
    return profile_id[:5] + "…" if profile_id else ""
