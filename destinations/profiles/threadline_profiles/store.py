"""The profile store: one engine connection, the tables it keeps, and the operations on it.

Writers of one process share one store object per database (DuckDB allows one writing
process per file; threads get their own cursors). The Python API is `ProfileStore.open`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from threadline_profiles import landing
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.engines import Engine, lit, open_engine

# The parts of the config a store keeps, so that `--path` commands work without the job file.
SAVED_SETTINGS = {"mappings", "resolution", "survivorship", "traits", "consent", "suppression", "audiences"}

# Tables that outlive a build: the next build reads them to keep profile ids stable.
PERSISTENT = [
    "CREATE TABLE IF NOT EXISTS tl_profiles (profile_id VARCHAR, created_at TIMESTAMP, "
    "updated_at TIMESTAMP, records BIGINT, sources BIGINT)",
    "CREATE TABLE IF NOT EXISTS tl_members (profile_id VARCHAR, record_key VARCHAR, source VARCHAR, "
    "stream VARCHAR, pk VARCHAR, seen_at VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_profile_history (build_id VARCHAR, changed_at TIMESTAMP, profile_id VARCHAR, "
    "event VARCHAR, related_profile_id VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_builds (build_id VARCHAR, run_id VARCHAR, started_at TIMESTAMP, "
    "finished_at TIMESTAMP, records BIGINT, profiles BIGINT, report VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_meta (key VARCHAR, value VARCHAR)",
]


@dataclass(frozen=True)
class LandedStream:
    source: str
    stream: str
    table: str
    primary_key: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.source}.{self.stream}"


class ProfileStore:
    """A connected profile store."""

    def __init__(self, config: ProfilesConfig, engine: Engine | None = None, key: str = "") -> None:
        self.config = config
        self.engine = engine or open_engine(config)
        self.key = key or store_key(config)
        self.lock = threading.RLock()
        self._users = 1

    @classmethod
    def open(cls, config: ProfilesConfig | dict[str, Any]) -> ProfileStore:
        """Open the store a destination config describes (a dict is validated first)."""
        if isinstance(config, dict):
            config = ProfilesConfig.model_validate(config)
        store = cls(config)
        store.ensure_catalog()
        if not config.mappings:
            saved = store.saved_settings()
            if saved:
                base = config.model_dump(by_alias=True, exclude=SAVED_SETTINGS)
                store.config = ProfilesConfig.model_validate({**base, **saved})
        return store

    def __enter__(self) -> ProfileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_catalog(self) -> None:
        with self.lock:
            self.engine.run([landing.create_streams_table(), *PERSISTENT])

    def landed_streams(self) -> list[LandedStream]:
        self.ensure_catalog()
        rows = self.engine.rows(f"SELECT source, stream, table_name, primary_key FROM {landing.STREAMS_TABLE} ORDER BY source, stream")
        return [
            LandedStream(r["source"], r["stream"], r["table_name"], tuple(k for k in (r["primary_key"] or "").split("|") if k))
            for r in rows
        ]

    def build(self, run_id: str | None = None, **kw: Any) -> Any:
        """Normalize, resolve and merge what landed since the last build, or everything with
        `full=True` (see `pipeline.build`)."""
        from threadline_profiles.pipeline import build

        with self.lock:
            self.ensure_catalog()
            return build(self, run_id=run_id, **kw)

    # ---------------------------------------------------------------- lookups

    def get(self, *, email: str | None = None, phone: str | None = None, profile_id: str | None = None,
            region: str | None = None) -> Any:
        """The profile holding this email, phone or id (None if there is none)."""
        from threadline_profiles.lookup import get_profile

        return get_profile(self, email=email, phone=phone, profile_id=profile_id, region=region)

    def find(self, *, email: str | None = None, phone: str | None = None, profile_id: str | None = None,
             region: str | None = None) -> list[Any]:
        """Every profile holding this email or phone (a shared value can be in several)."""
        from threadline_profiles.lookup import find_profile_ids, load_profile

        ids = find_profile_ids(self, email=email, phone=phone, profile_id=profile_id, region=region)
        return [p for p in (load_profile(self, i) for i in ids) if p is not None]

    # ---------------------------------------------------------------- saved settings

    def save_settings(self) -> None:
        """Keep the mappings and resolution settings in the store, so that `threadline
        profiles build --path ...` can resolve without the job file (no connection details)."""
        settings = self.config.model_dump_json(include=SAVED_SETTINGS, by_alias=True)
        with self.lock:
            self.engine.run(["CREATE TABLE IF NOT EXISTS tl_meta (key VARCHAR, value VARCHAR)",
                             "DELETE FROM tl_meta WHERE key = 'settings'",
                             f"INSERT INTO tl_meta VALUES ('settings', {lit(settings)})"])

    def saved_settings(self) -> dict[str, Any]:
        if not self.engine.table_exists("tl_meta"):
            return {}
        text = self.engine.scalar("SELECT value FROM tl_meta WHERE key = 'settings'")
        return json.loads(text) if text else {}

    # ---------------------------------------------------------------- sharing

    def release(self) -> None:
        """Drop one user of a shared store; the last one closes it."""
        with _shared_lock:
            self._users -= 1
            if self._users <= 0:
                _shared.pop(self.key, None)
                self.engine.close()

    def close(self) -> None:
        self.engine.close()


def store_key(config: ProfilesConfig) -> str:
    if config.engine == "postgres":
        return f"postgres:{config.dsn}:{config.db_schema}"
    return f"duckdb:{config.path.resolve()}"


_shared: dict[str, ProfileStore] = {}
_shared_lock = threading.Lock()


def shared_store(config: ProfilesConfig) -> ProfileStore:
    """The process's store for this config, opened on first use; call `release()` when done."""
    key = store_key(config)
    with _shared_lock:
        store = _shared.get(key)
        if store is not None:
            store._users += 1
            store.config = config
            return store
        store = ProfileStore(config, key=key)
        _shared[key] = store
    store.ensure_catalog()
    return store
