"""Decode pgoutput (logical replication protocol, version 1) messages in bulk.

A page of the slot (`pg_logical_slot_peek_binary_changes`) arrives as Arrow: one binary
message per row. Decoding walks the tuples column by column with numpy over every change
message of the page at once — the byte offsets of column j in all rows are one vector — and
gathers each column's text values into an Arrow string array. No Python runs per row, except
for the rare Relation messages (one per table and schema change).

Message layout (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html):

    I  relid:u32  'N' tuple                      insert
    U  relid:u32  ['K'|'O' tuple]  'N' tuple     update (old key when it changed, old row with
                                                 REPLICA IDENTITY FULL)
    D  relid:u32  'K'|'O' tuple                  delete
    T  nrels:u32 flags:u8 relid:u32…             truncate
    R  relid:u32 namespace\\0 name\\0 ident:u8 ncols:u16 (flags:u8 name\\0 type:u32 typmod:i32)…
    tuple = ncols:u16 then per column 'n' (null) | 'u' (unchanged TOAST, not sent) | 't' len:u32 text
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from threadline.contracts import OPERATION_COLUMN, Operation

_I, _U, _D, _R, _C, _T = (ord(c) for c in "IUDRCT")
_K, _O, _N = ord("K"), ord("O"), ord("N")
_TEXT, _BINARY, _UNCHANGED = ord("t"), ord("b"), ord("u")


@dataclass(frozen=True)
class Relation:
    """A Relation message: a table's columns as the slot sends them from here on."""

    oid: int
    schema: str
    name: str
    columns: tuple[tuple[str, int, int], ...]  # (name, type oid, typmod)
    key_columns: tuple[str, ...]  # the replica identity's columns

    @property
    def names(self) -> list[str]:
        return [c[0] for c in self.columns]


@dataclass
class Segment:
    """The changes of one table between two Relation messages for it, in commit order."""

    relation: Relation | None  # None until the page (or an earlier one) described the table
    changes: pa.Table | None  # text columns + OPERATION_COLUMN; None when there were none
    # per column: rows whose unchanged out-of-line (TOAST) value the slot did not send
    unchanged: dict[str, pa.Array] = field(default_factory=dict)
    # lsn of the last commit before this segment's Relation message (a safe stop for a checkpoint)
    commit_before: int | None = None


@dataclass
class Page:
    """One decoded page: the table's segments and where the page's last commit ended."""

    segments: list[Segment] = field(default_factory=list)
    last_commit: int | None = None
    truncated_at: int | None = None  # lsn of a TRUNCATE of the table, if one came
    commit_before_truncate: int | None = None


def parse_relation(message: bytes) -> Relation:
    oid = struct.unpack_from(">I", message, 1)[0]
    pos = 5
    schema_end = message.index(b"\0", pos)
    schema = message[pos:schema_end].decode()
    name_end = message.index(b"\0", schema_end + 1)
    name = message[schema_end + 1:name_end].decode()
    pos = name_end + 2  # skip the replica identity setting
    (ncols,) = struct.unpack_from(">H", message, pos)
    pos += 2
    columns, keys = [], []
    for _ in range(ncols):
        flags = message[pos]
        end = message.index(b"\0", pos + 1)
        col = message[pos + 1:end].decode()
        typ, mod = struct.unpack_from(">Ii", message, end + 1)
        pos = end + 9
        columns.append((col, typ, mod))
        if flags & 1:
            keys.append(col)
    return Relation(oid, schema, name, tuple(columns), tuple(keys))


def decode(page: pa.Table, relid: int, relation: Relation | None) -> Page:
    """Decode a page (columns `lsn` int64 and `data` binary) keeping only table `relid`'s
    changes. `relation` is the table's last Relation message from an earlier page, if any."""
    data = page.column("data").combine_chunks()
    lsns = page.column("lsn").combine_chunks().to_numpy(zero_copy_only=False)
    starts, buf = _layout(data)
    kinds = buf[starts] if len(starts) else np.zeros(0, np.uint8)
    out = Page()
    commits = np.flatnonzero(kinds == _C)
    if len(commits):
        out.last_commit = int(lsns[commits[-1]])

    def commit_before(row: int) -> int | None:
        earlier = commits[commits < row]
        return int(lsns[earlier[-1]]) if len(earlier) else None

    relids = np.zeros(len(starts), np.int64)
    is_change = (kinds == _I) | (kinds == _U) | (kinds == _D) | (kinds == _R)
    if is_change.any():
        relids[is_change] = _be32(buf, starts[is_change] + 1)
    for row in np.flatnonzero(kinds == _T):  # rare: parse in Python
        msg = data[int(row)].as_py()
        (nrels,) = struct.unpack_from(">I", msg, 1)
        if relid in struct.unpack_from(f">{nrels}I", msg, 6):
            out.truncated_at, out.commit_before_truncate = int(lsns[row]), commit_before(int(row))
            kinds = kinds[:row]  # nothing after a truncate is decoded: the stream stops there
            break
    mine = relids[: len(kinds)] == relid
    boundaries = [int(r) for r in np.flatnonzero(mine & (kinds == _R))]
    edges = [0, *boundaries, len(kinds)]
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        if i > 0:
            relation = parse_relation(data[lo].as_py())
        rows = np.flatnonzero(mine[lo:hi] & (kinds[lo:hi] != _R)) + lo
        segment = Segment(relation, None, commit_before=commit_before(lo) if i > 0 else None)
        if len(rows):
            if relation is None:
                raise ValueError("the slot sent changes of a table before describing it (no Relation message)")
            segment.changes, segment.unchanged = _changes(buf, starts[rows], kinds[rows], len(relation.columns),
                                                                relation)
        out.segments.append(segment)
    return out


def _layout(data: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets of each message and the bytes they live in."""
    width = np.int64 if pa.types.is_large_binary(data.type) else np.int32
    offsets = np.frombuffer(data.buffers()[1], dtype=width)[data.offset: data.offset + len(data) + 1].astype(np.int64)
    values = data.buffers()[2]
    buf = np.frombuffer(values, dtype=np.uint8) if values is not None else np.zeros(0, np.uint8)
    return offsets[:-1], buf


def _be32(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    b = [buf[at + i].astype(np.int64) for i in range(4)]
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


@dataclass
class _Tuple:
    kinds: list[np.ndarray]  # per column: 'n', 'u', 't' per row
    starts: list[np.ndarray]
    lengths: list[np.ndarray]
    end: np.ndarray  # position after the tuple, per row


def _walk(buf: np.ndarray, pos: np.ndarray, ncols: int) -> _Tuple:
    """Walk tuples starting (at their ncols field) at `pos`, one column at a time."""
    pos = pos + 2
    kinds, starts, lengths = [], [], []
    for _ in range(ncols):
        kind = buf[pos]
        sent = (kind == _TEXT) | (kind == _BINARY)
        length = np.zeros(len(pos), np.int64)
        if sent.any():
            length[sent] = _be32(buf, pos[sent] + 1)
        kinds.append(kind)
        starts.append(pos + 5)
        lengths.append(length)
        pos = np.where(sent, pos + 5 + length, pos + 1)
    return _Tuple(kinds, starts, lengths, pos)


def _strings(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Gather the values (starts, lengths) into one Arrow string array; invalid rows are null."""
    lengths = np.where(valid, lengths, 0)
    offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    if total:
        index = np.repeat(starts - offsets[:-1], lengths) + np.arange(total)
        values = pa.py_buffer(buf[index].tobytes())
    else:
        values = pa.py_buffer(b"")
    large = total >= 2**31
    kind = pa.large_string() if large else pa.string()
    validity = pa.array(valid, pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(kind, len(starts), [validity, pa.py_buffer(offsets.astype(np.int64 if large else np.int32).tobytes()), values])


def _changes(buf: np.ndarray, starts: np.ndarray, kinds: np.ndarray, ncols: int,
             relation: Relation) -> tuple[pa.Table, dict[str, pa.Array]]:
    """The rows of one segment's change messages, in order, as text columns plus the operation.
    An update that changed the key becomes a delete of the old key followed by the new row.
    Also returns, per column, which rows hold an unchanged out-of-line (TOAST) value that the
    slot did not send (only columns where some row does)."""
    marker = buf[starts + 5]
    has_old = marker != _N
    names = relation.names
    parts: list[tuple[np.ndarray, _Tuple, pa.Array]] = []  # (order, tuple, operation per row)

    simple = (kinds != _U) | ~has_old  # inserts, deletes and updates without an old tuple
    if simple.any():
        rows = np.flatnonzero(simple)
        walked = _walk(buf, starts[rows] + 6, ncols)
        ops = np.where(kinds[rows] == _I, 0, np.where(kinds[rows] == _U, 1, 2)).astype(np.int32)
        parts.append((rows * 2 + 1, walked, pc.take(_OPERATIONS, pa.array(ops))))
    updated_with_old = (kinds == _U) & has_old
    if updated_with_old.any():
        rows = np.flatnonzero(updated_with_old)
        old = _walk(buf, starts[rows] + 6, ncols)
        new = _walk(buf, old.end + 1, ncols)
        for j in range(ncols):  # an unchanged out-of-line value: the old row (REPLICA IDENTITY FULL) has it
            fill = (new.kinds[j] == _UNCHANGED) & (old.kinds[j] == _TEXT)
            if fill.any():
                new.kinds[j] = np.where(fill, old.kinds[j], new.kinds[j])
                new.starts[j] = np.where(fill, old.starts[j], new.starts[j])
                new.lengths[j] = np.where(fill, old.lengths[j], new.lengths[j])
        parts.append((rows * 2 + 1, new, _repeat(Operation.UPDATE, len(rows))))
        key_changed = marker[rows] == _K  # a key-only old tuple is sent only when the key changed
        for name in relation.key_columns:
            j = names.index(name)
            old_values = _strings(buf, old.starts[j], old.lengths[j], old.kinds[j] == _TEXT)
            new_values = _strings(buf, new.starts[j], new.lengths[j], new.kinds[j] == _TEXT)
            key_changed |= ~pc.fill_null(pc.equal(old_values, new_values), False).to_numpy(zero_copy_only=False)
        if key_changed.any():
            moved = np.flatnonzero(key_changed)
            parts.append((rows[moved] * 2, _take(old, moved), _repeat(Operation.DELETE, len(moved))))

    tables = []
    toasted = {j for _, tup, _ in parts for j in range(ncols) if (tup.kinds[j] == _UNCHANGED).any()}
    for order, tup, ops in parts:
        columns = {name: _strings(buf, tup.starts[j], tup.lengths[j], tup.kinds[j] == _TEXT)
                   for j, name in enumerate(names)}
        columns[OPERATION_COLUMN] = ops
        for j in toasted:
            columns[f"__unchanged {names[j]}"] = pa.array(tup.kinds[j] == _UNCHANGED)
        columns["__order"] = pa.array(order, pa.int64())
        tables.append(pa.table(columns))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    table = table.take(pc.sort_indices(table.column("__order")))
    unchanged = {names[j]: table.column(f"__unchanged {names[j]}").combine_chunks() for j in toasted}
    return table.select([*names, OPERATION_COLUMN]), unchanged


_OPERATIONS = pa.array([Operation.INSERT.value, Operation.UPDATE.value, Operation.DELETE.value])


def _repeat(op: Operation, n: int) -> pa.Array:
    return pc.take(_OPERATIONS, pa.array(np.full(n, [*Operation].index(op), np.int32)))


def _take(t: _Tuple, rows: np.ndarray) -> _Tuple:
    return _Tuple([k[rows] for k in t.kinds], [s[rows] for s in t.starts], [n[rows] for n in t.lengths], t.end[rows])
