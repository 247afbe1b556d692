"""The sandbox's user lists: who each holds, keyed by the identifiers they were uploaded with.

A member is the set of identifiers one UserData (or AudienceMember) carried:
`("email", sha)`, `("phone", sha)`, `("address", first_sha, last_sha, country, postal)`, and is
known by its strongest one (email, else phone, else address): uploading a member with the same
key again updates it, and a removal takes away the member its strongest identifier names. So
two people sharing a household phone or address stay two members, and removing one leaves
the other.

Matching is simulated so list sizes look like Google's: a member "matches a Google account"
when the first byte of its key's hash is below 70% of the range (display), and 50% for
search — deterministic, so tests can predict it.
"""

from __future__ import annotations

import re
import time
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
    members: dict[Identifier, set[Identifier]] = field(default_factory=dict)  # key → identifiers
    targetable: dict[Identifier, bool] = field(default_factory=dict)  # uploaded with consent GRANTED
    added_at: dict[Identifier, float] = field(default_factory=dict)  # when each member was last added (epoch s)

    def add(self, identifiers: set[Identifier], targetable: bool = True) -> None:
        key = member_key(identifiers)
        self.members[key] = self.members.get(key, set()) | identifiers
        self.targetable[key] = targetable or self.targetable.get(key, False)
        self.added_at[key] = time.time()

    def remove(self, identifiers: set[Identifier]) -> None:
        key = member_key(identifiers)
        self.members.pop(key, None)
        self.targetable.pop(key, None)
        self.added_at.pop(key, None)

    def clear(self, added_before: float | None = None) -> None:
        """Remove every member, or those last added before `added_before` (the Data Manager
        API's removeAll with removeAsOfTime)."""
        if added_before is None:
            self.members.clear()
            self.targetable.clear()
            self.added_at.clear()
            return
        for key in [k for k, at in self.added_at.items() if at < added_before]:
            self.remove({key})

    def email_hashes(self) -> set[str]:
        return {i[1] for ids in self.members.values() for i in ids if i[0] == "email"}

    def size(self, network: str) -> int:
        """Targetable members matched to a Google account on `network` ("display" or "search")."""
        share = 0.7 if network == "display" else 0.5
        return sum(1 for key in self.members if self.targetable[key] and matches(key, share))


_STRENGTH = {"email": 0, "phone": 1, "address": 2, "crm_id": 3}


def member_key(identifiers: set[Identifier]) -> Identifier:
    """The identifier a member is known by: email, else phone, else address."""
    return min(identifiers, key=lambda i: (_STRENGTH.get(i[0], 9), i))


def matches(key: Identifier, share: float = 0.7) -> bool:
    return int(key[1][:2], 16) < 256 * share if key[0] != "crm_id" else True


def match_rate_range(matched: int, total: int) -> str:
    """Google's OfflineUserDataJobMatchRateRange for matched/total (UNKNOWN when nothing was
    created: the enum has no MATCH_RANGE_UNKNOWN)."""
    if not total:
        return "UNKNOWN"
    percent = 100 * matched / total
    for upper, name in ((20, "MATCH_RANGE_LESS_THAN_20"), (30, "MATCH_RANGE_20_TO_30"), (40, "MATCH_RANGE_31_TO_40"),
                        (50, "MATCH_RANGE_41_TO_50"), (60, "MATCH_RANGE_51_TO_60"), (70, "MATCH_RANGE_61_TO_70"),
                        (80, "MATCH_RANGE_71_TO_80"), (90, "MATCH_RANGE_81_TO_90")):
        if percent < upper:
            return name
    return "MATCH_RANGE_91_TO_100"
