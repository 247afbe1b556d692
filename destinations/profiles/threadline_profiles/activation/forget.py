"""Erasure: `threadline forget --email ...` (`api.forget`) removes a person from the store for good.

What it does, in order:

1. finds the person's profile(s) and every record in them;
2. deletes those records from the landed tables (so no copy of their data stays in the store);
3. keeps a *tombstone* per identifier that only this person held: SHA-256 of
   ``<field>:<normalized value>``, never the value. Every later build drops records that carry
   a tombstoned identifier (and deletes them from the landed tables again), so a later sync
   cannot bring the person back;
4. (`api.forget`) rebuilds, so profiles, golden records, traits and audiences no longer hold them;
5. leaves their rows in each push ledger: those are the queued removals. The next push of
   every activation they were pushed to removes them from the platform (ledger rows hold
   hashed identifiers only) and then drops the rows;
6. writes an audit entry (`tl_audit`): when, how many profiles, records and tombstones, and
   which activations have a removal queued. No identifier is written anywhere.

An identifier the person shares with someone else who is not forgotten (a household email)
is not tombstoned: that would erase the other person too. Their records are still deleted.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from threadline_profiles.engines.base import lit
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
    "CREATE TABLE IF NOT EXISTS tl_audit (audit_id VARCHAR, audited_at TIMESTAMP, action VARCHAR, detail VARCHAR)",
]
_KINDS_SQL = ", ".join(lit(k) for k in sorted(IDENTIFIER_KINDS))


def tombstone_hash(field_name: str, match_key: str) -> str:
    return hashlib.sha256(f"{field_name}:{match_key}".encode()).hexdigest()


@dataclass
class ForgetResult:
    audit_id: str
    profiles: int = 0
    records: int = 0
    tombstones: int = 0
    shared_identifiers_kept: int = 0
    pending_removals: dict[str, int] = field(default_factory=dict)  # activation -> members queued for removal

    def summary(self) -> str:
        queued = ", ".join(f"{a} ({n})" for a, n in self.pending_removals.items()) or "none"
        return (f"forgot {self.profiles} profile(s), {self.records} record(s); {self.tombstones} identifier(s) "
                f"tombstoned so later syncs drop them; removal queued from: {queued}; audit id {self.audit_id}")


def erase(store: ProfileStore, *, email: str | None = None, phone: str | None = None, profile_id: str | None = None,
          region: str | None = None) -> ForgetResult:
    """Erase the person holding this email, phone or profile id (steps 1-3, 5 and 6 of the
    module docstring; `api.forget` also rebuilds)."""
    from threadline_profiles.resolve.lookup import LookupInputError, find_profile_ids

    engine = store.engine
    engine.run(TABLES)
    result = ForgetResult(audit_id="forget-" + uuid.uuid4().hex[:12])
    given: list[tuple[str, str]] = []  # (field, normalized value) asked for, tombstoned even with no profile yet
    if email:
        norm = normalize_email(email)
        if norm.status != "ok":
            raise LookupInputError(f"that email cannot be forgotten as given: {norm.reason}")
        given.append(("email", norm.key or norm.value))
    if phone:
        norm = normalize_phone(phone, (region or "").upper())
        if norm.status != "ok":
            raise LookupInputError(f"that phone cannot be forgotten as given: {norm.reason}")
        given.append(("phone", norm.key or norm.value))
    has_profiles = engine.table_exists("tl_members") and engine.table_exists("tl_record_values")
    ids = find_profile_ids(store, email=email, phone=phone, profile_id=profile_id, region=region) if has_profiles else []
    result.profiles = len(ids)
    in_ids = "(" + ", ".join(lit(i) for i in ids) + ")" if ids else "(NULL)"
    records = engine.rows(f"SELECT record_key, source, stream, pk FROM tl_members WHERE profile_id IN {in_ids}") if ids else []
    result.records = len(records)
    keys = [(r["field"], r["match_key"]) for r in engine.rows(
        f"SELECT DISTINCT v.field, v.match_key FROM tl_record_values AS v JOIN tl_members AS m ON m.record_key = v.record_key "
        f"WHERE m.profile_id IN {in_ids} AND v.status = 'ok' AND v.match_key IS NOT NULL AND v.kind IN ({_KINDS_SQL}) "
        f"AND NOT EXISTS (SELECT 1 FROM tl_record_values AS o JOIN tl_members AS om ON om.record_key = o.record_key "
        f"WHERE o.field = v.field AND o.match_key = v.match_key AND om.profile_id NOT IN {in_ids})"
    )] if ids else []
    if ids:
        result.shared_identifiers_kept = engine.scalar(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT v.field, v.match_key FROM tl_record_values AS v JOIN tl_members AS m "
            f"ON m.record_key = v.record_key WHERE m.profile_id IN {in_ids} AND v.status = 'ok' AND v.kind IN ({_KINDS_SQL})) AS t"
        ) - len(keys)
    hashes = sorted({tombstone_hash(f, k) for f, k in keys + given})
    result.tombstones = len(hashes)
    result.pending_removals = _pending_removals(store, ids)
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    detail = {k: v for k, v in asdict(result).items() if k != "audit_id"}
    with store.lock, engine.transaction():
        for stream in landed_streams(store):
            pks = [r["pk"] for r in records if r["source"] == stream.source and r["stream"] == stream.stream]
            for start in range(0, len(pks), 1000):
                chunk = ", ".join(lit(p) for p in pks[start:start + 1000])
                engine.execute(f"DELETE FROM {stream.table} WHERE _tl_key IN ({chunk})")
        if ids and engine.table_exists("tl_audience_members"):  # no trace of who they were in audience history
            engine.execute(f"DELETE FROM tl_audience_members WHERE profile_id IN {in_ids}")
        for start in range(0, len(hashes), 1000):
            engine.execute("INSERT INTO tl_tombstones VALUES " + ", ".join(
                f"({lit(h)}, NULL, CAST({lit(now)} AS TIMESTAMP), {lit(result.audit_id)})" for h in hashes[start:start + 1000]))
        engine.execute(f"INSERT INTO tl_audit VALUES ({lit(result.audit_id)}, CAST({lit(now)} AS TIMESTAMP), 'forget', "
                       f"{lit(json.dumps(detail, sort_keys=True))})")
    return result


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


def drop_tombstoned(engine: Engine, streams: list[LandedStream]) -> int:
    """Inside a build, after normalization: drop the records carrying a tombstoned identifier
    from the work tables and from the landed tables. Returns how many records were dropped."""
    if not engine.table_exists("tl_tombstones") or not engine.scalar("SELECT COUNT(*) FROM tl_tombstones"):
        return 0
    values = engine.query(f"SELECT DISTINCT field, match_key FROM tl_work_nv WHERE status = 'ok' "
                          f"AND match_key IS NOT NULL AND kind IN ({_KINDS_SQL})")
    tombstones = set(engine.query("SELECT hash FROM tl_tombstones").column(0).to_pylist())
    fields, keys = values.column("field").to_pylist(), values.column("match_key").to_pylist()
    hits = [(f, k) for f, k in zip(fields, keys) if tombstone_hash(f, k) in tombstones]
    if not hits:
        return 0
    engine.load_table("tl_work_tomb", pa.table({"field": [f for f, _ in hits], "match_key": [k for _, k in hits]}), temp=True)
    engine.run(["DROP TABLE IF EXISTS tl_work_tomb_rid",
                "CREATE TEMP TABLE tl_work_tomb_rid AS SELECT DISTINCT v.rid FROM tl_work_nv AS v "
                "JOIN tl_work_tomb AS t ON t.field = v.field AND t.match_key = v.match_key"])
    dropped = engine.scalar("SELECT COUNT(*) FROM tl_work_tomb_rid") or 0
    for stream in streams:
        engine.execute(
            f"DELETE FROM {stream.table} WHERE _tl_key IN (SELECT r.pk FROM tl_work_records AS r JOIN tl_work_tomb_rid AS d "
            f"ON d.rid = r.rid WHERE r.source = {lit(stream.source)} AND r.stream = {lit(stream.stream)})")
    for table in ("tl_work_values", "tl_work_nv", "tl_work_rec", "tl_work_records"):
        if engine.table_exists(table):
            engine.execute(f"DELETE FROM {table} WHERE rid IN (SELECT rid FROM tl_work_tomb_rid)")
    engine.run(["DROP TABLE IF EXISTS tl_work_tomb", "DROP TABLE IF EXISTS tl_work_tomb_rid"])
    return int(dropped)


def audit_log(store: ProfileStore) -> list[dict[str, Any]]:
    store.engine.run(TABLES)
    return store.engine.rows("SELECT audit_id, audited_at, action, detail FROM tl_audit ORDER BY audited_at")
