"""Trait types and what a filter can name: a leaf module, so the expression language can
know trait types without importing how traits are computed."""

from __future__ import annotations

from dataclasses import dataclass

# Trait types, as the expression language sees them.
INTEGER, NUMBER, TEXT, BOOLEAN, TIMESTAMP, LIST = "integer", "number", "text", "boolean", "timestamp", "list"
FIELD_TYPES = {"text": TEXT, "number": NUMBER, "timestamp": TIMESTAMP}


@dataclass(frozen=True)
class TraitInfo:
    """A name an audience filter can use."""

    name: str
    type: str
    description: str
    origin: str  # built-in | computed | profile (a golden-record field)
    needs: str = ""  # what must be mapped for it; empty when this config provides it
