"""Encryption at rest of a Postgres profile store: sealed tables.

Postgres has no transparent data encryption, so an encrypted Postgres store keeps none of its
tables in clear in its schema. Each store table is *sealed*: its rows, in Postgres' binary
COPY format, cut into chunks of a few megabytes, each chunk AES-256-GCM encrypted on the
client (the `cryptography` package) and kept as `bytea` in `tl_sealed_chunks`; `tl_sealed`
lists the tables, their column definitions (names and types, no values), an id that stays
with a table through renames and a random generation that changes with every write. The key never reaches the server: no statement carries it, so no
server log, `pg_stat_activity` or `pg_stat_statements` can show it.

A session works on plaintext only in its own TEMP tables: the first statement that names a
sealed table brings it into a TEMP table of the same name (Postgres looks in the session's
temporary schema first, so the stages' SQL runs unchanged), a stage's `CREATE TABLE` makes a
TEMP table because the session's `search_path` starts with `pg_temp` (`SEARCH_PATH`: Postgres
creates an unqualified table in the first schema of the path, and a table made in the
temporary schema is temporary; no statement is rewritten), and when a statement (outside a
transaction) or a transaction that wrote to a store table commits, the changed tables are
sealed again in the same transaction. A stage's work tables (`base.work_table`, declared
TEMPORARY for Postgres) are the session's own and never sealed. Writers
of one table take its `tl_sealed` row lock first and start from its newest generation; a
reader brings a table in again when its generation moved.

Why not fields (AES-GCM values with HMAC match keys): resolution compares identifiers in SQL
(fuzzy email comparison, name similarity, incremental equality), which tokens cannot do; an
earlier attempt broke exactly these. Sealing whole tables leaves every stage as it is, covers
every table (work outputs, ledgers, the audit log) and needs nothing on the server (pgcrypto
would put the key into the SQL text).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlglot
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlglot import exp
from threadline.state import fsync_folder

from threadline_profiles.engines.store_keys import (
    ENV, NEW_ENV, StoreKey, StoreKeyError, fallback, find_key, key_file, key_from_env, next_key_file, where_looked,
    write_key_file,
)

logger = logging.getLogger(__name__)

CATALOG = "tl_sealed"  # name -> id, columns, generation, rows
CHUNKS = "tl_sealed_chunks"  # id, seq -> nonce + AES-GCM ciphertext of a piece of the binary COPY
KEY_CHECK = "tl_sealed_key"  # one row: a keyed digest that tells the store's key from another
CHUNK_BYTES = 4 << 20
FORMAT = "threadline sealed table v1"



def catalog_ddl(schema: str) -> list[str]:
    """The encrypted store's own tables, in `schema` (quoted)."""
    return [
        f"CREATE TABLE {schema}.{CATALOG} (name TEXT PRIMARY KEY, id BIGINT NOT NULL, columns TEXT NOT NULL, "
        "column_names TEXT[] NOT NULL, generation BIGINT NOT NULL, rows BIGINT)",
        f"CREATE TABLE {schema}.{CHUNKS} (id BIGINT NOT NULL, seq INTEGER NOT NULL, chunk BYTEA NOT NULL, PRIMARY KEY (id, seq))",
        f"CREATE TABLE {schema}.{KEY_CHECK} (format TEXT NOT NULL, check_digest TEXT NOT NULL)",
    ]


OWN_TABLES = frozenset({CATALOG, CHUNKS, KEY_CHECK})


class Cipher:
    """AES-256-GCM under a key derived from the store key; each chunk's place (the table's id,
    its seq) is bound in as associated data, so chunks cannot be moved between tables or
    reordered. The id stays with a table through renames: a rename re-encrypts nothing."""

    def __init__(self, key: StoreKey) -> None:
        self.key = key
        self._aes = AESGCM(hashlib.sha256(b"threadline postgres sealed tables\x00" + key.value.encode()).digest())
        self.check = hmac.new(key.value.encode(), FORMAT.encode(), hashlib.sha256).hexdigest()

    def seal(self, data: bytes, table_id: int, seq: int) -> bytes:
        nonce = os.urandom(12)  # random 96-bit nonces: far below the collision bound at chunk counts
        return nonce + self._aes.encrypt(nonce, data, f"{table_id}:{seq}".encode())

    def open(self, chunk: bytes, table_id: int, seq: int) -> bytes:
        return self._aes.decrypt(chunk[:12], chunk[12:], f"{table_id}:{seq}".encode())


# ---------------------------------------------------------------- what a statement touches


@dataclass(frozen=True)
class Touches:
    """The tables one statement (Postgres dialect) names, writes and drops."""

    names: frozenset[str] = frozenset()  # unqualified table names (CTE names too: harmless)
    writes: frozenset[str] = frozenset()
    drops: frozenset[str] = frozenset()
    renamed: tuple[str, str] | None = None  # (old, new)
    creates: str | None = None  # a CREATE TABLE without TEMP: a sealed table (made in pg_temp: `search_path`)
    creates_temp: str | None = None  # a stage's own work table
    if_not_exists: bool = False
    alters: bool = False  # ALTER TABLE other than a rename (often a no-op ADD COLUMN IF NOT EXISTS)


def _table_name(node: Any) -> str | None:
    while isinstance(node, exp.Schema):
        node = node.this
    return node.name if isinstance(node, exp.Table) and node.name and not node.db else None


def _names(nodes: Any) -> frozenset[str]:
    return frozenset(n for n in (_table_name(e) for e in nodes or []) if n)


def search_path(schema: str) -> str:
    """The `search_path` of a session on an encrypted store: its temporary schema first, so that
    every table it creates without a schema is a TEMP table (sealed at the commit), then the
    store's schema (the sealed catalog, and functions: Postgres never looks in pg_temp for those)."""
    return f"pg_temp, {_ident(schema)}"


def _temporary(tree: exp.Expression) -> bool:
    props = tree.args.get("properties")
    return props is not None and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions)


@lru_cache(maxsize=4096)
def touches(sql: str) -> Touches:
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except sqlglot.errors.ParseError:
        return Touches()
    names = frozenset(t.name for t in tree.find_all(exp.Table) if t.name and not t.db)
    target = _table_name(tree.this)
    kind = str(tree.args.get("kind") or "").upper()
    if isinstance(tree, exp.Create) and kind == "TABLE" and target:
        if _temporary(tree):
            return Touches(names, creates_temp=target)
        return Touches(names, writes=frozenset({target}), creates=target, if_not_exists=bool(tree.args.get("exists")))
    if isinstance(tree, (exp.Insert, exp.Update, exp.Delete)) and target:
        return Touches(names, writes=frozenset({target}))
    if isinstance(tree, exp.Drop) and kind == "TABLE":
        return Touches(names, drops=_names(tree.args.get("tables") or tree.expressions or [tree.this]))
    if isinstance(tree, exp.TruncateTable):
        return Touches(names, writes=_names(tree.expressions))
    if type(tree).__name__ in ("Alter", "AlterTable") and target:
        for action in tree.args.get("actions") or []:
            if type(action).__name__ in ("AlterRename", "RenameTable") and _table_name(action.this):
                return Touches(names, renamed=(target, _table_name(action.this) or ""))
        return Touches(names, writes=frozenset({target}), alters=True)
    return Touches(names)


# ---------------------------------------------------------------- the session's sealed tables


@dataclass
class _State:
    loaded: dict[str, int] = field(default_factory=dict)  # table -> generation of its TEMP copy (-1: new here)
    dirty: set[str] = field(default_factory=set)  # written since the last seal
    dropped: set[str] = field(default_factory=set)  # dropped here, to leave the catalog at the next seal
    renamed: set[str] = field(default_factory=set)  # new names of renames, in the catalog at the next seal
    ops: list[tuple[str, ...]] = field(default_factory=list)  # ("drop", name) / ("rename", old, new), in order

    def copy(self) -> _State:
        return _State(dict(self.loaded), set(self.dirty), set(self.dropped), set(self.renamed), list(self.ops))


class SealedTables:
    """One Postgres session's view of an encrypted store's tables (see the module's docstring).
    `run(sql, native)` runs one statement through `native(sql)`, bringing in what it reads and
    sealing what it changed."""

    def __init__(self, con: Any, cipher: Cipher) -> None:
        self.con = con
        self.cipher = cipher
        self.state = _State()
        self.work: set[str] = set()  # TEMP tables the stages made themselves: never sealed
        self.in_transaction = False
        self._saved = _State()
        self._saved_work: set[str] = set()

    # -------------------------------------------------------------- statements

    def run(self, sql: str, native: Callable[[str], Any]) -> Any:
        t = touches(sql)
        if t.creates_temp:
            self.work.add(t.creates_temp)
        store_names = t.names - self.work - OWN_TABLES
        if not store_names:
            return native(sql)
        catalog = self._catalog(store_names)
        if t.creates and t.if_not_exists and (t.creates in catalog or t.creates in self.state.loaded):
            return None  # the store has it: nothing to create, nothing to bring in yet
        writes = (t.writes | t.drops | set(t.renamed or ())) - self.work - OWN_TABLES
        own = bool(writes) and not self.in_transaction
        if own:
            self.begin()
            native("BEGIN")
        try:
            if writes & set(catalog):
                self._lock(writes & set(catalog))  # one writer per table; then start from its newest generation
                catalog = self._catalog(store_names)
            for name in sorted(store_names):
                if name in t.drops or name in self.state.dirty or name in self.state.dropped or name in self.state.renamed:
                    continue
                if name in catalog and self.state.loaded.get(name) != catalog[name]:
                    self._bring_in(name)
                elif name not in catalog and self.state.loaded.get(name, -1) != -1:  # dropped by another session
                    self.con.execute(f"DROP TABLE IF EXISTS pg_temp.{_ident(name)}")
                    del self.state.loaded[name]
            before = columns_of(self.con, next(iter(t.writes))) if t.alters else None
            cur = native(sql)
            self._after(t, cur, before)
            if own:
                self.seal_changes()
                native("COMMIT")
                self.after_end(committed=True)
            return cur
        except BaseException:
            if own:
                try:
                    self.con.execute("ROLLBACK")
                finally:
                    self.after_end(committed=False)
            raise

    def _after(self, t: Touches, cur: Any, before: str | None) -> None:
        """Note what the statement just run changed."""
        changed = True
        if t.alters:
            changed = columns_of(self.con, next(iter(t.writes))) != before  # ADD COLUMN IF NOT EXISTS, already there
        elif t.writes and not t.creates and cur is not None and cur.rowcount == 0:
            changed = False  # an INSERT, UPDATE or DELETE of no row
        if changed:
            for name in t.writes - self.work:
                self._mark_written(name)
        for name in t.drops:
            if name in self.work:
                self.work.discard(name)
            else:
                self._mark_dropped(name)
        if t.renamed:
            old, new = t.renamed
            if old in self.work:
                self.work.discard(old)
                self.work.add(new)
            else:
                self._mark_renamed(old, new)

    def _mark_written(self, name: str) -> None:
        self.state.dirty.add(name)
        self.state.dropped.discard(name)
        self.state.loaded.setdefault(name, -1)

    def _mark_dropped(self, name: str) -> None:
        st = self.state
        st.dirty.discard(name)
        st.renamed.discard(name)
        st.loaded.pop(name, None)
        st.dropped.add(name)
        st.ops.append(("drop", name))

    def _mark_renamed(self, old: str, new: str) -> None:
        """The sealed rows move with the name (no re-encryption); changes not sealed yet follow."""
        st = self.state
        st.loaded[new] = st.loaded.pop(old, -1)
        if old in st.dirty or old in st.renamed:
            st.dirty.discard(old)
            st.dirty.add(new)
        st.renamed.discard(old)
        st.renamed.add(new)
        st.dropped.discard(new)
        st.dropped.add(old)
        st.ops.append(("rename", old, new))

    # -------------------------------------------------------------- transactions

    def begin(self) -> None:
        self.in_transaction = True
        self._saved = self.state.copy()
        self._saved_work = set(self.work)

    def after_end(self, committed: bool) -> None:
        self.in_transaction = False
        if not committed:  # Postgres rolled the TEMP tables back with everything else
            self.state = self._saved
            self.work = self._saved_work

    def table_columns(self, name: str) -> list[str] | None:
        """The columns of store table `name` as this session sees it; None when it is not a
        store table (the caller looks in the schema, as for a plain store)."""
        if name in self.work:
            return None  # a work table is not the store's (a plain store's lookup does not see it either)
        if name in self.state.dirty or name in self.state.renamed:
            return _columns(self.con, f"pg_temp.{_ident(name)}")[1]
        if name in self.state.dropped:
            return []
        row = self.con.execute(f"SELECT column_names, generation FROM {CATALOG} WHERE name = %s", [name]).fetchone()
        if row is None:
            return [] if name in OWN_TABLES else None
        if self.state.loaded.get(name) == row[1]:
            return _columns(self.con, f"pg_temp.{_ident(name)}")[1]
        return list(row[0])

    # -------------------------------------------------------------- sealing

    def _catalog(self, names: set[str] | frozenset[str]) -> dict[str, int]:
        rows = self.con.execute(f"SELECT name, generation FROM {CATALOG} WHERE name = ANY(%s)", [list(names)]).fetchall()
        return {r[0]: r[1] for r in rows}

    def _lock(self, names: set[str]) -> None:
        if names:
            self.con.execute(f"SELECT name FROM {CATALOG} WHERE name = ANY(%s) ORDER BY name FOR UPDATE", [sorted(names)])

    def _bring_in(self, name: str) -> None:
        """The sealed table `name` as a TEMP table of the same name, at its newest generation."""
        row = self.con.execute(f"SELECT columns, generation, id FROM {CATALOG} WHERE name = %s", [name]).fetchone()
        if row is None:
            return
        columns, generation, table_id = row
        ident = _ident(name)
        self.con.execute(f"DROP TABLE IF EXISTS pg_temp.{ident}")
        self.con.execute(f"CREATE TEMPORARY TABLE {ident} ({columns})")
        chunks = self.con.cursor().execute(f"SELECT seq, chunk FROM {CHUNKS} WHERE id = %s ORDER BY seq", [table_id])
        with self.con.cursor().copy(f"COPY pg_temp.{ident} FROM STDIN (FORMAT binary)") as copy:
            for seq, chunk in chunks:
                copy.write(self.cipher.open(bytes(chunk), table_id, seq))
        self.con.execute(f"ANALYZE pg_temp.{ident}")  # TEMP tables get no autovacuum statistics
        self.state.loaded[name] = generation

    def seal_changes(self) -> None:
        """Apply the drops and renames, in order, and seal every table written since the last
        seal, in the current transaction."""
        st = self.state
        for op in st.ops:
            forget(self.con, op[-1])  # a drop, or what a rename replaces
            if op[0] == "rename":
                self.con.execute(f"UPDATE {CATALOG} SET name = %s WHERE name = %s", [op[2], op[1]])
        for name in sorted(st.dirty):
            st.loaded[name] = seal_table(self.con, self.cipher, name)
        st.ops.clear()
        st.dropped.clear()
        st.renamed.clear()
        st.dirty.clear()


def forget(con: Any, name: str) -> None:
    """Drop the sealed table `name` (when there is one)."""
    row = con.execute(f"DELETE FROM {CATALOG} WHERE name = %s RETURNING id", [name]).fetchone()
    if row is not None:
        con.execute(f"DELETE FROM {CHUNKS} WHERE id = %s", [row[0]])


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns_of(con: Any, relation: str) -> str:
    """The column definitions of a table (`a text, b bigint`), names and types only."""
    return _columns(con, relation)[0]


def _columns(con: Any, relation: str) -> tuple[str, list[str]]:
    row = con.execute(
        "SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum), "
        "array_agg(attname::text ORDER BY attnum) "
        "FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", [relation]).fetchone()
    return row[0] or "", list(row[1] or [])


def seal_table(con: Any, cipher: Cipher, name: str, relation: str | None = None) -> int:
    """Encrypt the rows of `relation` (default: the session's TEMP table `name`) into the
    sealed table `name`, replacing its chunks; returns its new generation."""
    relation = relation or f"pg_temp.{_ident(name)}"
    found = con.execute(f"SELECT id FROM {CATALOG} WHERE name = %s", [name]).fetchone()
    table_id = found[0] if found else new_generation()
    con.execute(f"DELETE FROM {CHUNKS} WHERE id = %s", [table_id])
    pending, size, seq, rows = [], 0, 0, []
    with con.cursor().copy(f"COPY {relation} TO STDOUT (FORMAT binary)") as copy:
        for data in copy:
            pending.append(bytes(data))
            size += len(data)
            if size >= CHUNK_BYTES:
                rows.append((table_id, seq, cipher.seal(b"".join(pending), table_id, seq)))
                pending, size, seq = [], 0, seq + 1
    if pending:
        rows.append((table_id, seq, cipher.seal(b"".join(pending), table_id, seq)))
    with con.cursor() as cur:
        cur.executemany(f"INSERT INTO {CHUNKS} (id, seq, chunk) VALUES (%s, %s, %s)", rows)
    count = con.execute(f"SELECT COUNT(*) FROM {relation}").fetchone()[0]
    ddl, names = _columns(con, relation)
    # A new random generation (not a counter): a table dropped and made again under its name
    # never repeats one that another session holds a copy of.
    generation = new_generation()
    if found:
        con.execute(f"UPDATE {CATALOG} SET columns = %s, column_names = %s, rows = %s, generation = %s WHERE id = %s",
                    [ddl, names, count, generation, table_id])
    else:
        con.execute(f"INSERT INTO {CATALOG} (name, id, columns, column_names, generation, rows) "
                    "VALUES (%s, %s, %s, %s, %s, %s)", [name, table_id, ddl, names, generation, count])
    return generation


def new_generation() -> int:
    return random.randbits(62) + 1


# ---------------------------------------------------------------- keys and opening


def key_base(key: Path | None, dbname: str, schema: str) -> Path:
    """The stand-in path `store_keys` derives the key file names from (`<base>.key`,
    `<base>.key.next`), for the key file `key` (default: `<database>.<schema>.key` here)."""
    if key is None:
        return Path.cwd() / f"{dbname}.{schema}"
    return key.with_name(key.name.removesuffix(".key"))


def is_sealed(con: Any, schema: str) -> bool:
    return con.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{_ident(schema)}.{KEY_CHECK}"]).fetchone()[0]


def store_tables(con: Any, schema: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                                      [schema]).fetchall()]


def open_sealed(con: Any, schema: str, base: Path) -> Cipher:
    """The cipher of an existing encrypted store: its key from the environment or key file (or
    an interrupted rotation's next key), checked against the store. A missing or wrong key is
    an error naming where it was looked for; nothing is created."""
    stored = con.execute(f"SELECT check_digest FROM {_ident(schema)}.{KEY_CHECK}").fetchone()
    primary = find_key(base)
    candidates = [k for k in (primary, fallback(base, primary)) if k is not None]
    if not candidates:
        raise StoreKeyError(
            f"the Postgres profile store (schema {schema}) is encrypted and its key was not found "
            f"(looked for {where_looked(base)})",
            hint=f"set ${ENV} to the store's key, or put its key file back; nothing was opened or created")
    for key in candidates:
        cipher = Cipher(key)
        if stored and hmac.compare_digest(stored[0], cipher.check):
            if key.where == str(next_key_file(base)):  # a rotation committed but stopped before its file swap
                os.replace(next_key_file(base), key_file(base))
                fsync_folder(base.parent)
                logger.warning("finished an interrupted key rotation of schema %s: its key is now %s", schema, key_file(base))
                cipher = Cipher(StoreKey(key.value, str(key_file(base))))
            return cipher
    raise StoreKeyError(
        f"the key from {candidates[0].where} does not open the Postgres profile store (schema {schema}; wrong key)",
        hint=f"use the key this store was encrypted with ({where_looked(base)}); nothing was opened or created")


def create_sealed(con: Any, schema: str, base: Path, key: StoreKey | None = None) -> Cipher:
    """Make `schema` an encrypted store (its catalog tables and key check), with the key from
    the environment or a new key file. The schema holds no store tables yet."""
    key = key or find_key(base) or write_key_file(key_file(base))
    cipher = Cipher(key)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
    with con.transaction():
        for ddl in catalog_ddl(_ident(schema)):
            con.execute(ddl)
        con.execute(f"INSERT INTO {_ident(schema)}.{KEY_CHECK} VALUES (%s, %s)", [FORMAT, cipher.check])
    return cipher


# ---------------------------------------------------------------- rotation


def rotate(con: Any, schema: str, base: Path, current: Cipher | None, decrypt: bool = False) -> str:
    """Re-encrypt every chunk under a new key (or, with `decrypt`, turn the sealed tables back
    into plain ones; or, for a plain store, seal every table), in one transaction. The new key
    waits in `<base>.key.next` until the transaction has committed, so a crash at any point
    leaves a store that opens: the old chunks with the old key, or the new ones with the next
    key (`open_sealed` then finishes the swap)."""
    ident = _ident(schema)
    con.execute(f"SET search_path TO {ident}")
    next_file = next_key_file(base)
    new: Cipher | None = None
    if not decrypt:
        env_key = key_from_env(ENV)
        if env_key is not None and current is not None:
            nxt = key_from_env(NEW_ENV)
            if nxt is None:
                raise StoreKeyError(f"the store's key comes from ${ENV}; give the new one in ${NEW_ENV}",
                                    hint=f"after the rotation, set ${ENV} to it (and unset ${NEW_ENV})")
            new = Cipher(nxt)
        elif env_key is not None:
            new = Cipher(env_key)
        else:
            next_file.unlink(missing_ok=True)
            new = Cipher(write_key_file(next_file))
    with con.transaction():
        if current is not None:
            con.execute(f"LOCK TABLE {CATALOG} IN EXCLUSIVE MODE")
            names = [r[0] for r in con.execute(f"SELECT name FROM {CATALOG} ORDER BY name").fetchall()]
            if new is not None:
                chunks = con.execute(f"SELECT id, seq, chunk FROM {CHUNKS} ORDER BY id, seq").fetchall()
                con.execute(f"DELETE FROM {CHUNKS}")
                with con.cursor() as cur:
                    cur.executemany(f"INSERT INTO {CHUNKS} (id, seq, chunk) VALUES (%s, %s, %s)",
                                    [(i, s, new.seal(current.open(bytes(c), i, s), i, s)) for i, s, c in chunks])
                for name in names:
                    con.execute(f"UPDATE {CATALOG} SET generation = %s WHERE name = %s", [new_generation(), name])
                con.execute(f"UPDATE {KEY_CHECK} SET check_digest = %s", [new.check])
            else:
                tables = SealedTables(con, current)
                for name in names:
                    tables._bring_in(name)
                    con.execute(f"CREATE TABLE {ident}.{_ident(name)} AS SELECT * FROM pg_temp.{_ident(name)}")
                    con.execute(f"DROP TABLE pg_temp.{_ident(name)}")
                for table in (CHUNKS, CATALOG, KEY_CHECK):
                    con.execute(f"DROP TABLE {ident}.{table}")
        else:
            assert new is not None
            plain = [t for t in store_tables(con, schema) if t not in OWN_TABLES]
            for ddl in catalog_ddl(ident):
                con.execute(ddl)
            con.execute(f"INSERT INTO {ident}.{KEY_CHECK} VALUES (%s, %s)", [FORMAT, new.check])
            for name in plain:
                seal_table(con, new, name, relation=f"{ident}.{_ident(name)}")
                con.execute(f"DROP TABLE {ident}.{_ident(name)}")
    if decrypt:
        if current is not None and current.key.where == str(key_file(base)):
            key_file(base).unlink(missing_ok=True)
        return f"schema {schema} decrypted: its tables are stored unencrypted now"
    assert new is not None
    verb = "encrypted" if current is None else "re-encrypted"
    if new.key.where == str(next_file):
        os.replace(next_file, key_file(base))
        fsync_folder(base.parent)
        return f"schema {schema} {verb}; its key is in {key_file(base)}" + (" (the old key no longer opens it)" if current else "")
    if current is None:
        return f"schema {schema} encrypted with the key in ${ENV}"
    return f"schema {schema} re-encrypted with the key in ${NEW_ENV}: set ${ENV} to it now (the old key no longer opens it)"
