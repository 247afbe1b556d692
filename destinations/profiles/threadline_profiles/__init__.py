"""threadline's unified profile store: land source streams, normalize identifiers, resolve
records into profiles with stable ids, and keep a golden record per profile.

Python API::

    from threadline_profiles import ProfileStore
    with ProfileStore.open({"path": "profiles.duckdb"}) as store:
        store.build()
        profile = store.get(email="Ana@Example.com")
"""

from threadline_profiles.config import IdentityRule, ProfilesConfig, StreamMapping
from threadline_profiles.destination import ProfilesDestination
from threadline_profiles.store import ProfileStore

__all__ = ["IdentityRule", "ProfileStore", "ProfilesConfig", "ProfilesDestination", "StreamMapping"]
