"""What you do with a profile store: build it, look people up, forget them.

    from threadline_profiles import ProfileStore, api
    with ProfileStore.open({"path": "profiles.duckdb"}) as store:
        api.build(store)
        profile = api.get(store, email="Ana@Example.com")

`ProfileStore` is a plain handle (connection, catalog, saved settings); these functions are
the operations, so that no stage module has to import the whole flow to reach them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from threadline_profiles.activation.forget import ForgetResult, Person, erase, find_person, quarantine_matcher
from threadline_profiles.pipeline import BuildResult
from threadline_profiles.pipeline import build as _build_pipeline
from threadline_profiles.resolve.lookup import (
    Profile,
    find_profile_ids,
    get_profile,
    load_profile,
)
from threadline_profiles.store import ProfileStore
from threadline_profiles.traits import enrichment


def build(store: ProfileStore, run_id: str | None = None, **kw: Any) -> BuildResult:
    """Normalize, resolve and merge what landed since the last build, or everything with
    `full=True` (see `pipeline.build` for the options)."""
    with store.lock:
        store.ensure_catalog()
        return _build_pipeline(store, run_id=run_id, **kw)


def get(store: ProfileStore, *, email: str | None = None, phone: str | None = None,
        profile_id: str | None = None, region: str | None = None) -> Profile | None:
    """The profile holding this email, phone or id (None if there is none)."""
    return _enriched(store, get_profile(store, email=email, phone=phone, profile_id=profile_id, region=region))


def find(store: ProfileStore, *, email: str | None = None, phone: str | None = None,
         profile_id: str | None = None, region: str | None = None) -> list[Profile]:
    """Every profile holding this email or phone (a shared value can be in several)."""
    ids = find_profile_ids(store, email=email, phone=phone, profile_id=profile_id, region=region)
    return [_enriched(store, p) for p in (load_profile(store, i) for i in ids) if p is not None]


def _enriched(store: ProfileStore, profile: Profile | None) -> Profile | None:
    """Partner attributes of a consenting profile join its golden record, with their source
    as lineage, where our own data has no value (`traits.enrichment`)."""
    if profile is not None:
        for name, value in enrichment.golden_values(store, profile.profile_id).items():
            profile.golden.setdefault(name, value)
    return profile


def enrich(store: ProfileStore, path: Path, *, source: str, key: str | None = None, kind: str | None = None,
           attributes: list[str] | None = None) -> enrichment.EnrichResult:
    """Join a partner's file of SHA-256 emails or phones with attributes to the profiles
    (see `traits.enrichment`): the match rate, and the attributes of consenting matches kept."""
    return enrichment.enrich(store, path, source=source, key=key, kind=kind, attributes=attributes)


def forget(store: ProfileStore, *, email: str | None = None, phone: str | None = None,
           profile_id: str | None = None, region: str | None = None, rebuild: bool = True, push: bool = False,
           state_dir: Path | None = None, compact: bool = True, even_if_unknown: bool = False,
           person: Person | None = None) -> ForgetResult:
    """Erase the person holding this email, phone or profile id (see `activation.forget`):
    delete their records, tombstone their identifiers, rebuild so profiles, golden records,
    traits and audiences no longer hold them, push their removal to the platforms (`push`),
    delete their rows from the job's quarantine (`state_dir`: the job's state folder) and
    compact the store so no freed block keeps them. Nobody found: nothing changes (unless
    `even_if_unknown`). `person` is what `find_person` returned, when the caller asked first."""
    from threadline.state import erase_quarantined

    if person is None:
        person = find_person(store, email=email, phone=phone, profile_id=profile_id, region=region)
    for pid in person.profile_ids:  # partner attributes found by their identifiers' digests
        enrichment.forget(store, pid)
    result = erase(store, person, even_if_unknown=even_if_unknown)
    if not person.found and not result.tombstones:
        return result
    if rebuild:
        build(store)
    if push and result.pending_removals:
        from threadline_profiles.activation.push import push_all

        result.pushes = push_all(store, only=sorted(result.pending_removals), quiet=True)
    if state_dir is not None:
        result.quarantined_rows_deleted = erase_quarantined(Path(state_dir), quarantine_matcher(store, person))
        result.quarantine_searched = True
    if compact:
        with store.lock:
            result.compacted = store.engine.compact()
    return result
