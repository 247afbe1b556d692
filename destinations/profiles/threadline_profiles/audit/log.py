"""The audit log: every access to personal data, appended to the store, tamper-evident.

Each entry says **who** (an API token's id, `cli:<os user>`), **when**, the **action**
(lookup, export, preview, push, erasure, ...), **what** it was about, **why** (the reason a
support lookup must give) and the **result**. What a person is looked up by is never kept:
the subject of a lookup or an erasure is a keyed hash (HMAC-SHA256 under the store's secret,
`activation/secret.py`, of `<kind>:<normalized value>`), so the log can answer "who looked
Ana up?" (`threadline audit --email ana@...` hashes the question the same way) and a copy of
the log tells nobody whom it is about. Audiences and activations are named in the clear.

The log is append-only by contract and tamper-evident by construction: each entry's hash is
an HMAC (a key derived from the store's secret) over its fields and the previous entry's hash,
and the store keeps the last entry's sequence number and hash, sealed with its own HMAC
(`tl_meta`, `audit_head`), so that cutting off the newest entries and pointing the head at
an older one shows too.
`verify` walks the chain: an entry edited, deleted or inserted, or the newest entries cut
off, shows as a break naming the entry. Without the secret nobody can forge a chain that
verifies; with it (an administrator of the machine) they could, which is why the head is also
printed by `threadline audit --verify` for keeping elsewhere.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from threadline.personal import scrub_personal_data

from threadline_profiles.activation.secret import StoreSecret, store_secret
from threadline_profiles.engines.base import lit
from threadline_profiles.resolve.normalize import normalize_email, normalize_phone

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

TABLE = "tl_audit_log"
TABLES = [
    f"CREATE TABLE IF NOT EXISTS {TABLE} (seq BIGINT, logged_at VARCHAR, who VARCHAR, action VARCHAR, "
    "subject_kind VARCHAR, subject VARCHAR, reason VARCHAR, result VARCHAR, detail VARCHAR, "
    "prev_hash VARCHAR, entry_hash VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_meta (key VARCHAR, value VARCHAR)",
]
HEAD_KEY = "audit_head"
GENESIS = "0" * 64
COLUMNS = ("seq", "logged_at", "who", "action", "subject_kind", "subject", "reason", "result", "detail", "prev_hash", "entry_hash")

# What an entry can record. The first five touch people's data; the rest say who could.
ACTIONS = ("lookup", "export", "preview", "push", "erasure", "sizes", "traits", "audit", "token", "probe", "enrichment")
# Subjects that are people: kept as keyed hashes. Any other kind (audience, activation, token) is a name.
PERSONAL_KINDS = ("email", "phone", "profile_id")


@dataclass(frozen=True)
class Subject:
    """What an entry is about: a person (kind email|phone|profile_id, `value` a keyed hash)
    or a named thing (an audience, an activation, a token id)."""

    kind: str = ""
    value: str = ""


@dataclass
class AuditEntry:
    seq: int
    logged_at: str
    who: str
    action: str
    subject_kind: str
    subject: str
    reason: str
    result: str
    detail: str  # JSON: counts and names, never an identifier
    prev_hash: str
    entry_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verification:
    entries: int
    head: str  # "<seq>:<hash>" of the last entry, to keep somewhere else
    breaks: list[str] = field(default_factory=list)  # one line per problem, naming the entry

    @property
    def ok(self) -> bool:
        return not self.breaks


def cli_user() -> str:
    """Who a command-line access is recorded as."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (a container without passwd entry)
        return "cli:unknown"


def _secret(store: ProfileStore) -> StoreSecret:
    secret = store_secret(store, create=True)
    assert secret is not None
    return secret


def person(store: ProfileStore, *, email: str | None = None, phone: str | None = None,
           profile_id: str | None = None, region: str | None = None) -> Subject:
    """The subject for a person looked up by this email, phone or id: the keyed hash of the
    normalized value, so `Ana@Mail.com ` and `ana@mail.com` are the same subject. A value that
    does not normalize (a typo, an attack) is hashed as given: kept no more than a valid one."""
    if email is not None:
        norm = normalize_email(email)
        kind, key = "email", (norm.key or norm.value) if norm.status == "ok" else f"unnormalized:{email}"
    elif phone is not None:
        norm = normalize_phone(phone, (region or "").upper())
        kind, key = "phone", (norm.key or norm.value) if norm.status == "ok" else f"unnormalized:{phone}"
    elif profile_id is not None:
        kind, key = "profile_id", profile_id.strip()
    else:
        return Subject()
    return Subject(kind, subject_hash(_secret(store), kind, key or ""))


def subject_hash(secret: StoreSecret, kind: str, key: str) -> str:
    return hmac.new(secret.derive("audit-subject"), f"{kind}:{key}".encode(), hashlib.sha256).hexdigest()


def named(kind: str, name: str) -> Subject:
    """The subject for a named thing (an audience, activations, a token id)."""
    assert kind not in PERSONAL_KINDS, "a person is a keyed hash: use audit.person"
    return Subject(kind, name)


def ensure_tables(store: ProfileStore) -> None:
    store.engine.run(TABLES)


def record(store: ProfileStore, *, who: str, action: str, result: str, subject: Subject = Subject(),
           reason: str = "", detail: dict[str, Any] | None = None) -> AuditEntry:
    """Append one entry. Free text (reason, result) is scrubbed of anything that looks like an
    email or phone number first: a support agent pasting the address into the reason must not
    put it into the log."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    secret = _secret(store)
    engine = store.engine
    with store.lock:
        ensure_tables(store)
        with engine.transaction():
            if engine.dialect == "postgres":  # one appender at a time across processes sharing the schema
                engine.execute("SELECT pg_advisory_xact_lock(2020202020)")
            last = engine.rows(f"SELECT seq, entry_hash FROM {TABLE} ORDER BY seq DESC LIMIT 1")
            seq, prev = (int(last[0]["seq"]) + 1, last[0]["entry_hash"]) if last else (1, GENESIS)
            entry = AuditEntry(
                seq=seq, logged_at=datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                who=who, action=action, subject_kind=subject.kind, subject=subject.value,
                reason=scrub_personal_data(reason.strip())[:500], result=scrub_personal_data(result)[:500],
                detail=scrub_personal_data(json.dumps(detail or {}, sort_keys=True, default=str)),
                prev_hash=prev, entry_hash="")
            entry.entry_hash = _entry_hash(secret, entry)
            values = ", ".join(lit(getattr(entry, c)) for c in COLUMNS)
            engine.execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({values})")
            engine.execute(f"DELETE FROM tl_meta WHERE key = {lit(HEAD_KEY)}")
            engine.execute(f"INSERT INTO tl_meta VALUES ({lit(HEAD_KEY)}, {lit(_sealed_head(secret, seq, entry.entry_hash))})")
    return entry


def _split_head(head: str) -> tuple[int, str]:
    seq, _, entry_hash = head.partition(":")
    return (int(seq) if seq.isdigit() else -1), entry_hash


def _sealed_head(secret: StoreSecret, seq: int, entry_hash: str) -> str:
    head = f"{seq}:{entry_hash}"
    return f"{head}:{hmac.new(secret.derive('audit-head'), head.encode(), hashlib.sha256).hexdigest()}"


def _entry_hash(secret: StoreSecret, entry: AuditEntry) -> str:
    fields = [getattr(entry, c) for c in COLUMNS if c != "entry_hash"]
    return hmac.new(secret.derive("audit-chain"), json.dumps(fields).encode(), hashlib.sha256).hexdigest()


def entries(store: ProfileStore, *, action: str | None = None, who: str | None = None, subject: Subject | None = None,
            since: str | None = None, limit: int | None = None) -> list[AuditEntry]:
    """Entries matching every filter given, oldest first (`limit`: the newest `limit`)."""
    ensure_tables(store)
    where = ["1 = 1"]
    if action:
        where.append(f"action = {lit(action)}")
    if who:
        where.append(f"who = {lit(who)}")
    if subject is not None and subject.kind:
        where.append(f"subject_kind = {lit(subject.kind)} AND subject = {lit(subject.value)}")
    if since:
        where.append(f"logged_at >= {lit(since)}")
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY seq DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = store.engine.rows(sql)
    return [AuditEntry(**r) for r in reversed(rows)]


def verify(store: ProfileStore) -> Verification:
    """Walk the chain from the first entry: every entry's hash must be its own, each must name
    the one before it, sequence numbers must run without a gap, and the last must be the head
    the store saved (else the newest entries were cut off)."""
    ensure_tables(store)
    rows = store.engine.rows(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY seq")
    sealed = store.engine.scalar(f"SELECT value FROM tl_meta WHERE key = {lit(HEAD_KEY)}") or ""
    head = sealed.rsplit(":", 1)[0] if sealed.count(":") == 2 else sealed
    found = Verification(len(rows), head)
    if not rows and not sealed:
        return found
    secret = _secret(store)
    if sealed and not hmac.compare_digest(sealed, _sealed_head(secret, *_split_head(head))):
        found.breaks.append("the store's record of the last entry was altered (its seal does not match)")
    prev, expected_seq = GENESIS, 1
    for row in rows:
        entry = AuditEntry(**row)
        if entry.seq > expected_seq:
            gap = f"{expected_seq}" if entry.seq - 1 == expected_seq else f"{expected_seq} to {entry.seq - 1}"
            found.breaks.append(f"entry {gap} missing (deleted)")
        elif entry.seq < expected_seq:
            found.breaks.append(f"entry {entry.seq} appears twice")
        if entry.prev_hash != prev:
            found.breaks.append(f"entry {entry.seq} does not follow the entry before it (an entry was deleted or inserted)")
        if not hmac.compare_digest(_entry_hash(secret, entry), entry.entry_hash or ""):
            found.breaks.append(f"entry {entry.seq} was modified after it was written (its hash does not match)")
        prev, expected_seq = entry.entry_hash, entry.seq + 1
    last = f"{rows[-1]['seq']}:{rows[-1]['entry_hash']}" if rows else ""
    if head != last:
        found.breaks.append(f"the log ends at entry {rows[-1]['seq'] if rows else 0}, but the store recorded "
                            f"entry {head.split(':')[0] or 0} as its last (newest entries were removed, or the head was altered)")
    return found


def record_pushes(store: ProfileStore, who: str, outcomes: list[Any]) -> None:
    """One entry per push (a `PushOutcome`): which activation, the outcome, and counts."""
    for o in outcomes:
        record(store, who=who, action="push", subject=named("activation", o.activation),
               result=f"{o.outcome}: {o.members} members, +{o.adds} -{o.removes}")
