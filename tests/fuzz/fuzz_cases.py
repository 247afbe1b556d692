"""Seeded generators of broken inputs for the fuzz test: mutated job files and malformed data
files. Each case is a folder holding `job.yaml` and `in/` with the data; nothing in a case
points outside its folder's parent, so a run can only write under the test's tmp folder."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BASE_JOB = """\
name: fuzz
sources:
  shop:
    connector: files
    config:
      streams:
        - name: orders
          path: in/*.{ext}
          primary_key: [order_id]
          columns:
            placed_at: {{type: timestamp}}
            amount: {{type: float64}}
    streams:
      orders: {{sync_mode: incremental, write: upsert}}
destinations:
  db:
    connector: duckdb
    config: {{path: out.duckdb}}
max_rejected_share: 0.5
concurrency: 2
"""

GOOD_ROWS = [{"order_id": i, "placed_at": f"2024-01-{i % 28 + 1:02d}T10:00:00Z", "amount": i * 1.5,
              "email": f"c{i}@example.com"} for i in range(1, 41)]

STRANGE_VALUES = [
    "", " ", "../x", "../../y", ".hidden", "a/b", "x\n", "é", "🙂", "a" * 5000, "${UNSET_FUZZ_VAR}", "${UNSET_FUZZ_VAR:-}",
    "${BROKEN", "$BARE_VAR", "${1BAD}", "$$", "true", "null", "~", "1e309", "-1", "0", "99999999999999999999999",
    "[", "{", "*nope", "&anchor", "!!binary AAAA", "!!python/object:os.system", "NaN", ".inf", "2020-13-45",
    "decimal(99,99)", "timestamp(tz=Mars/Olympus)", "list<list<list<x>>>", "\t", "\\x00", "''", '"', "- a\n- b",
]
STRANGE_NODES = [
    [], {}, None, 0, -5, 10**30, 1.5, True, "x", [[[[[[[]]]]]]], {"a": {"b": {"c": {}}}}, ["a"] * 50,
    {"unknown_key": 1}, {"connector": "files"}, {"connector": "no_such"}, [None, None],
]


def mutated_job(rng: random.Random) -> bytes:
    """A job file broken one of many ways: at the byte level, the YAML level or the value level."""
    text = BASE_JOB.format(ext="csv")
    kind = rng.randrange(9)
    if kind == 0:  # bytes flipped, inserted or cut
        data = bytearray(text.encode())
        for _ in range(rng.randrange(1, 6)):
            pos = rng.randrange(len(data))
            action = rng.randrange(3)
            if action == 0:
                data[pos] = rng.randrange(256)
            elif action == 1:
                data.insert(pos, rng.choice([0, 7, 27, 0xFF, 0xC3, ord("\t"), ord(":"), ord("-"), ord("{"), ord("[")]))
            else:
                del data[pos: pos + rng.randrange(1, 30)]
        return bytes(data)
    if kind == 1:  # truncated
        return text.encode()[: rng.randrange(len(text))]
    if kind == 2:  # lines shuffled, doubled or dropped
        lines = text.splitlines()
        for _ in range(rng.randrange(1, 4)):
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            choice = rng.randrange(3)
            if choice == 0:
                lines[i], lines[j] = lines[j], lines[i]
            elif choice == 1:
                lines.insert(i, lines[j])
            else:
                del lines[i]
                if not lines:
                    break
        return ("\n".join(lines) + "\n").encode()
    if kind == 3:  # a scalar replaced by something strange
        lines = text.splitlines()
        candidates = [i for i, line in enumerate(lines) if ": " in line and not line.rstrip().endswith(":")]
        i = rng.choice(candidates)
        key = lines[i].split(": ", 1)[0]
        value = rng.choice(STRANGE_VALUES)
        lines[i] = f"{key}: {json.dumps(value) if rng.random() < 0.5 else value}"
        return ("\n".join(lines) + "\n").encode("utf-8", errors="replace")
    if kind == 4:  # a whole subtree replaced by a strange node (as JSON, which is YAML)
        import yaml

        data = yaml.safe_load(text)
        path = rng.choice([("name",), ("sources",), ("sources", "shop"), ("sources", "shop", "config"),
                           ("sources", "shop", "config", "streams"), ("sources", "shop", "streams"),
                           ("destinations",), ("destinations", "db", "config"), ("max_rejected_share",),
                           ("concurrency",), ("sources", "shop", "config", "streams", 0, "columns")])
        node = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = rng.choice(STRANGE_NODES)
        return json.dumps(data).encode()
    if kind == 5:  # deep nesting, in flow or block style
        depth = rng.choice([65, 500, 5000])
        nested = "[" * depth + "]" * depth if rng.random() < 0.5 else "{a: " * depth + "1" + "}" * depth
        return (text + f"extra: {nested}\n").encode()
    if kind == 6:  # an alias bomb, or aliases used legitimately
        if rng.random() < 0.5:
            levels = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
            levels += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, rng.randrange(5, 10))]
            return (text + "\n".join(levels) + "\n").encode()
        return text.replace("max_rejected_share: 0.5", "x-share: &share 0.5\nmax_rejected_share: *share").encode()
    if kind == 7:  # a control character, NUL or another encoding
        choice = rng.randrange(3)
        if choice == 0:
            pos = rng.randrange(len(text))
            return (text[:pos] + rng.choice(["\x00", "\x01", "\x1b", "\x7f", "\ufeff", "\u2028"]) + text[pos:]).encode()
        if choice == 1:
            return text.encode(rng.choice(["utf-16", "utf-32", "latin-1"]))
        return b"\xef\xbb\xbf" + text.encode()
    # names that would become paths: sources, streams, tables, the job itself
    name = rng.choice(["../../escape", "a/b", ".hidden", "x\n", "", "con", "a" * 300, "ok_name", "name with space"])
    where = rng.randrange(4)
    if where == 0:
        return text.replace("name: fuzz", f"name: {json.dumps(name)}").encode()
    if where == 1:
        return text.replace("  shop:\n", f"  {json.dumps(name)}:\n").encode()
    if where == 2:
        return text.replace("{sync_mode: incremental, write: upsert}", f"{{table: {json.dumps(name)}}}").encode()
    return text.replace("- name: orders", f"- name: {json.dumps(name)}").encode()


def good_csv() -> bytes:
    lines = ["order_id,placed_at,amount,email"] + [f"{r['order_id']},{r['placed_at']},{r['amount']},{r['email']}" for r in GOOD_ROWS]
    return ("\n".join(lines) + "\n").encode()


def good_jsonl() -> bytes:
    return "".join(json.dumps(r) + "\n" for r in GOOD_ROWS).encode()


def good_parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(GOOD_ROWS), sink)
    return sink.getvalue()


def malformed_data(rng: random.Random) -> tuple[str, bytes]:
    """(extension, bytes) of a data file broken one of many ways."""
    ext = rng.choice(["csv", "csv", "jsonl", "jsonl", "parquet"])
    data = {"csv": good_csv, "jsonl": good_jsonl, "parquet": good_parquet}[ext]()
    kind = rng.randrange(12)
    if kind == 0:  # random bytes flipped
        buf = bytearray(data)
        for _ in range(rng.randrange(1, 40)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return ext, bytes(buf)
    if kind == 1:  # truncated anywhere
        return ext, data[: rng.randrange(len(data))]
    if kind == 2:  # compressed, or in another Unicode encoding, or binary noise
        choice = rng.randrange(4)
        if choice == 0:
            return ext, gzip.compress(data)
        if choice == 1 and ext != "parquet":
            return ext, data.decode().encode(rng.choice(["utf-16", "utf-32", "utf-16-le", "latin-1"]))
        return ext, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    if ext == "parquet":
        return ext, data[:8] + bytes(rng.randrange(256) for _ in range(200)) + data[-8:]
    text = data.decode()
    lines = text.splitlines()
    if kind == 3:  # a header (first line) broken: empty, NUL, duplicate, control or very long names
        if ext == "csv":
            header = rng.choice(["order_id,,amount,email", "order_id,placed_at,amount,amount", "order_id,pl\x00aced,amount,email",
                                 "order_id,pl\x07aced,amount,email", "order_id," + "x" * rng.choice([2000, 100_000]) + ",amount,email",
                                 "", ",,,", "order_id"])
            lines[0] = header
        else:
            lines[0] = json.dumps({"": 1, "order_id": 1, "a\u0000b": 2})
        return ext, ("\n".join(lines) + "\n").encode()
    if kind == 4:  # ragged or broken lines
        for _ in range(rng.randrange(1, 5)):
            i = rng.randrange(1, len(lines))
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)] + rng.choice([",extra,cols", "", '"unclosed', "{", "}}"])
        return ext, ("\n".join(lines) + "\n").encode()
    if kind == 5:  # deep nesting
        depth = rng.choice([50, 101, 1000, 20_000])
        value = "[" * depth + "]" * depth
        line = f'{{"order_id": 7, "x": {value}}}' if ext == "jsonl" else f"7,2024-01-01T00:00:00Z,1.0,{value}"
        lines.insert(rng.randrange(1, len(lines)), line)
        return ext, ("\n".join(lines) + "\n").encode()
    if kind == 6:  # huge integers and strange numbers
        big = rng.choice(["9223372036854775808", "-9223372036854775809", "1" * 60, "1e400", "NaN", "-0", "0x1F"])
        lines.insert(rng.randrange(1, len(lines)),
                     f'{{"order_id": {big}, "amount": {big}}}' if ext == "jsonl" else f"{big},2024-01-01,{big},x")
        return ext, ("\n".join(lines) + "\n").encode()
    if kind == 7:  # many keys or columns
        n = rng.choice([100, 6000, 20_000])
        if ext == "jsonl":
            lines.append(json.dumps({f"k{i}": i for i in range(n)}))
        else:
            lines[0] += "," + ",".join(f"c{i}" for i in range(n))
        return ext, ("\n".join(lines) + "\n").encode()
    if kind == 8:  # timestamps and values of the wrong type
        for _ in range(rng.randrange(1, 10)):
            i = rng.randrange(1, len(lines))
            lines[i] = lines[i].replace("2024-01", rng.choice(["2024-13", "yesterday", "2024-01-01 00:00:00", "", "0000-00"]), 1)
        return ext, ("\n".join(lines) + "\n").encode()
    if kind == 9:  # an empty file, or only a header, or only blank lines
        return ext, rng.choice([b"", lines[0].encode() + b"\n", b"\n\n\n", b" "])
    if kind == 10:  # invalid UTF-8 or a BOM inside
        pos = rng.randrange(len(data))
        return ext, data[:pos] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00"]) + data[pos:]
    # a value with newlines, quotes and delimiters
    value = rng.choice(['"a\nb"', '"he said ""hi"""', "a;b;c", '"unterminated', "x" * 50_000])
    lines.insert(rng.randrange(1, len(lines)), f"8,2024-01-01T00:00:00Z,1.0,{value}" if ext == "csv" else json.dumps({"order_id": 8, "email": value}))
    return ext, ("\n".join(lines) + "\n").encode()


def write_job_case(folder: Path, job: bytes) -> None:
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "a.csv").write_bytes(good_csv())
    (folder / "job.yaml").write_bytes(job)


def write_data_case(folder: Path, ext: str, data: bytes, first: bool) -> None:
    """The malformed file alone (schema inferred from it), or after a good file of its kind."""
    (folder / "in").mkdir(parents=True)
    if not first:
        (folder / "in" / f"a.{ext}").write_bytes({"csv": good_csv, "jsonl": good_jsonl, "parquet": good_parquet}[ext]())
    (folder / "in" / f"b.{ext}").write_bytes(data)
    (folder / "job.yaml").write_text(BASE_JOB.format(ext=ext))
