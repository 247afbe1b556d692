"""Fixtures of the meta_audiences tests: a started sandbox, configs for it, and a push helper
that drives a writer the way the profile store's push runner does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pytest
from threadline.contracts import AudienceTarget, PushMode, PushReport, PushResult
from threadline.testing import sample_members
from threadline_meta_audiences import MetaAudiences, MetaAudiencesConfig
from threadline_meta_audiences.sandbox import MetaSandbox


@pytest.fixture
def meta() -> Iterator[MetaSandbox]:
    box = MetaSandbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def make_config(meta: MetaSandbox) -> Callable[..., MetaAudiencesConfig]:
    def make(**overrides: Any) -> MetaAudiencesConfig:
        raw = {"base_url": meta.base_url, "api_version": meta.API_VERSION, "audience_id": meta.AUDIENCE_ID,
               "access_token": meta.ACCESS_TOKEN, "backoff_base": 0.01, "max_wait": 20, **overrides}
        return MetaAudiencesConfig.model_validate({k: v for k, v in raw.items() if v is not None})

    return make


@dataclass
class Pushed:
    report: PushReport | None = None
    results: list[PushResult] = field(default_factory=list)


def push(config: MetaAudiencesConfig, adds: pa.Table | None = None, removes: pa.Table | None = None, *,
         mode: PushMode = PushMode.DIFF, batch: int = 10_000, declared_adds: int | None = None,
         fail_after: int | None = None) -> Pushed:
    """Prepare, send removes then adds in `batch`-row requests, finish (abort on an error).
    `declared_adds` overrides the add count the target announces; `fail_after` raises after
    that many requests, as a push that breaks midway."""
    dest = MetaAudiences()
    adds = adds if adds is not None else sample_members(0, 0)
    removes = removes if removes is not None else sample_members(0, 0)
    target = AudienceTarget("test", "loyal", mode, "run-1",
                            adds.num_rows if declared_adds is None else declared_adds, removes.num_rows)
    writer = dest.open_audience(config, target)
    pushed = Pushed()
    try:
        for method, members in (("remove", removes), ("add", adds)):
            prepared = dest.prepare(config, members)
            for offset in range(0, prepared.num_rows, batch):
                if fail_after is not None and len(pushed.results) >= fail_after:
                    raise RuntimeError("the push broke midway")
                pushed.results.append(getattr(writer, method)(prepared.slice(offset, batch)))
        pushed.report = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return pushed


@pytest.fixture
def pusher() -> Callable[..., Pushed]:
    return push
