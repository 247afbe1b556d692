"""The Data Manager API part of the sandbox: audienceMembers:ingest / :remove / :removeAll and
userLists.get.
What it enforces is listed in the package's sandbox docstring."""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from datetime import datetime
from typing import Any

from threadline.sandbox import Reply, SandboxRequest

from threadline_google_customer_match.sandbox.bodies import data_manager_reply
from threadline_google_customer_match.sandbox.lists import HEX64, Identifier

MAX_MEMBERS = 10_000
MAX_IDENTIFIERS_PER_MEMBER = 10
MAX_DESTINATIONS = 10
DATA_MANAGER_PATH = re.compile(
    r"^/v1/(?:audienceMembers:(?P<verb>ingest|removeAll|remove)|accountTypes/GOOGLE_ADS/accounts/(?P<account>\d+)/userLists/(?P<list>\d+))$"
)
_UPLOAD_KEY = {"CONTACT_INFO": "CONTACT_ID", "CRM_ID": "USER_ID", "MOBILE_ADVERTISING_ID": "MOBILE_ID"}
Violation = tuple[str, str, str]  # (field, reason, description)
# Proto3 JSON takes an enum as its name or its number; Google's official clients send numbers
# (`$alt=json;enum-encoding=int`). The numbers of the enums these requests carry, from the protos:
_CONSENT = ("CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED")
ENUM_NAMES: dict[str, tuple[str, ...]] = {
    "accountType": ("ACCOUNT_TYPE_UNSPECIFIED", "GOOGLE_ADS", "DISPLAY_VIDEO_PARTNER", "DISPLAY_VIDEO_ADVERTISER",
                    "DATA_PARTNER", "GOOGLE_ANALYTICS_PROPERTY", "GOOGLE_AD_MANAGER_AUDIENCE_LINK",
                    "FLOODLIGHT_CONFIG", "GOOGLE_AD_MANAGER"),
    "encoding": ("ENCODING_UNSPECIFIED", "HEX", "BASE64"),
    "adUserData": _CONSENT,
    "adPersonalization": _CONSENT,
    "customerMatchTermsOfServiceStatus": ("TERMS_OF_SERVICE_STATUS_UNSPECIFIED", "ACCEPTED", "REJECTED"),
}


def named_enums(value: Any) -> Any:
    """`value` (a parsed JSON body) with every enum given by number restated by name."""
    if isinstance(value, list):
        return [named_enums(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: ENUM_NAMES[k][v] if k in ENUM_NAMES and isinstance(v, int) and 0 <= v < len(ENUM_NAMES[k])
            else named_enums(v) for k, v in value.items()}


class DataManagerApi:
    """Mixed into the sandbox (which owns `_lock`, `_lists`, the credentials and the rate window)."""

    def _data_manager(self, req: SandboxRequest, match: re.Match[str]) -> Reply:
        if not self._bearer_ok(req):
            return self._unauthenticated()
        if match["verb"]:
            limited = self._rate_limited()
            return limited if limited is not None else self._members(req, match["verb"])
        return self._get_user_list(req, match["account"], match["list"])

    def _rate_limited(self) -> Reply | None:
        """At most `requests_per_minute` audienceMembers requests in any `rate_window` seconds."""
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] >= self.rate_window:
                self._recent.popleft()
            if len(self._recent) >= self.requests_per_minute:
                wait = self.rate_window - (now - self._recent[0])
                return data_manager_reply(429, "RATE_LIMIT_EXCEEDED", message="Quota exceeded for quota metric "
                                          "'Requests' and limit 'Requests per minute' of service 'datamanager.googleapis.com'.",
                                          retry_delay=f"{max(wait, 0):.3f}s")
            self._recent.append(now)
        return None

    def _account_ok(self, account: Any, login: Any) -> bool:
        return account == self.CUSTOMER_ID and login in (None, self.CUSTOMER_ID, self.MANAGER_ID)

    def _get_user_list(self, req: SandboxRequest, account: str, list_id: str) -> Reply:
        login_header = req.headers.get("login-account")
        login = login_header.rpartition("/")[2] if login_header else None
        if not self._account_ok(account, login):
            return data_manager_reply(403, "PERMISSION_DENIED", message="The caller does not have permission")
        with self._lock:
            found = self._lists.get(list_id)
            if found is None:
                return data_manager_reply(404, "NOT_FOUND", message="Requested entity was not found.")
            return Reply.json({
                "name": f"accountTypes/GOOGLE_ADS/accounts/{account}/userLists/{list_id}", "id": list_id,
                "displayName": found.name, "membershipStatus": "OPEN",
                "ingestedUserListInfo": {"uploadKeyTypes": [_UPLOAD_KEY[found.upload_key_type]]},
                "sizeInfo": {"displayNetworkMembersCount": str(found.size("display")),
                             "searchNetworkMembersCount": str(found.size("search"))},
            })

    def _members(self, req: SandboxRequest, verb: str) -> Reply:
        body = named_enums(req.json())
        destinations = body.get("destinations") or []
        if not destinations or len(destinations) > MAX_DESTINATIONS:
            return data_manager_reply(400, "INVALID_ARGUMENT", [("destinations", "TOO_MANY_DESTINATIONS" if destinations
                                                                 else "REQUIRED_FIELD_MISSING", "1 to 10 destinations")])
        lists = []
        for n, destination in enumerate(destinations):
            operating = destination.get("operatingAccount") or {}
            login = (destination.get("loginAccount") or {}).get("accountId")
            if operating.get("accountType") != "GOOGLE_ADS" or not self._account_ok(operating.get("accountId"), login):
                return data_manager_reply(403, "PERMISSION_DENIED", message="The caller does not have permission")
            found = self._lists.get(str(destination.get("productDestinationId", "")))
            if found is None:
                return data_manager_reply(400, "INVALID_ARGUMENT", [(
                    f"destinations[{n}].product_destination_id", "INVALID_USER_LIST_ID", "The user list is invalid.")])
            if found.upload_key_type != "CONTACT_INFO":
                return data_manager_reply(400, "INVALID_ARGUMENT", [(
                    f"destinations[{n}].product_destination_id", "INVALID_USER_LIST_TYPE",
                    "The user list type isn't applicable to this request.")])
            lists.append(found)
        if verb == "removeAll":
            return self._remove_all(body, lists)
        if verb == "ingest" and (body.get("termsOfService") or {}).get("customerMatchTermsOfServiceStatus") != "ACCEPTED":
            return data_manager_reply(400, "INVALID_ARGUMENT", [(
                "terms_of_service", "TERMS_AND_CONDITIONS_NOT_SIGNED", "The required terms and conditions are not accepted.")])
        encoding = body.get("encoding")
        if encoding not in ("HEX", "BASE64"):
            return data_manager_reply(400, "INVALID_ARGUMENT", [("encoding", "REQUIRED_FIELD_MISSING", "Set encoding to HEX or BASE64.")])
        members = body.get("audienceMembers") or []
        if len(members) > MAX_MEMBERS:
            return data_manager_reply(400, "INVALID_ARGUMENT", [(
                "audience_members", "TOO_MANY_AUDIENCE_MEMBERS", "The maximum number of audience members allowed per request is 10,000.")])
        parsed, violations = [], []
        for index, member in enumerate(members):
            problem, identifiers = self._audience_member(member, encoding)
            if problem:
                violations.append((f"audience_members.audience_members[{index}].{problem[0]}", problem[1], problem[2]))
            parsed.append(identifiers)
        if violations:  # synchronous and all-or-nothing: nothing of this request is applied
            return data_manager_reply(400, "INVALID_ARGUMENT", violations)
        consent = body.get("consent") or {}
        targetable = consent.get("adUserData") == consent.get("adPersonalization") == "CONSENT_GRANTED"
        if not body.get("validateOnly"):
            with self._lock:
                for target in lists:
                    for identifiers in parsed:
                        if verb == "ingest":
                            target.add(set(identifiers), targetable=targetable)
                        else:
                            target.remove(identifiers)
        return Reply.json({"requestId": str(uuid.uuid4())})

    def _remove_all(self, body: dict[str, Any], lists: list[Any]) -> Reply:
        """Empty each destination list, or only of members last added before `removeAsOfTime`
        (RFC 3339, not in the future)."""
        as_of = body.get("removeAsOfTime")
        before = None
        if as_of is not None:
            try:
                before = datetime.fromisoformat(str(as_of).replace("Z", "+00:00")).timestamp()
            except ValueError:
                return data_manager_reply(400, "INVALID_ARGUMENT", [("remove_as_of_time", "INVALID_FORMAT",
                                                                     "Timestamp is not RFC 3339.")])
            if before > time.time():
                return data_manager_reply(400, "INVALID_ARGUMENT", [("remove_as_of_time", "INVALID_ARGUMENT",
                                                                     "The remove as of time must not be in the future.")])
        if not body.get("validateOnly"):
            with self._lock:
                for target in lists:
                    target.clear(added_before=before)
        return Reply.json({"requestId": str(uuid.uuid4())})

    def _audience_member(self, member: dict[str, Any], encoding: str) -> tuple[Violation | None, set[Identifier]]:
        user_data = member.get("userData") or (member.get("compositeData") or {}).get("userData") or {}
        identifiers = user_data.get("userIdentifiers") or []
        if not identifiers:
            return ("user_data.user_identifiers", "REQUIRED_FIELD_MISSING", "At least one user identifier is required."), set()
        if len(identifiers) > MAX_IDENTIFIERS_PER_MEMBER:
            return ("user_data.user_identifiers", "TOO_MANY_USER_IDENTIFIERS",
                    "The maximum number of user identifiers allowed per audience member is 10."), set()
        found: set[Identifier] = set()
        for identifier in identifiers:
            if len(identifier) != 1:
                return ("user_data.user_identifiers", "INVALID_FORMAT", "Set exactly one identifier per UserIdentifier."), set()
            if "address" in identifier:
                address = identifier["address"]
                names = [self._hash(address.get(k), encoding) for k in ("givenName", "familyName")]
                if any(isinstance(n, tuple) for n in names):
                    return next(n for n in names if isinstance(n, tuple)), set()
                region, postal = address.get("regionCode"), address.get("postalCode")
                if not (isinstance(region, str) and re.fullmatch(r"[A-Z]{2}", region)):
                    return ("user_data.user_identifiers.address.region_code", "INVALID_FORMAT", "Region code is invalid."), set()
                if not postal:
                    return ("user_data.user_identifiers.address.postal_code", "INVALID_POSTAL_CODE", "Postal code is invalid."), set()
                found.add(("address", *names, region, str(postal)))
                continue
            for key, name in (("emailAddress", "email"), ("phoneNumber", "phone")):
                if key in identifier:
                    value = self._hash(identifier[key], encoding)
                    if isinstance(value, tuple):
                        return value, set()
                    if value in self._poisoned:
                        return ("user_data.user_identifiers", self._poisoned[value], "The identifier is invalid."), set()
                    found.add((name, value))
        return None, found

    @staticmethod
    def _hash(value: Any, encoding: str) -> str | Violation:
        """A hashed value as lower-case hex, or the violation it is."""
        if not isinstance(value, str):
            return ("user_data.user_identifiers", "REQUIRED_FIELD_MISSING", "A hashed value is required.")
        if encoding == "BASE64":
            try:
                value = base64.b64decode(value, validate=True).hex()
            except (binascii.Error, ValueError):
                return ("user_data.user_identifiers", "INVALID_BASE64_ENCODING", "The value is not base64 encoded.")
        elif not re.fullmatch(r"[0-9a-fA-F]+", value):
            return ("user_data.user_identifiers", "INVALID_HEX_ENCODING", "The value is not hex encoded.")
        value = value.lower()  # the case of hex doesn't matter (Google's formatting guide)
        if not HEX64.match(value):
            return ("user_data.user_identifiers", "INVALID_SHA256_FORMAT", "The value is not a SHA-256 hash.")
        return value
