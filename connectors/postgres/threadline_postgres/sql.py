"""Quoting for the SQL this package writes (names and values it cannot bind as parameters)."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A Postgres identifier, quoted: any name is safe, and its case is kept."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A Postgres string literal (standard_conforming_strings is on since Postgres 9.1)."""
    return "'" + value.replace("'", "''") + "'"


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"
