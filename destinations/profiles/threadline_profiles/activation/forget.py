"""Erasure: `threadline forget --email ...` (`api.forget`) removes a person from the store for good.

`find_person` says who would be erased (nothing changes); `erase` does steps 1-4; `api.forget`
does the rest, in this order:

1. finds the person's profile(s) and every record in them. Nobody found: nothing changes
   (no tombstone of a stranger's address) unless asked to block an identifier nobody holds yet;
2. deletes those records from the landed tables, their values from the normalization cache
   (`tl_norm_cache`, which keeps raw values) unless a remaining record holds them too, their
   audience history, their decisions and contact history (`tl_decisions`, `tl_contacts`) and
   the rows a platform refused for them (`tl_refused_*`);
3. keeps a *tombstone* per identifier that only this person held: HMAC-SHA256 of
   ``<field>:<normalized value>`` under the store's secret (`secret.py`), never the value. Every
   later build drops records carrying a tombstoned identifier (from the landed tables and the
   values it normalized), so a later sync cannot bring the person back;
4. writes an audit entry (`tl_audit`): when, how many profiles, records and tombstones, and
   which activations have a removal queued. No identifier is written anywhere;
5. (`api.forget`) rebuilds, so profiles, golden records, traits and audiences no longer hold them;
6. pushes the removal to every activation whose ledger holds them (the ledger rows are the
   queued removals; they hold what the platform needs to find the member, hashed or
   encrypted, and leave the ledger once the platform took the removal);
7. deletes the person's rows from the job's quarantine files (rejected rows are kept raw);
8. compacts the store, so that no freed block of the file still holds their rows: DuckDB
   copies the store into a fresh file and swaps it in; Postgres rewrites every table of the
   schema (VACUUM FULL).

Reports, logs and run history hold no identifier to begin with (names and addresses never
appear in reports; `threadline.personal` masks emails and phones in every message).

An identifier the person shares with someone else who is not forgotten (a household email)
is not tombstoned: that would erase the other person too. Their records are still deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from threadline_profiles.activation.secret import StoreSecret, store_secret
from threadline_profiles.engines.base import lit, work_table
from threadline_profiles.land.landing import LandedStream, landed_streams
from threadline_profiles.resolve.normalize import (
    IDENTIFIER_KINDS,
    normalize_email,
    normalize_phone,
)

if TYPE_CHECKING:
    from threadline_profiles.engines import Engine
    from threadline_profiles.store import ProfileStore

TABLES = [
    "CREATE TABLE IF NOT EXISTS tl_tombstones (hash VARCHAR, field VARCHAR, forgotten_at TIMESTAMP, audit_id VARCHAR)",
    # tombstones made before the store had a secret are plain SHA-256 (scheme NULL); a build
    # that meets their value again replaces them with the keyed hash
    "ALTER TABLE tl_tombstones ADD COLUMN IF NOT EXISTS scheme VARCHAR",
    "CREATE TABLE IF NOT EXISTS tl_audit (audit_id VARCHAR, audited_at TIMESTAMP, action VARCHAR, detail VARCHAR)",
]
KEYED = "hmac-sha256"
_KINDS_SQL = ", ".join(lit(k) for k in sorted(IDENTIFIER_KINDS))


def tombstone_hash(secret: StoreSecret, field_name: str, match_key: str) -> str:
    """The tombstone of one identifier: keyed, so a copy of the store cannot be searched by
    hashing candidate phone numbers or addresses."""
    return hmac.new(secret.derive("tombstones"), f"{field_name}:{match_key}".encode(), hashlib.sha256).hexdigest()


def _legacy_hash(field_name: str, match_key: str) -> str:
    return hashlib.sha256(f"{field_name}:{match_key}".encode()).hexdigest()


@dataclass
class Person:
    """Who `forget` would erase, found without changing anything."""

    asked: str  # what was asked for, masked, for messages ("an email", "profile p3f2...")
    profile_ids: list[str]
    records: list[dict[str, str]]  # record_key, source, stream, pk
    keys: list[tuple[str, str]]  # (field, match key) of identifiers only they hold: tombstoned
    given: list[tuple[str, str]]  # (field, match key) asked for
    shared_identifiers_kept: int = 0
    emails: list[str] = field(default_factory=list)  # every email and phone of their records, to find
    phones: list[str] = field(default_factory=list)  # their rows where no record key leads (quarantine)

    @property
    def found(self) -> bool:
        return bool(self.profile_ids)

    def by_stream(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            key = f"{r['source']}.{r['stream']}"
            out[key] = out.get(key, 0) + 1
        return out


@dataclass
class ForgetResult:
    audit_id: str
    found: bool = True
    profiles: int = 0
    records: int = 0
    tombstones: int = 0
    shared_identifiers_kept: int = 0
    pending_removals: dict[str, int] = field(default_factory=dict)  # activation -> members queued for removal
    quarantined_rows_deleted: int = 0
    quarantine_searched: bool = False
    compacted: str = ""  # how the store was compacted ("" when it was not)
    pushes: list = field(default_factory=list)  # PushOutcome of each removal pushed

    def summary(self) -> str:
        if not self.found and not self.tombstones:
            return "nobody in the profile store holds that identifier; nothing was changed"
        queued = ", ".join(f"{a} ({n})" for a, n in self.pending_removals.items()) or "none"
        text = (f"forgot {self.profiles} profile(s), {self.records} record(s); {self.tombstones} identifier(s) "
                f"tombstoned so later syncs drop them; removal queued from: {queued}")
        if self.quarantine_searched:
            text += f"; {self.quarantined_rows_deleted} quarantined row(s) deleted"
        if self.compacted:
            text += f"; store compacted ({self.compacted})"
        return text + f"; audit id {self.audit_id}"


def find_person(store: ProfileStore, *, email: str | None = None, phone: str | None = None,
                profile_id: str | None = None, region: str | None = None) -> Person:
    """Who holds this email, phone or profile id, and what erasing them would touch."""
    from threadline_profiles.resolve.lookup import LookupInputError, find_profile_ids

    engine = store.engine
    given: list[tuple[str, str]] = []  # (field, normalized value) asked for
    if email:
        norm = normalize_email(email)
        if norm.status != "ok":
            raise LookupInputError(f"that email cannot be forgotten as given: {norm.reason}")
        given.append(("email", norm.key or norm.value or ""))
    if phone:
        norm = normalize_phone(phone, (region or "").upper())
        if norm.status != "ok":
            raise LookupInputError(f"that phone cannot be forgotten as given: {norm.reason}")
        given.append(("phone", norm.key or norm.value or ""))
    asked = "that email" if email else "that phone" if phone else f"profile {profile_id}"
    has_profiles = engine.table_exists("tl_members") and engine.table_exists("tl_record_values")
    ids = find_profile_ids(store, email=email, phone=phone, profile_id=profile_id, region=region) if has_profiles else []
    person = Person(asked, ids, [], [], given)
    if not ids:
        return person
    in_ids = "(" + ", ".join(lit(i) for i in ids) + ")"
    person.records = engine.rows(f"SELECT record_key, source, stream, pk FROM tl_members WHERE profile_id IN {in_ids}")
    theirs = (f"SELECT v.field, v.kind, v.value, v.match_key FROM tl_record_values AS v JOIN tl_members AS m "
              f"ON m.record_key = v.record_key WHERE m.profile_id IN {in_ids} AND v.status = 'ok' AND v.match_key IS NOT NULL")
    person.keys = [(r["field"], r["match_key"]) for r in engine.rows(
        f"SELECT DISTINCT t.field, t.match_key FROM ({theirs}) AS t WHERE t.kind IN ({_KINDS_SQL}) "
        f"AND NOT EXISTS (SELECT 1 FROM tl_record_values AS o JOIN tl_members AS om ON om.record_key = o.record_key "
        f"WHERE o.field = t.field AND o.match_key = t.match_key AND om.profile_id NOT IN {in_ids})")]
    held = engine.scalar(f"SELECT COUNT(*) FROM (SELECT DISTINCT t.field, t.match_key FROM ({theirs}) AS t "
                         f"WHERE t.kind IN ({_KINDS_SQL})) AS d") or 0
    person.shared_identifiers_kept = held - len(person.keys)
    contact = engine.rows(f"SELECT DISTINCT t.kind, t.value FROM ({theirs}) AS t WHERE t.kind IN ('email', 'phone')")
    person.emails = sorted({r["value"] for r in contact if r["kind"] == "email"} | {v for f, v in given if f == "email"})
    person.phones = sorted({r["value"] for r in contact if r["kind"] == "phone"} | {v for f, v in given if f == "phone"})
    return person


def erase(store: ProfileStore, person: Person, *, even_if_unknown: bool = False) -> ForgetResult:
    """Erase `person` (steps 1-4 of the module docstring). A person nobody holds changes
    nothing, unless `even_if_unknown`: then the identifiers asked for are tombstoned, so
    that a record carrying them is dropped as soon as it lands."""
    engine = store.engine
    engine.run(TABLES)
    result = ForgetResult(audit_id="forget-" + uuid.uuid4().hex[:12], found=person.found)
    if not person.found and not even_if_unknown:
        return result
    secret = store_secret(store, create=True)
    assert secret is not None
    ids = person.profile_ids
    in_ids = "(" + ", ".join(lit(i) for i in ids) + ")" if ids else "(NULL)"
    result.profiles, result.records = len(ids), len(person.records)
    result.shared_identifiers_kept = person.shared_identifiers_kept
    hashes = sorted({tombstone_hash(secret, f, k) for f, k in person.keys + person.given})
    result.tombstones = len(hashes)
    result.pending_removals = _pending_removals(store, ids)
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    detail = {k: v for k, v in asdict(result).items() if k in ("profiles", "records", "tombstones",
                                                                "shared_identifiers_kept", "pending_removals")}
    with store.lock, engine.transaction():
        if ids:
            _forget_cached_values(engine, in_ids)  # before the records go: it reads their values
        for stream in landed_streams(store):
            pks = [r["pk"] for r in person.records if r["source"] == stream.source and r["stream"] == stream.stream]
            for start in range(0, len(pks), 1000):
                chunk = ", ".join(lit(p) for p in pks[start:start + 1000])
                engine.execute(f"DELETE FROM {stream.table} WHERE _tl_key IN ({chunk})")
        if ids and engine.table_exists("tl_audience_members"):  # no trace of who they were in audience history
            engine.execute(f"DELETE FROM tl_audience_members WHERE profile_id IN {in_ids}")
        for table in ("tl_decisions", "tl_contacts"):  # nor in what campaigns chose for them or reached them with
            if ids and engine.table_exists(table):
                engine.execute(f"DELETE FROM {table} WHERE profile_id IN {in_ids}")
        for name in store.config.activations:  # what a platform refused is no removal to push: just gone
            if ids and engine.table_exists(f"tl_refused_{name}"):
                engine.execute(f"DELETE FROM tl_refused_{name} WHERE member_id IN {in_ids}")
        for start in range(0, len(hashes), 1000):
            engine.execute("INSERT INTO tl_tombstones (hash, field, forgotten_at, audit_id, scheme) VALUES " + ", ".join(
                f"({lit(h)}, NULL, CAST({lit(now)} AS TIMESTAMP), {lit(result.audit_id)}, {lit(KEYED)})"
                for h in hashes[start:start + 1000]))
        engine.execute(f"INSERT INTO tl_audit VALUES ({lit(result.audit_id)}, CAST({lit(now)} AS TIMESTAMP), 'forget', "
                       f"{lit(json.dumps(detail, sort_keys=True))})")
    return result


def _forget_cached_values(engine: Engine, in_ids: str) -> None:
    """Delete from the normalization cache every raw value of the person's records that no
    other record holds (the cache keeps raw text: names, addresses, birth dates, emails)."""
    from threadline_profiles.resolve.publish import NORM_CACHE

    if not engine.table_exists(NORM_CACHE):
        return
    engine.execute(
        f"DELETE FROM {NORM_CACHE} WHERE EXISTS (SELECT 1 FROM tl_record_values AS v JOIN tl_members AS m "
        f"ON m.record_key = v.record_key WHERE m.profile_id IN {in_ids} AND v.kind = {NORM_CACHE}.kind "
        f"AND v.raw = {NORM_CACHE}.raw) AND NOT EXISTS (SELECT 1 FROM tl_record_values AS o JOIN tl_members AS om "
        f"ON om.record_key = o.record_key WHERE om.profile_id NOT IN {in_ids} AND o.kind = {NORM_CACHE}.kind "
        f"AND o.raw = {NORM_CACHE}.raw)")


def _pending_removals(store: ProfileStore, ids: list[str]) -> dict[str, int]:
    """Activations whose ledger holds these profiles: the next push removes them there."""
    from threadline_profiles.activation.push import ledger_member_ids

    wanted = set(ids)
    out = {}
    for name in store.config.activations:
        held = len(ledger_member_ids(store, name) & wanted)
        if held:
            out[name] = held
    return out


def tombstone_secret(store: ProfileStore) -> StoreSecret | None:
    """The secret a build needs to match tombstones (None when the store has none: nothing to
    match). A store with tombstones and no secret is an error, never a silent pass."""
    engine = store.engine
    if not engine.table_exists("tl_tombstones"):
        return None
    engine.run(TABLES)
    if not engine.scalar("SELECT COUNT(*) FROM tl_tombstones"):
        return None
    return store_secret(store, create=False)  # keyed tombstones saved its fingerprint: missing is an error


def drop_tombstoned(engine: Engine, streams: list[LandedStream], fresh: str, secret: StoreSecret | None) -> int:
    """Inside a build, after normalization: drop the records carrying a tombstoned identifier
    from the work tables, the landed tables and the values this build normalized (`fresh`,
    on their way into the cache). Returns how many records were dropped."""
    if not engine.table_exists("tl_tombstones") or not engine.scalar("SELECT COUNT(*) FROM tl_tombstones"):
        return 0
    values = engine.query(f"SELECT DISTINCT field, match_key FROM tl_work_nv WHERE status = 'ok' "
                          f"AND match_key IS NOT NULL AND kind IN ({_KINDS_SQL})")
    stones = engine.rows("SELECT hash, scheme FROM tl_tombstones")
    keyed = {r["hash"] for r in stones if r["scheme"] == KEYED}
    legacy = {r["hash"] for r in stones if r["scheme"] != KEYED}
    fields, keys = values.column("field").to_pylist(), values.column("match_key").to_pylist()
    hits = [(f, k) for f, k in zip(fields, keys)
            if (secret is not None and tombstone_hash(secret, f, k) in keyed) or (legacy and _legacy_hash(f, k) in legacy)]
    if not hits:
        return 0
    if legacy and secret is not None:  # met again: the plain SHA-256 tombstone becomes a keyed one
        found = {_legacy_hash(f, k): tombstone_hash(secret, f, k) for f, k in hits if _legacy_hash(f, k) in legacy}
        for old, new in found.items():
            engine.execute(f"UPDATE tl_tombstones SET hash = {lit(new)}, scheme = {lit(KEYED)} WHERE hash = {lit(old)}")
    engine.load_table("tl_work_tomb", pa.table({"field": [f for f, _ in hits], "match_key": [k for _, k in hits]}), temp=True)
    engine.run(["DROP TABLE IF EXISTS tl_work_tomb_rid",
                work_table(
                    "tl_work_tomb_rid",
                    "AS SELECT DISTINCT v.rid FROM tl_work_nv AS v "
                    "JOIN tl_work_tomb AS t ON t.field = v.field AND t.match_key = v.match_key")])
    dropped = engine.scalar("SELECT COUNT(*) FROM tl_work_tomb_rid") or 0
    for stream in streams:
        engine.execute(
            f"DELETE FROM {stream.table} WHERE _tl_key IN (SELECT r.pk FROM tl_work_records AS r JOIN tl_work_tomb_rid AS d "
            f"ON d.rid = r.rid WHERE r.source = {lit(stream.source)} AND r.stream = {lit(stream.stream)})")
    # the values this build normalized for them stay out of the cache, unless a kept record has them too
    engine.execute(
        f"DELETE FROM {fresh} WHERE EXISTS (SELECT 1 FROM tl_work_values AS v JOIN tl_work_tomb_rid AS d ON d.rid = v.rid "
        f"WHERE v.kind = {fresh}.kind AND v.hint = {fresh}.hint AND v.raw = {fresh}.raw) AND NOT EXISTS (SELECT 1 FROM "
        f"tl_work_values AS o WHERE o.rid NOT IN (SELECT rid FROM tl_work_tomb_rid) AND o.kind = {fresh}.kind "
        f"AND o.hint = {fresh}.hint AND o.raw = {fresh}.raw)")
    for table in ("tl_work_values", "tl_work_nv", "tl_work_rec", "tl_work_records"):
        if engine.table_exists(table):
            engine.execute(f"DELETE FROM {table} WHERE rid IN (SELECT rid FROM tl_work_tomb_rid)")
    engine.run(["DROP TABLE IF EXISTS tl_work_tomb", "DROP TABLE IF EXISTS tl_work_tomb_rid"])
    return int(dropped)


# --------------------------------------------------------------------------- quarantine


def quarantine_matcher(store: ProfileStore, person: Person) -> Any:
    """A test for one quarantined row (source, stream, record): is it one of the person's?
    Rows are raw as the source sent them, so it compares what they hold: the primary key of
    one of their records in the same stream, or any value that is one of their emails (any
    case, spaces around) or phone numbers (same digits, with or without the country code)."""
    emails = {e.lower() for e in person.emails}
    digits = set()
    for phone in person.phones:
        only = re.sub(r"\D", "", phone)
        digits.add(only)
        try:
            import phonenumbers

            digits.add(str(phonenumbers.parse(phone).national_number))
        except Exception:  # a number phonenumbers cannot read: its digits alone
            pass
    keys: dict[tuple[str, str], tuple[tuple[str, ...], set[str]]] = {}
    for stream in landed_streams(store):
        pks = {r["pk"] for r in person.records if r["source"] == stream.source and r["stream"] == stream.stream}
        if pks and stream.primary_key:
            keys[(stream.source, stream.stream)] = (stream.primary_key, pks)

    def matches(source: str, stream: str, record: dict[str, Any]) -> bool:
        key = keys.get((source, stream))
        if key and "|".join(str(record.get(c, "")) for c in key[0]) in key[1]:
            return True
        for value in record.values():
            if value is None:
                continue
            text = str(value).strip().lower()
            if text in emails or any(e in text for e in emails if "@" in text):
                return True
            if digits and sum(c.isdigit() for c in text) >= 7 and re.sub(r"\D", "", text) in digits:
                return True
        return False

    return matches


def audit_log(store: ProfileStore) -> list[dict[str, Any]]:
    store.engine.run(TABLES)
    return store.engine.rows("SELECT audit_id, audited_at, action, detail FROM tl_audit ORDER BY audited_at")


def state_dir_of(job_file: str | Path) -> Path:
    """The state folder (quarantine, run history) of a job file."""
    from threadline.job import load_job

    return load_job(str(job_file)).state_dir
