"""The sandbox's user lists: who each holds, keyed by the identifiers they were uploaded with.

A member is the set of identifiers one UserData (or AudienceMember) carried:
`("email", sha)`, `("phone", sha)`, `("address", first_sha, last_sha, country, postal)`.
Uploading a member that shares an identifier with one already held merges them (Google
matches people, not rows); removing removes every member sharing an identifier.

Matching is simulated so list sizes look like Google's: a member "matches a Google account"
when the first byte of its first identifier's hash is below 70% of the range (display), and
50% for search — deterministic, so tests can predict it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Identifier = tuple[str, ...]
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# ISO 3166 alpha-2 codes that are user-assigned, so never a country.
_NOT_COUNTRIES = {"AA", "ZZ", *(f"Q{c}" for c in "MNOPQRSTUVWXYZ"), *(f"X{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def is_country(code: object) -> bool:
    return isinstance(code, str) and bool(re.fullmatch(r"[A-Z]{2}", code)) and code not in _NOT_COUNTRIES


@dataclass
class UserList:
    """A CRM-based user list of the sandbox's customer."""

    id: str
    name: str
    upload_key_type: str  # CONTACT_INFO | CRM_ID | MOBILE_ADVERTISING_ID
    members: dict[int, set[Identifier]] = field(default_factory=dict)
    targetable: dict[int, bool] = field(default_factory=dict)  # uploaded with consent GRANTED
    _owner: dict[Identifier, int] = field(default_factory=dict)
    _next: int = 0

    def add(self, identifiers: set[Identifier], targetable: bool = True) -> None:
        owners = sorted({self._owner[i] for i in identifiers if i in self._owner})
        if owners:
            keep = owners[0]
            for other in owners[1:]:
                identifiers |= self.members.pop(other)
                targetable = targetable or self.targetable.pop(other)
            identifiers |= self.members[keep]
            targetable = targetable or self.targetable[keep]
        else:
            keep, self._next = self._next, self._next + 1
        self.members[keep] = set(identifiers)
        self.targetable[keep] = targetable
        for identifier in identifiers:
            self._owner[identifier] = keep

    def remove(self, identifiers: set[Identifier]) -> None:
        for owner in {self._owner[i] for i in identifiers if i in self._owner}:
            for identifier in self.members.pop(owner):
                self._owner.pop(identifier, None)
            self.targetable.pop(owner)

    def clear(self) -> None:
        self.members.clear()
        self.targetable.clear()
        self._owner.clear()

    def email_hashes(self) -> set[str]:
        return {i[1] for ids in self.members.values() for i in ids if i[0] == "email"}

    def size(self, network: str) -> int:
        """Targetable members matched to a Google account on `network` ("display" or "search")."""
        share = 0.7 if network == "display" else 0.5
        return sum(1 for n, ids in self.members.items() if self.targetable[n] and matches(ids, share))


def matches(identifiers: set[Identifier], share: float = 0.7) -> bool:
    first = min(identifiers)
    return int(first[1][:2], 16) < 256 * share


def match_rate_range(matched: int, total: int) -> str:
    """Google's MatchRateRange bucket for matched/total."""
    if not total:
        return "MATCH_RANGE_UNKNOWN"
    percent = 100 * matched / total
    for upper, name in ((20, "MATCH_RANGE_LESS_THAN_20"), (30, "MATCH_RANGE_20_TO_30"), (40, "MATCH_RANGE_31_TO_40"),
                        (50, "MATCH_RANGE_41_TO_50"), (60, "MATCH_RANGE_51_TO_60"), (70, "MATCH_RANGE_61_TO_70"),
                        (80, "MATCH_RANGE_71_TO_80"), (90, "MATCH_RANGE_81_TO_90")):
        if percent < upper:
            return name
    return "MATCH_RANGE_91_TO_100"
