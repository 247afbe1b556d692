"""The SOQL the Salesforce sandbox understands: a parser and an evaluator over its records.

    SELECT field, ... | COUNT() | COUNT(field)
    FROM Object
    [WHERE condition]          condition: field op literal | field [NOT] IN (literal, ...)
                               | condition AND|OR condition | NOT condition | (condition)
                               op: = != <> < <= > >= LIKE
    [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...]
    [LIMIT n] [OFFSET n]

Literals as SOQL writes them: 'text' (backslash escapes), numbers, true/false, null, dates
(2024-03-01) and datetimes (2024-03-01T12:00:00Z, ...00.000+0000), unquoted. A quoted value
for a date or datetime field is refused as Salesforce refuses it. This is what
simple-salesforce's `query`/`query_all` and the connector send; relationship fields,
aggregate functions other than COUNT, GROUP BY and date literals like TODAY are not here
(400 MALFORMED_QUERY, not a wrong answer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

Record = Mapping[str, Any]

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))
    | (?P<date>\d{4}-\d\d-\d\d)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][\w.]*)
    )""", re.VERBOSE)
_KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
             "FIRST", "LAST", "LIMIT", "OFFSET", "COUNT", "TRUE", "FALSE", "NULL"}


class SoqlError(ValueError):
    """A query the sandbox refuses; `code` is Salesforce's errorCode."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Literal:
    kind: str  # string | datetime | date | number | boolean | null
    value: Any


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # = != < <= > >= LIKE IN NOT IN
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Logic:
    op: str  # AND | OR | NOT
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    obj: str
    fields: tuple[str, ...]
    count: str | None  # None: a record query; "": COUNT(); a field name: COUNT(field)
    where: Condition | Logic | None
    order: tuple[tuple[str, bool, bool], ...]  # (field, descending, nulls last)
    limit: int | None
    offset: int

    def conditions(self) -> list[Condition]:
        """Every condition in the WHERE clause."""
        found, todo = [], [self.where] if self.where is not None else []
        while todo:
            node = todo.pop()
            if isinstance(node, Condition):
                found.append(node)
            else:
                todo.extend(node.parts)
        return found


def _tokens(text: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(text):
        if not text[at:].strip():
            break
        match = _TOKEN.match(text, at)
        if match is None:
            raise SoqlError(f"unexpected token: '{text[at:].split()[0][:40]}'")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "word" and value.upper() in _KEYWORDS:
            kind, value = "keyword", value.upper()
        out.append((kind, value))
        at = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self, *keywords: str) -> bool:
        if self.at >= len(self.tokens):
            return False
        kind, value = self.tokens[self.at]
        return kind == "keyword" and value in keywords if keywords else True

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        if self.at >= len(self.tokens):
            raise SoqlError("unexpected end of query")
        got_kind, got = self.tokens[self.at]
        if (kind and got_kind != kind) or (value and got != value):
            raise SoqlError(f"unexpected token: '{got}'")
        self.at += 1
        return got

    def query(self) -> Query:
        self.take("keyword", "SELECT")
        fields: list[str] = []
        count: str | None = None
        if self.peek("COUNT"):
            self.take()
            self.take("punct", "(")
            count = "" if self.tokens[self.at] == ("punct", ")") else self.take("word")
            self.take("punct", ")")
        else:
            fields.append(self.take("word"))
            while self.tokens[self.at:self.at + 1] == [("punct", ",")]:
                self.take()
                fields.append(self.take("word"))
        self.take("keyword", "FROM")
        obj = self.take("word")
        where = None
        if self.peek("WHERE"):
            self.take()
            where = self.disjunction()
        order: list[tuple[str, bool, bool]] = []
        if self.peek("ORDER"):
            self.take()
            self.take("keyword", "BY")
            while True:
                name = self.take("word")
                descending = self.peek("DESC")
                if self.peek("ASC", "DESC"):
                    self.take()
                nulls_last = descending  # Salesforce: nulls first ascending, last descending
                if self.peek("NULLS"):
                    self.take()
                    nulls_last = self.take("keyword") == "LAST"
                order.append((name, descending, nulls_last))
                if self.tokens[self.at:self.at + 1] != [("punct", ",")]:
                    break
                self.take()
        limit = offset = None
        if self.peek("LIMIT"):
            self.take()
            limit = int(self.take("number"))
        if self.peek("OFFSET"):
            self.take()
            offset = int(self.take("number"))
        if self.at < len(self.tokens):
            raise SoqlError(f"unexpected token: '{self.tokens[self.at][1]}'")
        return Query(obj, tuple(fields), count, where, tuple(order), limit, offset or 0)

    def disjunction(self) -> Condition | Logic:
        parts = [self.conjunction()]
        while self.peek("OR"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Logic("OR", tuple(parts))

    def conjunction(self) -> Condition | Logic:
        parts = [self.negation()]
        while self.peek("AND"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else Logic("AND", tuple(parts))

    def negation(self) -> Condition | Logic:
        if self.peek("NOT"):
            self.take()
            return Logic("NOT", (self.negation(),))
        if self.tokens[self.at:self.at + 1] == [("punct", "(")]:
            self.take()
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        return self.condition()

    def condition(self) -> Condition:
        name = self.take("word")
        if self.peek("NOT", "IN"):
            negated = self.take() == "NOT"
            if negated:
                self.take("keyword", "IN")
            self.take("punct", "(")
            values = [self.literal()]
            while self.tokens[self.at:self.at + 1] == [("punct", ",")]:
                self.take()
                values.append(self.literal())
            self.take("punct", ")")
            return Condition(name, "NOT IN" if negated else "IN", tuple(values))
        if self.peek("LIKE"):
            self.take()
            return Condition(name, "LIKE", self.literal())
        op = self.take("op")
        return Condition(name, "!=" if op == "<>" else op, self.literal())

    def literal(self) -> Literal:
        if self.at >= len(self.tokens):
            raise SoqlError("unexpected end of query")
        kind, text = self.tokens[self.at]
        self.at += 1
        if kind == "string":
            return Literal("string", re.sub(r"\\(.)", r"\1", text[1:-1]))
        if kind in ("datetime", "date"):
            return Literal(kind, text)
        if kind == "number":
            return Literal("number", float(text))
        if kind == "keyword" and text in ("TRUE", "FALSE"):
            return Literal("boolean", text == "TRUE")
        if kind == "keyword" and text == "NULL":
            return Literal("null", None)
        raise SoqlError(f"unexpected token: '{text}'")


def parse(text: str) -> Query:
    """The query, or SoqlError (MALFORMED_QUERY) naming the first token not understood."""
    return _Parser(text).query()


# ------------------------------------------------------------------ evaluation

_NUMERIC = {"int", "double", "currency", "percent"}


def parse_literal(text: str) -> datetime:
    """A SOQL datetime literal (or a stored value): 2024-03-01T12:00:00Z, ...00.000Z or ...+00:00 / +0000."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    value = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(text) from None
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def _typed(kind: str, value: Any) -> Any:
    """A record's stored value as a comparable Python value, by the field's describe type."""
    if value is None:
        return None
    if kind == "datetime":
        return parse_literal(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind in _NUMERIC:
        return float(value)
    return value


def _literal_for(field: str, kind: str, literal: Literal) -> Any:
    """A literal as a value of the field's type, or the error Salesforce gives for a mismatch."""
    if literal.kind == "null":
        return None
    if kind in ("datetime", "date"):
        if literal.kind == "string":
            raise SoqlError(f"value of filter criterion for field '{field}' must be of type {'dateTime' if kind == 'datetime' else 'date'} "
                            "and should not be enclosed in quotes", "INVALID_FIELD")
        if kind == "datetime" and literal.kind == "datetime":
            return parse_literal(literal.value)
        if kind == "date" and literal.kind == "date":
            return date.fromisoformat(literal.value)
        raise SoqlError(f"value of filter criterion for field '{field}' must be of type "
                        f"{'dateTime' if kind == 'datetime' else 'date'}", "INVALID_FIELD")
    if kind == "boolean":
        if literal.kind != "boolean":
            raise SoqlError(f"value of filter criterion for field '{field}' must be of type boolean", "INVALID_FIELD")
        return literal.value
    if kind in _NUMERIC:
        if literal.kind != "number":
            raise SoqlError(f"value of filter criterion for field '{field}' must be of type double "
                            "and should not be enclosed in quotes", "INVALID_FIELD")
        return literal.value
    if literal.kind != "string":
        raise SoqlError(f"value of filter criterion for field '{field}' must be of type string "
                        "and should be enclosed in quotes", "INVALID_FIELD")
    return literal.value


def _like(pattern: str) -> re.Pattern[str]:
    """SOQL LIKE: % any run, _ one character, case-insensitive."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern),
                      re.IGNORECASE | re.DOTALL)


def predicate(query: Query, types: Mapping[str, str]) -> Callable[[Record], bool]:
    """A test for records of the queried object; `types` maps field names to describe types."""

    def build(node: Condition | Logic) -> Callable[[Record], bool]:
        if isinstance(node, Logic):
            parts = [build(p) for p in node.parts]
            if node.op == "AND":
                return lambda r: all(p(r) for p in parts)
            if node.op == "OR":
                return lambda r: any(p(r) for p in parts)
            return lambda r: not parts[0](r)
        kind = types[node.field]
        name = node.field
        if node.op in ("IN", "NOT IN"):
            values = {_literal_for(name, kind, v) for v in node.value}  # type: ignore[union-attr]
            inside = node.op == "IN"
            return lambda r: (_typed(kind, r.get(name)) in values) == inside
        want = _literal_for(name, kind, node.value)  # type: ignore[arg-type]
        if node.op == "LIKE":
            pattern = _like(str(want))
            return lambda r: r.get(name) is not None and pattern.fullmatch(str(r.get(name))) is not None
        if node.op == "=":
            return lambda r: _typed(kind, r.get(name)) == want
        if node.op == "!=":
            return lambda r: _typed(kind, r.get(name)) != want
        compare = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                   ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[node.op]
        if want is None:
            return lambda r: False

        def test(r: Record) -> bool:
            have = _typed(kind, r.get(name))
            return have is not None and compare(have, want)

        return test

    return build(query.where) if query.where is not None else (lambda r: True)


def ordered(rows: list[Record], query: Query, types: Mapping[str, str]) -> list[Record]:
    """Rows in the query's ORDER BY (stable sorts, last key first); unordered queries keep their order."""
    for name, descending, nulls_last in reversed(query.order):
        kind = types[name]
        present = [r for r in rows if r.get(name) is not None]
        missing = [r for r in rows if r.get(name) is None]
        present.sort(key=lambda r: _typed(kind, r.get(name)), reverse=descending)
        rows = present + missing if nulls_last else missing + present
    return rows
