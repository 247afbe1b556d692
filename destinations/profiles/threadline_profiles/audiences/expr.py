"""The audience filter language: a small, typed expression over a profile's traits.

    orders_count >= 3 and last_order_at within 90d and not (churn_risk = 'high')
    country in ['US', 'CA'] and reachable_channels contains 'email'
    open_tickets > 0 or days_since_last_order is null

Grammar (keywords in any case; trait names as declared)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expr ")" | predicate
    predicate  := trait op operand                     op: = == != <> < <= > >=
                | trait ["not"] "in" "[" literal ("," literal)* "]"
                | trait "contains" string              (list traits)
                | trait "is" ["not"] "null"
                | trait "within" duration              (time traits: the last 24h / 90d / 12w / 1y before as_of)
                | trait                                (boolean traits)
    operand    := literal | trait
    literal    := number | string | true | false       strings in '...' or "..." (\\ escapes a quote);
                                                       a string compared with a time trait is an ISO date/time

Meaning: a comparison involving a missing value (NULL) is false, so `not (x > 3)` holds for
profiles without `x`; test missing values with `is null`. Text compares exactly (the store's
values are normalized: countries upper-case, emails lower-case).

The text is parsed here into a typed tree, checked against the traits the config provides,
and compiled to SQL in which every name is a known, quoted column and every literal is
rendered by us — nothing the user typed reaches the SQL as text. Errors carry the position
(line:column) and show it with a caret.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Union

from threadline.contracts import ConfigError

from threadline_profiles.config.audiences import utc_naive, window_delta
from threadline_profiles.engines.base import lit
from threadline_profiles.traits.compute import (
    BOOLEAN,
    INTEGER,
    LIST,
    NUMBER,
    TEXT,
    TIMESTAMP,
    TraitInfo,
)
from threadline_profiles.traits.facts import ts_literal

MAX_DEPTH = 100  # parentheses and `not`s inside one another
KEYWORDS = {"and", "or", "not", "in", "contains", "is", "null", "true", "false", "within"}
COMPARISONS = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
ORDERING = {"<", "<=", ">", ">="}
NUMERIC = {INTEGER, NUMBER}
# Operators from other languages, and what to write instead.
INSTEAD = {"&&": "and", "||": "or", "!": "not", "=<": "<=", "=>": ">=", "===": "=", "~=": "!="}
TYPE_NAMES = {INTEGER: "a number", NUMBER: "a number", TEXT: "text", BOOLEAN: "true/false", TIMESTAMP: "a time",
              LIST: "a list"}


class ExpressionError(ConfigError):
    """An audience filter that cannot be used: what is wrong, where (line:column), and a caret
    under the spot in `display()`."""

    def __init__(self, problem: str, text: str, pos: int, length: int = 1, suggestion: str = "") -> None:
        self.problem, self.text, self.pos, self.length = problem, text, pos, max(1, length)
        self.line = text.count("\n", 0, pos) + 1
        self.column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        message = f"{problem} at {self.line}:{self.column}" + (f" — {suggestion}" if suggestion else "")
        super().__init__(message)

    def display(self, indent: str = "    ") -> str:
        """The expression's line with a caret under the problem."""
        line = self.text.split("\n")[self.line - 1]
        return f"{indent}{line}\n{indent}{' ' * (self.column - 1)}{'^' * min(self.length, max(1, len(line) - self.column + 1))}"


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # name | keyword | number | string | duration | op | punct | end
    text: str
    value: Any
    pos: int


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TWO = ("<=", ">=", "!=", "<>", "==", "=<", "=>", "&&", "||", "~=")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"":
            value, end = _string(text, i)
            tokens.append(Token("string", text[i:end], value, i))
            i = end
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            assert m is not None
            unit = _WORD.match(text, m.end())
            if unit:
                word = text[i:unit.end()]
                if re.fullmatch(r"[0-9]+[hdwy]", word):
                    try:
                        delta = window_delta(word)
                    except ValueError as exc:
                        raise ExpressionError(str(exc), text, i, len(word), "use a shorter window, e.g. 10y") from None
                    tokens.append(Token("duration", word, delta, i))
                    i = unit.end()
                    continue
                raise ExpressionError(f"{word!r} is neither a number nor a duration", text, i, len(word),
                                      "durations are a whole number and h, d, w or y (24h, 90d, 12w, 1y)")
            number = float(m.group()) if m.group(1) else int(m.group())
            if abs(number) >= 1e15:
                raise ExpressionError(f"{m.group()} is too large a number", text, i, len(m.group()))
            tokens.append(Token("number", m.group(), number, i))
            i = m.end()
            continue
        if ch.isalpha() or ch == "_":
            m = _WORD.match(text, i)
            assert m is not None
            word = m.group()
            kind = "keyword" if word.lower() in KEYWORDS else "name"
            tokens.append(Token(kind, word, word.lower() if kind == "keyword" else word, i))
            i = m.end()
            continue
        two = text[i:i + 3] if text[i:i + 3] == "===" else text[i:i + 2]
        if two in INSTEAD or (ch == "!" and two != "!="):
            bad = two if two in INSTEAD else ch
            raise ExpressionError(f"unknown operator {bad!r}", text, i, len(bad), f"use {INSTEAD[bad]!r}")
        if two in _TWO:
            tokens.append(Token("op", two, two, i))
            i += 2
            continue
        if ch in "=<>":
            tokens.append(Token("op", ch, ch, i))
            i += 1
            continue
        if ch in "()[],":
            tokens.append(Token("punct", ch, ch, i))
            i += 1
            continue
        raise ExpressionError(f"unexpected character {ch!r}", text, i, 1,
                              "a filter has trait names, comparisons, and/or/not, parentheses, lists in [...] and literals")
    tokens.append(Token("end", "", None, n))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == quote:
            value = "".join(out)
            if "\x00" in value:
                raise ExpressionError("a string cannot hold a NUL character", text, start, i + 1 - start)
            return value, i + 1
        if ch == "\n":
            break
        out.append(ch)
        i += 1
    raise ExpressionError("unclosed string", text, start, 1, f"end it with {quote}")


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class Trait:
    name: str
    type: str
    pos: int


@dataclass(frozen=True)
class Literal:
    value: Any  # int | float | str | bool | datetime
    type: str
    pos: int


@dataclass(frozen=True)
class Compare:
    op: str  # SQL operator
    left: Trait
    right: Trait | Literal


@dataclass(frozen=True)
class InList:
    trait: Trait
    items: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class Contains:
    trait: Trait
    item: Literal


@dataclass(frozen=True)
class IsNull:
    trait: Trait
    negated: bool


@dataclass(frozen=True)
class Within:
    trait: Trait
    days: float


@dataclass(frozen=True)
class IsTrue:
    trait: Trait


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class Junction:
    op: str  # AND | OR
    items: tuple[Node, ...]


Node = Union[Compare, InList, Contains, IsNull, Within, IsTrue, Not, Junction]


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, catalog: dict[str, TraitInfo]) -> None:
        self.text, self.catalog = text, catalog
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0  # open parentheses and `not`s around the current token

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, problem: str, tok: Token, suggestion: str = "") -> ExpressionError:
        return ExpressionError(problem, self.text, tok.pos, len(tok.text) or 1, suggestion)

    def at(self, kind: str, value: Any = None) -> bool:
        return self.tok.kind == kind and (value is None or self.tok.value == value)

    def parse(self) -> Node:
        if self.at("end"):
            raise self.error("empty filter", self.tok, "write a condition such as `orders_count > 0`")
        node = self.parse_or()
        if not self.at("end"):
            if self.at("punct", ")"):
                raise self.error("unmatched ')'", self.tok, "remove it or open a '(' before")
            raise self.error(f"unexpected {_show(self.tok)}", self.tok, "expected 'and', 'or' or the end of the filter")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.at("keyword", "or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Junction("OR", tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.at("keyword", "and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else Junction("AND", tuple(items))

    def parse_not(self) -> Node:
        if self.at("keyword", "not") or self.at("punct", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:  # a filter this deep is generated or broken; Python's stack is not endless
                raise self.error(f"nested more than {MAX_DEPTH} deep", self.tok,
                                 "flatten it: a and b and c needs no parentheses; not (not x) is x")
            try:
                return self._nested()
            finally:
                self.depth -= 1
        return self.parse_predicate()

    def _nested(self) -> Node:
        """`not x` or `( x )`."""
        if self.at("keyword", "not"):
            self.take()
            return Not(self.parse_not())
        opening = self.take()
        node = self.parse_or()
        if not self.at("punct", ")"):
            if self.at("end"):
                raise self.error("unclosed '('", opening, "add the ')' that ends it")
            raise self.error(f"expected ')' but found {_show(self.tok)}", self.tok,
                             f"the '(' at {_where(self.text, opening.pos)} is still open")
        self.take()
        return node

    def trait(self) -> Trait:
        tok = self.tok
        if tok.kind != "name":
            if tok.kind in ("number", "string", "duration") or (tok.kind == "keyword" and tok.value in ("true", "false", "null")):
                raise self.error(f"expected a trait name, found {_show(tok)}", tok,
                                 "a condition starts with a trait, e.g. `orders_count > 3`")
            raise self.error(f"expected a trait name, '(' or 'not', found {_show(tok)}", tok)
        self.take()
        info = self.catalog.get(tok.value)
        if info is None:
            close = difflib.get_close_matches(tok.value, list(self.catalog), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"known traits: {', '.join(sorted(self.catalog)[:12])}{', …' if len(self.catalog) > 12 else ''}")
            raise self.error(f"unknown trait {tok.value!r}", tok, hint)
        if info.needs:
            raise self.error(f"trait {tok.value!r} needs {info.needs}", tok, "map one, or filter on another trait")
        return Trait(tok.value, info.type, tok.pos)

    def parse_predicate(self) -> Node:
        trait = self.trait()
        tok = self.tok
        if tok.kind == "op":
            self.take()
            return self.comparison(trait, tok)
        if tok.kind == "keyword":
            if tok.value == "not" and self.tokens[self.i + 1].value != "in":
                raise self.error(f"expected 'in' after 'not', found {_show(self.tokens[self.i + 1])}", self.tokens[self.i + 1],
                                 f"write `{trait.name} not in [...]` or `{trait.name} is not null`")
            if tok.value == "in" or tok.value == "not":
                negated = tok.value == "not"
                self.i += 2 if negated else 1
                return self.in_list(trait, tok, negated)
            if tok.value == "contains":
                self.take()
                if trait.type != LIST:
                    raise self.error(f"'contains' needs a list trait; {trait.name!r} is {TYPE_NAMES[trait.type]}", tok,
                                     _compare_hint(trait))
                item = self.literal()
                if item.type != TEXT:
                    raise self.error(f"{trait.name!r} holds text; {_show_literal(item)} is {TYPE_NAMES[item.type]}",
                                     self.tokens[self.i - 1], "quote it: contains 'value'")
                return Contains(trait, item)
            if tok.value == "is":
                self.take()
                negated = self.at("keyword", "not")
                if negated:
                    self.take()
                if not self.at("keyword", "null"):
                    raise self.error(f"expected 'null' after 'is{' not' if negated else ''}', found {_show(self.tok)}",
                                     self.tok, "compare values with = or !=; `is` only tests for null")
                self.take()
                return IsNull(trait, negated)
            if tok.value == "within":
                self.take()
                if trait.type != TIMESTAMP:
                    raise self.error(f"'within' needs a time trait; {trait.name!r} is {TYPE_NAMES[trait.type]}", tok,
                                     "e.g. last_order_at within 90d")
                if not self.at("duration"):
                    raise self.error(f"expected a duration after 'within', found {_show(self.tok)}", self.tok,
                                     "write 24h, 90d, 12w or 1y")
                return Within(trait, self.take().value.total_seconds() / 86400)
        if tok.kind in ("end",) or (tok.kind == "keyword" and tok.value in ("and", "or")) or self.at("punct", ")"):
            if trait.type == BOOLEAN:
                return IsTrue(trait)
            raise self.error(f"{trait.name!r} is {TYPE_NAMES[trait.type]}, not a condition", Token("name", trait.name, trait.name, trait.pos),
                             _compare_hint(trait))
        word = tok.text.lower()
        close = difflib.get_close_matches(word, ["in", "contains", "is", "within", "not"], n=1, cutoff=0.6)
        raise self.error(f"expected an operator after {trait.name!r}, found {_show(tok)}", tok,
                         f"did you mean {close[0]!r}?" if close else "use = != < <= > >= in contains is within")

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Literal(tok.value, NUMBER, tok.pos)
        if tok.kind == "string":
            self.take()
            return Literal(tok.value, TEXT, tok.pos)
        if tok.kind == "keyword" and tok.value in ("true", "false"):
            self.take()
            return Literal(tok.value == "true", BOOLEAN, tok.pos)
        if tok.kind == "duration":
            raise self.error(f"a duration ({tok.text}) only goes after 'within'", tok,
                             "e.g. last_order_at within 90d, or compare days: days_since_last_order > 90")
        if tok.kind == "keyword" and tok.value == "null":
            raise self.error("null is not a value to compare with", tok, "write `trait is null` or `trait is not null`")
        if tok.kind == "name":
            raise self.error(f"expected a value, found {_show(tok)}", tok, f"quote text: '{tok.text}'")
        raise self.error(f"expected a value, found {_show(tok)}", tok)

    def comparison(self, trait: Trait, op: Token) -> Node:
        if trait.type == LIST:
            raise self.error(f"{trait.name!r} is a list; {op.text!r} does not compare lists", op,
                             f"use `{trait.name} contains 'value'`")
        if op.text in ORDERING and trait.type not in NUMERIC | {TIMESTAMP}:
            raise self.error(f"{op.text!r} orders numbers and times; {trait.name!r} is {TYPE_NAMES[trait.type]}", op,
                             "use = or != (or in [...])")
        if self.at("name") and self.tok.value not in self.catalog and not difflib.get_close_matches(
                self.tok.value, list(self.catalog), n=1, cutoff=0.6):
            raise self.error(f"expected a value, found {_show(self.tok)}", self.tok, f"quote text: '{self.tok.text}'")
        if self.at("name"):
            other = self.trait()
            if not _comparable(trait.type, other.type):
                raise ExpressionError(f"{trait.name!r} is {TYPE_NAMES[trait.type]} but {other.name!r} is "
                                      f"{TYPE_NAMES[other.type]}", self.text, other.pos, len(other.name))
            return Compare(COMPARISONS[op.text], trait, other)
        value_tok = self.tok
        value = self.literal()
        return Compare(COMPARISONS[op.text], trait, self.typed(trait, value, value_tok))

    def typed(self, trait: Trait, value: Literal, tok: Token) -> Literal:
        """`value` as a literal of the trait's type, or an error."""
        if trait.type == TIMESTAMP and value.type == TEXT:
            return Literal(_parse_time(value.value, self.text, tok), TIMESTAMP, value.pos)
        if _comparable(trait.type, value.type):
            return value
        example = {INTEGER: "3", NUMBER: "19.99", TEXT: "'text'", BOOLEAN: "true", TIMESTAMP: "'2024-06-30'"}[trait.type]
        raise self.error(f"{trait.name!r} is {TYPE_NAMES[trait.type]}; {_show_literal(value)} is {TYPE_NAMES[value.type]}",
                         tok, f"compare it with a value like {example}")

    def in_list(self, trait: Trait, op: Token, negated: bool) -> Node:
        if trait.type == LIST:
            raise self.error(f"{trait.name!r} is a list; use `contains`", op, f"e.g. {trait.name} contains 'value'")
        if not self.at("punct", "["):
            raise self.error(f"expected '[' after 'in', found {_show(self.tok)}", self.tok, "write a list: in ['a', 'b']")
        opening = self.take()
        items = []
        while True:
            tok = self.tok
            if tok.kind == "end":
                raise self.error("unclosed '['", opening, "end the list with ']'")
            items.append(self.typed(trait, self.literal(), tok))
            if self.at("punct", ","):
                self.take()
                continue
            if self.at("punct", "]"):
                self.take()
                break
            if self.at("end"):
                raise self.error("unclosed '['", opening, "end the list with ']'")
            raise self.error(f"expected ',' or ']' in the list, found {_show(self.tok)}", self.tok)
        return InList(trait, tuple(items), negated)


def _comparable(a: str, b: str) -> bool:
    return a == b or (a in NUMERIC and b in NUMERIC)


def _compare_hint(trait: Trait) -> str:
    return {INTEGER: f"e.g. {trait.name} > 0", NUMBER: f"e.g. {trait.name} > 0", TEXT: f"e.g. {trait.name} = 'value'",
            TIMESTAMP: f"e.g. {trait.name} within 90d", LIST: f"e.g. {trait.name} contains 'value'",
            BOOLEAN: trait.name}[trait.type]


def _show(tok: Token) -> str:
    return "the end of the filter" if tok.kind == "end" else repr(tok.text)


def _show_literal(value: Literal) -> str:
    return repr(value.value) if value.type == TEXT else str(value.value).lower() if value.type == BOOLEAN else str(value.value)


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"{line}:{pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _parse_time(value: str, text: str, tok: Token) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ExpressionError(f"{value!r} is not a date or time", text, tok.pos, len(tok.text),
                              "write it as '2024-06-30' or '2024-06-30T12:00:00'") from None
    return utc_naive(parsed)


def parse(text: str, catalog: dict[str, TraitInfo]) -> Node:
    """The checked tree of a filter; ExpressionError (a ConfigError) when it cannot be used."""
    return _Parser(text, catalog).parse()


# --------------------------------------------------------------------------- SQL


def traits_used(node: Node) -> set[str]:
    """The names a filter refers to."""
    if isinstance(node, Junction):
        return set().union(*(traits_used(n) for n in node.items))
    if isinstance(node, Not):
        return traits_used(node.item)
    if isinstance(node, Compare):
        return {node.left.name} | ({node.right.name} if isinstance(node.right, Trait) else set())
    return {node.trait.name}


def _value(item: Trait | Literal, refs: dict[str, str]) -> str:
    if isinstance(item, Trait):
        return refs[item.name]
    if item.type == TIMESTAMP:
        return ts_literal(item.value)
    if item.type == BOOLEAN:
        return "TRUE" if item.value else "FALSE"
    if item.type == NUMBER:
        return repr(item.value)  # an int or float parsed by us
    return lit(item.value)


def to_sql(node: Node, refs: dict[str, str], as_of: datetime) -> str:
    """The filter as a SQL condition that is TRUE or FALSE (never NULL). `refs` maps each
    trait name to its (quoted) column expression."""
    if isinstance(node, Junction):
        return "(" + f" {node.op} ".join(to_sql(n, refs, as_of) for n in node.items) + ")"
    if isinstance(node, Not):
        return f"(NOT {to_sql(node.item, refs, as_of)})"
    if isinstance(node, Compare):
        return f"COALESCE({refs[node.left.name]} {node.op} {_value(node.right, refs)}, FALSE)"
    if isinstance(node, InList):
        values = ", ".join(_value(v, refs) for v in node.items)
        return f"COALESCE({refs[node.trait.name]} {'NOT IN' if node.negated else 'IN'} ({values}), FALSE)"
    if isinstance(node, Contains):
        return f"COALESCE(LIST_CONTAINS({refs[node.trait.name]}, {_value(node.item, refs)}), FALSE)"
    if isinstance(node, IsNull):
        return f"({refs[node.trait.name]} IS {'NOT ' if node.negated else ''}NULL)"
    if isinstance(node, Within):
        col = refs[node.trait.name]
        since = ts_literal(as_of - timedelta(days=node.days))
        return f"COALESCE({col} > {since} AND {col} <= {ts_literal(as_of)}, FALSE)"
    if isinstance(node, IsTrue):
        return f"COALESCE({refs[node.trait.name]}, FALSE)"
    raise TypeError(f"not a filter node: {node!r}")
