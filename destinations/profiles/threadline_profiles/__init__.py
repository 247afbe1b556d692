"""threadline's unified profile store: land source streams, normalize identifiers, resolve
records into profiles with stable ids, and keep a golden record per profile.

Python API::

    from threadline_profiles import ProfileStore, api
    with ProfileStore.open({"path": "profiles.duckdb"}) as store:
        api.build(store)
        profile = api.get(store, email="Ana@Example.com")
"""

from threadline_profiles import api
from threadline_profiles.config import IdentityRule, ProfilesConfig, StreamMapping
from threadline_profiles.destination import ProfilesDestination
from threadline_profiles.store import ProfileStore

__all__ = ["api", "IdentityRule", "ProfileStore", "ProfilesConfig", "ProfilesDestination", "StreamMapping"]
