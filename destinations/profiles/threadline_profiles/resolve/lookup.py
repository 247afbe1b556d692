"""Looking a profile up: by email, phone or id, with its golden record, its member records,
and why each record belongs (the rule and identifier behind each link)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from threadline.contracts import ThreadlineError

from threadline_profiles.engines.base import lit
from threadline_profiles.resolve.normalize import normalize_email, normalize_phone

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore


@dataclass
class GoldenValue:
    value: str
    source: str
    stream: str
    record_key: str
    seen_at: str
    rule: str


@dataclass
class Member:
    record_key: str
    source: str
    stream: str
    seen_at: str
    values: list[dict[str, Any]] = field(default_factory=list)  # field, raw, value, status, reason


@dataclass
class Link:
    record_key: str
    linked_record_key: str
    rule: str
    key: str


@dataclass
class Refused:
    """A link the guards or a limit refused, with its weight (evidence.py) and why."""

    record_key: str
    linked_record_key: str
    rule: str
    weight: float | None
    reason: str
    linked_profile_id: str | None = None  # where the other record is (None: this profile too)
    detail: str = ""  # what the weight is made of: each field's level and weight (evidence.py), no values


@dataclass
class Profile:
    """One unified profile."""

    profile_id: str
    created_at: Any
    updated_at: Any
    golden: dict[str, GoldenValue]
    members: list[Member]
    links: list[Link]
    history: list[dict[str, Any]]
    asked_for: str = ""  # the id looked up, when it was merged into this profile
    refused: list[Refused] = field(default_factory=list)

    def explain(self) -> list[str]:
        """One line per link: which rule and identifier joined which records."""
        return [f"{k.record_key} ↔ {k.linked_record_key}: rule {k.rule}, {'pair' if k.rule == 'always_merge' else 'key'} {k.key}"
                for k in self.links]

    def explain_refused(self) -> list[str]:
        """One line per refused link of the profile's records: the rule that found it, its
        match weight (log2 odds of one person) and why it was refused."""
        lines: dict[tuple, list[str]] = {}  # one line per record pair and reason: email and email_canonical together
        for r in self.refused:
            weight = "?" if r.weight is None else f"{float(r.weight):+.1f}"
            where = f" (in profile {r.linked_profile_id})" if r.linked_profile_id and r.linked_profile_id != self.profile_id else ""
            detail = f" ({r.detail})" if r.detail else ""
            lines.setdefault((r.record_key, r.linked_record_key, where, weight + detail, r.reason), []).append(r.rule)
        return [f"{a} ✗ {b}{where}: rule {', '.join(rules)}, weight {weight}, refused: {reason}"
                for (a, b, where, weight, reason), rules in lines.items()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "created_at": str(self.created_at),
            "updated_at": str(self.updated_at),
            "golden": {k: vars(v) for k, v in self.golden.items()},
            "members": [vars(m) for m in self.members],
            "links": [vars(k) for k in self.links],
            "refused_links": [{**vars(r), "weight": None if r.weight is None else float(r.weight)} for r in self.refused],
            "history": [{k: str(v) if v is not None else None for k, v in h.items()} for h in self.history],
        }


class LookupInputError(ThreadlineError):
    """The value looked up cannot be used (an invalid email or phone, or none given)."""


def find_profile_ids(store: ProfileStore, *, email: str | None = None, phone: str | None = None,
                     profile_id: str | None = None, region: str | None = None) -> list[str]:
    """Ids of the profiles holding this email or phone (several when a value is shared and
    the guards kept its holders apart), or the current id of `profile_id` (following merges)."""
    engine = store.engine
    if not engine.table_exists("tl_record_values"):
        raise LookupInputError(f"the profile store at {engine.location} has no profiles yet",
                               hint="run `threadline profiles build` (or a sync into it) first")
    if profile_id:
        current = profile_id
        for _ in range(100):  # follow merged_into, newest first
            if engine.scalar(f"SELECT COUNT(*) FROM tl_profiles WHERE profile_id = {lit(current)}"):
                return [current]
            nxt = engine.scalar(
                f"SELECT related_profile_id FROM tl_profile_history WHERE profile_id = {lit(current)} "
                "AND event = 'merged_into' ORDER BY changed_at DESC LIMIT 1")
            if not nxt:
                return []
            current = nxt
        return []
    if email:
        norm = normalize_email(email)
        if norm.status != "ok":
            raise LookupInputError(f"that email cannot be looked up: {norm.reason}")
        where = f"field = 'email' AND value = {lit(norm.value)}"
    elif phone:
        norm = normalize_phone(phone, (region or "").upper())
        if norm.status != "ok":
            raise LookupInputError(f"that phone cannot be looked up: {norm.reason}")
        where = f"field = 'phone' AND value = {lit(norm.value)}"
    else:
        raise LookupInputError("give an email, a phone or a profile id")
    rows = engine.rows(
        "SELECT m.profile_id, COUNT(*) AS n FROM tl_record_values AS v JOIN tl_members AS m ON m.record_key = v.record_key "
        f"WHERE {where} GROUP BY m.profile_id ORDER BY n DESC, m.profile_id"
    )
    return [r["profile_id"] for r in rows]


def load_profile(store: ProfileStore, profile_id: str) -> Profile | None:
    engine = store.engine
    head = engine.rows(f"SELECT * FROM tl_profiles WHERE profile_id = {lit(profile_id)}")
    if not head:
        return None
    golden = {
        r["field"]: GoldenValue(r["value"], r["source"], r["stream"], r["record_key"], r["seen_at"], r["rule"])
        for r in engine.rows(f"SELECT * FROM tl_golden WHERE profile_id = {lit(profile_id)} ORDER BY field")
    }
    members = [
        Member(r["record_key"], r["source"], r["stream"], r["seen_at"])
        for r in engine.rows(f"SELECT * FROM tl_members WHERE profile_id = {lit(profile_id)} ORDER BY record_key")
    ]
    in_profile = f"(SELECT record_key FROM tl_members WHERE profile_id = {lit(profile_id)})"
    by_key = {m.record_key: m for m in members}
    for r in engine.rows(f"SELECT record_key, field, raw, value, status, reason FROM tl_record_values "
                         f"WHERE record_key IN {in_profile} ORDER BY record_key, field"):
        by_key[r.pop("record_key")].values.append(r)
    links = [
        Link(r["record_key"], r["linked_record_key"], r["rule"], r["key"])
        for r in engine.rows(f"SELECT * FROM tl_links WHERE record_key IN {in_profile} ORDER BY record_key, rule")
    ]
    refused = [
        Refused(r["record_key"], r["linked_record_key"], r["rule"], r["weight"], r["reason"], r["linked_profile_id"],
                r["detail"] or "")
        for r in engine.rows(
            "SELECT f.record_key, f.linked_record_key, f.rule, f.weight, f.reason, m.profile_id AS linked_profile_id, f.detail "
            "FROM tl_links_refused AS f LEFT JOIN tl_members AS m ON m.record_key = f.linked_record_key "
            f"WHERE f.record_key IN {in_profile} UNION ALL "
            "SELECT f.linked_record_key, f.record_key, f.rule, f.weight, f.reason, m.profile_id, f.detail FROM tl_links_refused AS f "
            f"LEFT JOIN tl_members AS m ON m.record_key = f.record_key WHERE f.linked_record_key IN {in_profile} "
            f"AND f.record_key NOT IN {in_profile} ORDER BY 4 DESC, 1, 2, 3")
    ] if engine.table_exists("tl_links_refused") else []  # (a store last built before refused links were kept)
    history = engine.rows(
        "SELECT build_id, changed_at, profile_id, event, related_profile_id FROM tl_profile_history "
        f"WHERE profile_id = {lit(profile_id)} OR related_profile_id = {lit(profile_id)} ORDER BY changed_at, event"
    )
    return Profile(profile_id, head[0]["created_at"], head[0]["updated_at"], golden, members, links, history, refused=refused)


def get_profile(store: ProfileStore, **lookup: Any) -> Profile | None:
    """The profile for an email, phone or id (the one with most matching records when
    several hold the value); None when there is none."""
    ids = find_profile_ids(store, **lookup)
    if not ids:
        return None
    profile = load_profile(store, ids[0])
    if profile is not None and lookup.get("profile_id") and ids[0] != lookup["profile_id"]:
        profile.asked_for = lookup["profile_id"]
    return profile
