"""The `postgres` source's config, as written in a job file."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from threadline.contracts import Spec

_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,40}$")


class TableStream(Spec):
    """A table (or view) chosen by name, with what the catalog cannot say about it."""

    table: str = Field(description="`name` (in the first of `schemas`) or `schema.name`")
    name: str | None = Field(None, description="the stream's name (default: the table's name; "
                                               "`schema__name` for a table outside the first schema)")
    cursor: str | None = Field(None, description="read incrementally by this column (rows whose value is >= "
                                                 "the last one read) instead of through the replication slot")
    primary_key: list[str] | None = Field(None, description="the key, for a view or a table without a primary key")
    slot: str | None = Field(None, description="this stream's replication slot (default: `<replication.slot>_<stream>`)")


class QueryStream(Spec):
    """A custom SELECT, read as a stream of its own."""

    name: str = Field(description="the stream's name")
    sql: str = Field(description="a SELECT; it is wrapped, so it may have joins, CTEs and its own WHERE")
    primary_key: list[str] = Field(default_factory=list, description="columns of the result that identify a row")
    cursor: str | None = Field(None, description="incremental by this result column (>= the last value read)")


class ReplicationConfig(Spec):
    """Change data capture through logical replication (pgoutput)."""

    publication: str = Field("threadline", description="the publication the tables are read through; created "
                                                       "(or the tables added to it) when `create_publication` is true")
    slot: str = Field("threadline", description="prefix of the replication slots: stream S reads slot `<slot>_<S>`, "
                                                "created on its first sync")
    create_publication: bool = Field(True, description="create the publication, or add tables to it, when needed; "
                                                       "false: a DBA manages it, and a missing table is an error "
                                                       "with the SQL to add it")
    reuse_slot: bool = Field(False, description="on a stream's first sync, take over a slot that already exists "
                                                "(its pending changes are applied after the snapshot) instead of "
                                                "refusing it")
    heartbeat: bool = Field(True, description="write a logical message at the start of each CDC read, so a slot "
                                              "whose tables are quiet still moves on and does not hold WAL back")

    @field_validator("slot", "publication")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SLOT_NAME.match(value):
            raise ValueError("use lower-case letters, digits and underscores (at most 40)")
        return value


class PostgresConfig(Spec):
    dsn: str = Field(description="a libpq connection string or URI: postgresql://user:password@host:5432/db "
                                 "(put the password in an environment variable: ${PG_PASSWORD})")
    schemas: list[str] = Field(default_factory=lambda: ["public"],
                               description="schemas whose tables are streams (when `tables` is not given)")
    tables: list[str | TableStream] | None = Field(
        None, description="only these tables: names, `schema.name`, or {table, cursor, primary_key, name, slot}")
    queries: list[QueryStream] = Field(default_factory=list, description="custom SELECTs as streams")
    replication: ReplicationConfig | None = Field(
        None, description="read tables incrementally by change data capture (logical replication); without it, "
                          "tables with a `cursor` are incremental and the others full refresh")
    checkpoint_rows: int = Field(100_000, ge=1000, description="rows between checkpoints; a killed sync re-reads "
                                                               "at most this many")
    connect_timeout: int = Field(10, ge=1, description="seconds to wait for the server to answer")

    def table_options(self) -> list[TableStream]:
        return [t if isinstance(t, TableStream) else TableStream(table=t) for t in self.tables or []]
