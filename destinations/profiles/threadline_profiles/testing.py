"""Helpers for testing code that uses the profile store: land Arrow tables through the real
destination contract (open_stream / write / commit / finish), and read profiles back."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
from threadline.contracts import Stream, StreamTarget, WriteDisposition

from threadline_profiles import api
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.destination import ProfilesDestination
from threadline_profiles.store import ProfileStore
from threadline_profiles.engines.base import work_table


class Lander:
    """Lands tables into one store, as the engine would."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.raw_config = config
        self.destination = ProfilesDestination()

    @property
    def config(self) -> ProfilesConfig:
        return ProfilesConfig.model_validate(self.raw_config)

    def land(self, source: str, stream: str, table: pa.Table | list[dict[str, Any]], *, pk: tuple[str, ...] = ("id",),
             run_id: str = "run-1", disposition: WriteDisposition = WriteDisposition.UPSERT,
             batch_rows: int = 1000, schema: pa.Schema | None = None, arrival_field: str | None = None) -> Any:
        if isinstance(table, list):
            table = pa.Table.from_pylist(table, schema=schema)
        stream_ = Stream(stream, table.schema, primary_key=pk, arrival_field=arrival_field)
        target = StreamTarget(source, stream_, disposition, f"{source}__{stream}", run_id)
        writer = self.destination.open_stream(self.config, target)
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write(batch)
        writer.commit()
        return writer.finish()

    def land_tables(self, tables: dict[str, pa.Table], *, batch_rows: int = 1000) -> None:
        """Land a population's tables, keyed `source.stream` (as the synthetic customers give them)."""
        for key, table in tables.items():
            source, stream = key.split(".")
            self.land(source, stream, table, batch_rows=batch_rows)

    def build(self, **kw: Any) -> Any:
        with ProfileStore.open(self.config) as store:
            return api.build(store, **kw)

    def store(self) -> ProfileStore:
        return ProfileStore.open(self.config)


def copy_store(path: Path, to: Path) -> Path:
    """A copy of a DuckDB store as a backup must be: the file, its WAL, its secret (which
    keys the tombstones) and its encryption key file (when the key is not in the environment)."""
    for suffix in ("", ".wal", ".secret", ".key"):
        if Path(f"{path}{suffix}").exists():
            shutil.copy(f"{path}{suffix}", f"{to}{suffix}")
    return to


def profiles_of(store: ProfileStore) -> set[frozenset[str]]:
    """The published profiles as sets of record keys."""
    groups: dict[str, set[str]] = {}
    for row in store.engine.rows("SELECT profile_id, record_key FROM tl_members"):
        groups.setdefault(row["profile_id"], set()).add(row["record_key"])
    return {frozenset(g) for g in groups.values()}


def profile_ids(store: ProfileStore) -> dict[str, str]:
    """record key -> profile id."""
    return {r["record_key"]: r["profile_id"] for r in store.engine.rows("SELECT record_key, profile_id FROM tl_members")}


def together(store: ProfileStore, *keys: str) -> bool:
    ids = profile_ids(store)
    return len({ids[k] for k in keys}) == 1


def snapshot(store: ProfileStore, with_ids: bool) -> dict[str, Any]:
    """Everything a build publishes and keeps for the next, comparable between stores: profiles
    are named by their records unless `with_ids`; timestamps of the build itself are left out."""
    e = store.engine
    members = {r["record_key"]: r["profile_id"] for r in e.rows("SELECT record_key, profile_id FROM tl_members")}
    groups: dict[str, set[str]] = {}
    for key, pid in members.items():
        groups.setdefault(pid, set()).add(key)
    name = (lambda pid: pid) if with_ids else (lambda pid: tuple(sorted(groups[pid])))
    out: dict[str, Any] = {
        "profiles": sorted(name(pid) for pid in groups),
        "golden": sorted((name(r["profile_id"]), r["field"], r["value"], r["record_key"], r["seen_at"], r["rule"])
                         for r in e.rows("SELECT * FROM tl_golden")),
        "sizes": sorted((name(r["profile_id"]), r["records"], r["sources"]) for r in e.rows("SELECT * FROM tl_profiles")),
    }
    for table in ("tl_links", "tl_record_values", "tl_dq", "tl_blocked", "tl_dropped_links", "tl_state_keys",
                  "tl_state_drops", "tl_state_records", "tl_links_refused"):
        out[table] = sorted(tuple(str(v) for v in r.values()) for r in e.rows(f"SELECT * FROM {table}"))
    if with_ids:
        out["history"] = sorted((r["profile_id"], r["event"], r["related_profile_id"] or "")
                                for r in e.rows("SELECT * FROM tl_profile_history"))
    return out


def comparison_levels(engine: Any, fields: list[str], pairs: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[tuple[int, ...]]:
    """The agreement rule's level of each field for each pair of values ((x's fields), (y's
    fields)), compared in the engine's own SQL as a build compares records; closes the engine."""
    from threadline_profiles.engines.base import lit
    from threadline_profiles.resolve import agreement

    rows = ", ".join("(" + ", ".join(lit(v) for v in (i, *x, *y)) + ")" for i, (x, y) in enumerate(pairs))
    columns = ", ".join([f"x_{f}" for f in fields] + [f"y_{f}" for f in fields])

    def side(prefix: str) -> str:
        return ", ".join(f"{prefix}_{f} AS {f}" for f in fields)

    try:
        agreement.require_comparisons(engine)
        engine.run(work_table("pairs", f"AS SELECT * FROM (VALUES {rows}) AS t(i, {columns})"))
        got = engine.rows(f"SELECT {agreement.levels_select(fields)} FROM (SELECT i, {side('x')} FROM pairs) AS x "
                          f"JOIN (SELECT i, {side('y')} FROM pairs) AS y ON x.i = y.i ORDER BY x.i")
    finally:
        engine.close()
    return [tuple(r.values()) for r in got]


# A population an encrypted store must never show in clear (DuckDB's and Postgres' encryption
# tests): its mapping, its rows, and the strings to look for.
SECRET_MAPPING = {"crm.contacts": {"identifiers": {"email": "email", "phone": "phone"},
                                   "traits": {"first_name": "first_name", "last_name": "last_name"},
                                   "cleaning": {"phone_region": "US"}}}


def secret_population(n: int = 300) -> list[dict]:
    rows = [{"id": i, "email": f"marisol.quennell{i}@tidewater-mail.example", "phone": f"(737) 555-{1000 + i:04d}",
             "first_name": "Marisol", "last_name": f"Quennell{i}"} for i in range(n)]
    rows.append({"id": n, "email": "MARISOL.QUENNELL0@tidewater-mail.example", "phone": None,
                 "first_name": "Marisol", "last_name": "Quennell0"})  # a second record of person 0
    return rows


# What must not show in an encrypted store: the raw and normalized emails and phones.
SECRET_TRACES = ("tidewater-mail", "quennell", "7375551", "555-10")
