"""threadline's unified profile store: land source streams, normalize identifiers, resolve
records into profiles with stable ids, and keep a golden record per profile.

Python API::

    from threadline_profiles import ProfileStore, api
    with ProfileStore.open({"path": "profiles.duckdb"}) as store:
        api.build(store)
        profile = api.get(store, email="Ana@Example.com")
"""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["api", "IdentityRule", "ProfileStore", "ProfilesConfig", "ProfilesDestination", "StreamMapping"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {
    "api": "threadline_profiles.api",
    "IdentityRule": "threadline_profiles.config", "ProfilesConfig": "threadline_profiles.config",
    "StreamMapping": "threadline_profiles.config", "ProfilesDestination": "threadline_profiles.destination",
    "ProfileStore": "threadline_profiles.store",
})

if TYPE_CHECKING:
    from threadline_profiles import api
    from threadline_profiles.config import IdentityRule, ProfilesConfig, StreamMapping
    from threadline_profiles.destination import ProfilesDestination
    from threadline_profiles.store import ProfileStore
