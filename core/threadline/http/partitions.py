"""Fan-out: one stream read once per parent record (`/lists/{list_id}/members`), or once per
value the config lists.

    members = RestStream(
        name="members", path="/lists/{list_id}/members", ...,
        partitions=FromParent(lists, keys={"list_id": "id"}, label="name", noun="audience"),
    )

A partition is a dict of values: they fill the `{placeholders}` of the path and the schema's
columns of the same name (or those `columns` maps to them); any other value is sent as a
query parameter (`?usernames=a,b,c`). A partition the API answers 404
for (a list deleted during the read) stops the stream with an error naming it; when the
values came from the config (`Fixed(..., field="list_ids")`) it is a config error on that field.

`FromParent(..., follow=True)` reads the parent with the child's own request (incremental,
state and all) and hands the parent's checkpoints on, after the children of each parent page
are read: the parent's position is the child's. `batch=100` gives the children the parent's
values 100 at a time, joined by commas (`show_many?ids=1,2,3`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from threadline.contracts import Batch, Checkpoint, ConfigError, FatalError, ReadRequest, SyncMode, ThreadlineError

if TYPE_CHECKING:
    from threadline.http.client import HttpClient
    from threadline.http.stream import RestStream


@dataclass
class Partitions:
    """Base of the fan-outs. `columns`: schema column → partition key (default: the keys
    that are schema columns). `noun` and `label` name a partition in errors."""

    columns: Mapping[str, str] = field(default_factory=dict)
    noun: str = "parent record"
    label: str = ""  # the partition key (or parent column) that names one to a person
    follow: bool = False  # the parent's checkpoints are the stream's (see the module docstring)
    fill: bool = True  # fill the schema's columns named like a partition key (False: only `columns`)

    def walk(self, client: HttpClient, request: ReadRequest) -> Iterator[dict[str, Any] | Checkpoint]:
        """Each partition (a dict), and, when following a parent, its checkpoints."""
        raise NotImplementedError

    def column_map(self, schema_names: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
        mapped = dict(self.columns)
        if self.fill:
            mapped.update({k: k for k in keys if k in schema_names and k not in mapped.values()})
        return mapped

    def keys(self) -> list[str]:
        raise NotImplementedError

    def describe(self, partition: Mapping[str, Any]) -> str:
        ids = ", ".join(repr(v) for k, v in partition.items() if not k.startswith("_"))
        name = partition.get("_label")
        return f"{ids} ({name})" if name else ids

    def gone(self, partition: Mapping[str, Any], exc: ThreadlineError) -> ThreadlineError:
        """The error for a partition the API no longer knows (answered 404)."""
        message = (f"{self.noun} {self.describe(partition)} was not found — answered {exc.status}; it was deleted "
                   f"or the id is wrong. Request: {exc.message}")
        hint = self.gone_hint()
        field_name = getattr(self, "field", "")
        if field_name:
            return ConfigError(message, field=field_name, where=exc.where, hint=hint, status=exc.status,
                               method=exc.method, url=exc.url)
        return FatalError(message, where=exc.where, hint=hint, status=exc.status, method=exc.method, url=exc.url)

    def gone_hint(self) -> str:
        field_name = getattr(self, "field", "")
        if field_name:
            return f"remove the id from {field_name}, or re-run the sync: deleted ones are not listed again"
        return f"re-run the sync: a deleted {self.noun} is not listed again"


@dataclass
class Fixed(Partitions):
    """Partitions listed in the config (`field` names where, for errors)."""

    items: Sequence[Mapping[str, Any]] = ()
    field: str = ""

    def walk(self, client: HttpClient, request: ReadRequest) -> Iterator[dict[str, Any] | Checkpoint]:
        for item in self.items:
            yield dict(item)

    def keys(self) -> list[str]:
        return sorted({k for item in self.items for k in item}) if self.items else []


@dataclass
class FromParent(Partitions):
    """Partitions from the records of a parent stream: `keys` maps each partition key to the
    parent's column. `batch`: that many parent records per partition, values comma-joined."""

    stream: RestStream | None = None
    keys_from: Mapping[str, str] = field(default_factory=dict)
    batch: int | None = None

    def keys(self) -> list[str]:
        return list(self.keys_from)

    def walk(self, client: HttpClient, request: ReadRequest) -> Iterator[dict[str, Any] | Checkpoint]:
        assert self.stream is not None
        parent = self.stream
        if self.follow:
            parent_request = ReadRequest(parent.to_stream(), request.sync_mode, request.state, request.cursor_start)
        else:
            parent_request = ReadRequest(parent.to_stream(), SyncMode.FULL_REFRESH)
        wanted = list(dict.fromkeys([*self.keys_from.values(), *([self.label] if self.label else [])]))
        if not self.follow:  # list every parent first: a parent error is not mixed with the children's
            items = [row for m in parent.read(client, parent_request) if isinstance(m, Batch)
                     for row in _rows(m, wanted)]
            yield from self._partitions(items)
            return
        for message in parent.read(client, parent_request):
            if isinstance(message, Batch):
                yield from self._partitions(_rows(message, wanted))
            elif isinstance(message, Checkpoint):
                yield message

    def _partitions(self, rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if self.batch:
            for start in range(0, len(rows), self.batch):
                chunk = rows[start:start + self.batch]
                yield {key: ",".join(str(r[column]) for r in chunk if r[column] is not None)
                       for key, column in self.keys_from.items()}
            return
        for row in rows:
            partition = {key: row[column] for key, column in self.keys_from.items()}
            if self.label:
                partition["_label"] = row.get(self.label)
            yield partition


def _rows(batch: Batch, columns: list[str]) -> list[dict[str, Any]]:
    records = batch.records
    present = [c for c in columns if c in records.schema.names]
    return records.select(present).to_pylist()
