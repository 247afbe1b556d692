"""The profile store handle: one engine connection, the catalog tables it keeps, and the
settings saved with it. Operations on a store (build, get, find) live in `api`.

Writers of one process share one store object per database (DuckDB allows one writing
process per file; threads get their own cursors). Open one with `ProfileStore.open`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from pydantic import ValidationError
from threadline.errors import ConfigError
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.engines import Engine, lit, open_engine

# The parts of the config a store keeps, so that `--path` commands work without the job file.
SAVED_SETTINGS = {"mappings", "resolution", "survivorship", "traits", "consent", "suppression", "audiences", "decisions"}
# Of an activation, what a build reads (results streams and decisions name activations; a build
# credits results to them): never its destination's config, which holds connection details.
SAVED_ACTIVATION = {"audience", "connector", "mode"}

# Which source streams have landed, and in which raw table (written by `land.landing`).
STREAMS_TABLE = "tl_streams"

# Tables that outlive a build: the next build reads them to keep profile ids stable.
PERSISTENT = [
    f"CREATE TABLE IF NOT EXISTS {STREAMS_TABLE} (source VARCHAR, stream VARCHAR, table_name VARCHAR, "
    "primary_key VARCHAR, registered_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS tl_profiles (profile_id VARCHAR, created_at TIMESTAMP, "
    "updated_at TIMESTAMP, records BIGINT, sources BIGINT)",
    "CREATE TABLE IF NOT EXISTS tl_members (profile_id VARCHAR, record_key VARCHAR, source VARCHAR, "
    "stream VARCHAR, pk VARCHAR, seen_at VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_profile_history (build_id VARCHAR, changed_at TIMESTAMP, profile_id VARCHAR, "
    "event VARCHAR, related_profile_id VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_builds (build_id VARCHAR, run_id VARCHAR, started_at TIMESTAMP, "
    "finished_at TIMESTAMP, records BIGINT, profiles BIGINT, report VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_meta (key VARCHAR, value VARCHAR)",
    # how each build ran (full or incremental) and the agreement model it scored with (model.py)
    "ALTER TABLE tl_builds ADD COLUMN IF NOT EXISTS mode VARCHAR",
    "ALTER TABLE tl_builds ADD COLUMN IF NOT EXISTS model_version BIGINT",
]


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
                try:
                    store.config = ProfilesConfig.model_validate({**base, **saved})
                except ValidationError as exc:  # saved by an older threadline (before activations were kept)
                    store.close()
                    first = exc.errors()[0]
                    raise ConfigError(
                        f"the settings saved in the store {store.key} do not validate: {first['msg']}",
                        hint="build it once with its job file (threadline profiles build job.yaml), "
                             "which saves them again") from None
        return store

    def __enter__(self) -> ProfileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_catalog(self) -> None:
        with self.lock:
            self.engine.run(PERSISTENT)

    # ---------------------------------------------------------------- saved settings

    def save_settings(self) -> None:
        """Keep the mappings and resolution settings in the store, so that `threadline
        profiles build --path ...` can resolve without the job file (no connection details).
        Activations are kept by name, audience and mode only, and never push from there: a
        store opened from its saved settings validates and builds as the job's did, and
        `threadline push` takes its activations from the job."""
        saved = self.config.model_dump(include=SAVED_SETTINGS, by_alias=True, mode="json")
        saved["activations"] = {name: {**a.model_dump(include=SAVED_ACTIVATION, mode="json"), "push_on_build": False}
                                for name, a in self.config.activations.items()}
        settings = json.dumps(saved)
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
    if config.engine == "spark":
        return f"spark:{config.spark.remote or config.spark.master}:{config.spark.catalog}.{config.spark.database}"
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
