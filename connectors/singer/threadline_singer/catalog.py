"""Singer catalogs: what `--discover` prints, as threadline streams, and back with a selection.

A Singer catalog entry has a `tap_stream_id`, a `stream` name, a JSON `schema` and a
`metadata` list keyed by breadcrumb; the entry with the empty breadcrumb carries the key
properties, replication keys and the `selected` flag.
"""

from __future__ import annotations

import copy
from typing import Any

from threadline.contracts import Catalog, Stream, SyncMode
from threadline_singer.schema import Nested, json_schema_to_arrow


def stream_name(entry: dict[str, Any]) -> str:
    """The name RECORD messages use for this entry's stream."""
    return entry.get("stream") or entry["tap_stream_id"]


def _root_metadata(entry: dict[str, Any]) -> dict[str, Any]:
    for item in entry.get("metadata") or []:
        if not item.get("breadcrumb"):
            return item.setdefault("metadata", {})
    root: dict[str, Any] = {"breadcrumb": [], "metadata": {}}
    entry.setdefault("metadata", []).append(root)
    return root["metadata"]


def to_stream(entry: dict[str, Any], *, nested: Nested = "struct") -> Stream:
    """A threadline Stream for one Singer catalog entry."""
    meta = _root_metadata(copy.deepcopy(entry))
    schema = json_schema_to_arrow(entry.get("schema") or {}, nested=nested)
    keys = meta.get("table-key-properties") or entry.get("key_properties") or []
    primary_key = tuple(k for k in keys if schema.get_field_index(k) >= 0)
    incremental = (
        meta.get("forced-replication-method") == "INCREMENTAL"
        or bool(meta.get("valid-replication-keys"))
        or bool(entry.get("replication_key") or meta.get("replication-key"))
    )
    modes = (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL) if incremental else (SyncMode.FULL_REFRESH,)
    return Stream(
        name=stream_name(entry),
        schema=schema,
        primary_key=primary_key,
        sync_modes=modes,
        description=str(entry.get("description") or ""),
    )


def to_catalog(singer_catalog: dict[str, Any], *, nested: Nested = "struct") -> Catalog:
    """A threadline Catalog for a whole Singer catalog."""
    return Catalog(tuple(to_stream(entry, nested=nested) for entry in singer_catalog.get("streams") or []))


def select(singer_catalog: dict[str, Any], name: str, *, incremental: bool) -> dict[str, Any]:
    """A copy of the catalog with only stream `name` selected (threadline reads one at a time)."""
    selected = copy.deepcopy(singer_catalog)
    for entry in selected.get("streams") or []:
        chosen = stream_name(entry) == name
        meta = _root_metadata(entry)
        meta["selected"] = chosen
        entry["selected"] = chosen  # older taps read the flag from the entry itself
        if chosen and not meta.get("forced-replication-method"):
            meta["replication-method"] = "INCREMENTAL" if incremental else "FULL_TABLE"
    return selected


def find_entry(singer_catalog: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The catalog entry of stream `name`, if there is one."""
    for entry in singer_catalog.get("streams") or []:
        if stream_name(entry) == name:
            return entry
    return None
