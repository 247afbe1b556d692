"""The publication and replication slots CDC reads through, and what can go wrong with them.

Each stream has its own logical slot (pgoutput), so streams read, land and acknowledge
independently; all of a source's tables share one publication. A slot is read with
`pg_logical_slot_peek_binary_changes` — it does not consume — and moved on with
`pg_replication_slot_advance` only once the destination has committed what was read (the
engine resumes the source after saving the checkpoint). A crash before that re-reads the
same changes; nothing is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from threadline.contracts import ConfigError, FatalError

from threadline_postgres.catalog import Table
from threadline_postgres.connect import connect
from threadline_postgres.sql import quote_ident, quote_literal

PROTOCOL_OPTIONS = "'proto_version', '1', 'publication_names', {publication}, 'messages', 'true'"


def lsn_text(value: int) -> str:
    """An LSN as Postgres writes it (XXXXXXXX/XXXXXXXX)."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class SlotInfo:
    name: str
    plugin: str
    database: str
    active: bool
    confirmed: int | None
    restart: int | None
    wal_status: str | None  # reserved, extended, unreserved, lost (Postgres 13+)


def check_server(con: psycopg.Connection) -> None:
    """Logical replication is possible here and this user may use it."""
    level = con.execute("show wal_level").fetchone()[0]
    if level != "logical":
        raise ConfigError(
            f"the server's wal_level is {level!r}; change data capture needs 'logical'", field="replication",
            hint="as a superuser: ALTER SYSTEM SET wal_level = logical; then restart Postgres "
                 "(on a managed service, turn on its logical replication setting)")
    me, allowed = con.execute("select rolname, rolreplication or rolsuper from pg_roles where rolname = current_user"
                              ).fetchone()
    if not allowed:
        raise ConfigError(f"user {me!r} may not use replication slots", field="replication",
                          hint=f"ALTER ROLE {quote_ident(me)} WITH REPLICATION;")


def ensure_publication(con: psycopg.Connection, name: str, tables: list[Table], create: bool) -> None:
    """The publication exists and publishes every table (inserts, updates, deletes, truncates)."""
    listed = {f"{s}.{t}" for s, t in con.execute(
        "select schemaname, tablename from pg_publication_tables where pubname = %s", (name,)).fetchall()}
    exists = con.execute("select puballtables from pg_publication where pubname = %s", (name,)).fetchone()
    if exists and exists[0]:
        return  # FOR ALL TABLES
    missing = [t for t in tables if f"{t.schema}.{t.name}" not in listed]
    if exists and not missing:
        return
    names = ", ".join(t.qualified for t in (missing if exists else tables))
    sql = (f"ALTER PUBLICATION {quote_ident(name)} ADD TABLE {names};" if exists else
           f"CREATE PUBLICATION {quote_ident(name)} FOR TABLE {names} WITH (publish_via_partition_root = true);")
    if not create:
        raise ConfigError(f"publication {name!r} does not publish {names}" if exists else
                          f"publication {name!r} does not exist", field="replication.publication",
                          hint=f"ask the tables' owner to run: {sql}  (or set replication.create_publication: true)")
    try:
        con.execute(sql)
    except psycopg.errors.InsufficientPrivilege as exc:
        me = con.execute("select current_user").fetchone()[0]
        raise ConfigError(f"user {me!r} cannot {'change' if exists else 'create'} publication {name!r}: "
                          f"{str(exc).strip().splitlines()[0]}", field="replication.publication",
                          hint=f"ask the tables' owner (or a superuser) to run: {sql}  — or give this user "
                               f"ownership of the tables and GRANT CREATE ON DATABASE "
                               f"{quote_ident(con.info.dbname)} TO {quote_ident(me)};") from None
    except psycopg.errors.DuplicateObject:
        pass  # another stream created it at the same moment


def slot(con: psycopg.Connection, name: str) -> SlotInfo | None:
    row = con.execute(
        "select slot_name, plugin, database, active, confirmed_flush_lsn::text, restart_lsn::text, wal_status "
        "from pg_replication_slots where slot_name = %s", (name,)).fetchone()
    if row is None:
        return None
    name_, plugin, db, active, confirmed, restart, status = row
    return SlotInfo(name_, plugin or "", db or "", active, lsn_int(confirmed) if confirmed else None,
                    lsn_int(restart) if restart else None, status)


def usable(con: psycopg.Connection, info: SlotInfo, stream: str) -> None:
    """A slot this stream may read: logical, pgoutput, this database, not lost, not in use."""
    db = con.info.dbname
    if info.plugin != "pgoutput" or info.database != db:
        raise ConfigError(f"replication slot {info.name!r} is not a pgoutput slot of database {db!r} "
                          f"(plugin {info.plugin or 'none'}, database {info.database or 'none'})",
                          field="replication.slot", hint="name another slot for this stream (`tables: [{table, slot}]` "
                                                         "or `replication.slot`)")
    if info.wal_status == "lost" or info.restart is None:
        raise SlotLost(info.name, stream, "was invalidated: the WAL it needed was removed "
                                          "(max_slot_wal_keep_size) before it was read")
    if info.active:
        raise FatalError(f"replication slot {info.name!r} is in use by another connection",
                         hint="another sync of this stream (or another consumer of the slot) is reading it; "
                              "wait for it, or give this stream a slot of its own")


class SlotLost(FatalError):
    """The stream's slot was dropped or invalidated: changes since the last checkpoint are
    gone, and only a new snapshot can make the destination whole again."""

    def __init__(self, slot_name: str, stream: str, what: str) -> None:
        super().__init__(
            f"replication slot {slot_name!r} of stream {stream!r} {what}; the changes since the last sync "
            "cannot be read any more",
            hint=f"take a new snapshot: `threadline state reset <job.yaml> --source <source> --stream {stream}` then "
                 f"sync again (a new slot is created and the table read in full){_drop_hint(slot_name, what)}. "
                 "Rows deleted at the source meanwhile stay in the destination unless you empty its table first",
        )


def _drop_hint(slot_name: str, what: str) -> str:
    if "dropped" in what:
        return ""
    return f"; drop the dead slot first: SELECT pg_drop_replication_slot({quote_literal(slot_name)});"


def create_slot(dsn: str, name: str, timeout: int) -> tuple[psycopg.Connection, int, str]:
    """Create a logical slot over a replication connection, exporting its snapshot. Returns the
    open connection (the snapshot lives only while it is idle and open), the slot's consistent
    point, and the snapshot's name to import with SET TRANSACTION SNAPSHOT."""
    rep = connect(dsn, timeout=timeout, replication=True, field="dsn")
    try:
        row = rep.execute(f"CREATE_REPLICATION_SLOT {quote_ident(name)} LOGICAL pgoutput EXPORT_SNAPSHOT").fetchone()
    except psycopg.errors.DuplicateObject:
        rep.close()
        raise
    except psycopg.Error as exc:
        rep.close()
        text = str(exc).strip().splitlines()[0]
        if "all replication slots are in use" in text:
            raise ConfigError(f"cannot create replication slot {name!r}: {text}", field="replication.slot",
                              hint="drop slots no longer used (SELECT slot_name, active FROM pg_replication_slots;) "
                                   "or raise max_replication_slots (ALTER SYSTEM SET max_replication_slots = 20; "
                                   "then restart)") from None
        raise FatalError(f"cannot create replication slot {name!r}: {text}") from None
    return rep, lsn_int(row[1]), row[2]


def heartbeat(con: psycopg.Connection) -> bool:
    """Write a transactional logical message, so that a slot whose tables are quiet still has a
    commit to move on to. False when this user may not (it is only an optimisation)."""
    try:
        con.execute("select pg_logical_emit_message(true, 'threadline', 'heartbeat')")
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def advance(con: psycopg.Connection, name: str, lsn: int) -> None:
    """Acknowledge everything up to `lsn` (the destination has committed it)."""
    current = slot(con, name)
    if current is not None and current.confirmed is not None and current.confirmed >= lsn:
        return
    con.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", (name, lsn_text(lsn)))


def peek_sql(name: str, publication: str, upto_lsn: int, max_changes: int) -> str:
    options = PROTOCOL_OPTIONS.format(publication=quote_literal(publication))
    return (f"select (lsn - '0/0'::pg_lsn)::int8 as lsn, data from pg_logical_slot_peek_binary_changes("
            f"{quote_literal(name)}, {quote_literal(lsn_text(upto_lsn))}::pg_lsn, {int(max_changes)}, {options})")


def lag_bytes(con: psycopg.Connection, lsn: int) -> int:
    """How far the server's WAL is ahead of `lsn`."""
    return int(con.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn_text(lsn),)).fetchone()[0])


def flush_lsn(con: psycopg.Connection) -> int:
    return lsn_int(con.execute("select pg_current_wal_flush_lsn()::text").fetchone()[0])
