"""Fixtures of the Google Customer Match tests: a started sandbox, configs of both
destinations for it, and a push helper driving a writer as the profile store's runner does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
from threadline.contracts import AudienceDestination, AudienceTarget, PushMode, PushReport, PushResult
from threadline_google_customer_match import GoogleCustomerMatch, GoogleDataManager
from threadline_google_customer_match.sandbox import GoogleSandbox

FAST = {"backoff_base": 0.01, "max_rate_limit_wait": 20}


@pytest.fixture
def google() -> Iterator[GoogleSandbox]:
    box = GoogleSandbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def dm_config(google: GoogleSandbox) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return GoogleDataManager.spec.model_validate({**google.job_config("google_data_manager"), **FAST, **overrides})

    return make


@pytest.fixture
def cm_config(google: GoogleSandbox) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return GoogleCustomerMatch.spec.model_validate({**google.job_config("google_customer_match"), **FAST, **overrides})

    return make


def push(destination: type[AudienceDestination], config: Any, adds: pa.Table | None = None, removes: pa.Table | None = None,
         mode: PushMode = PushMode.DIFF, batch_rows: int = 40) -> tuple[PushReport, list[PushResult]]:
    """Prepare, removes then adds in batches of `batch_rows`, finish (abort on failure)."""
    dest = destination()
    adds, removes = adds if adds is not None else _empty(), removes if removes is not None else _empty()
    writer = dest.open_audience(config, AudienceTarget("test", "audience", mode, "run-1", adds.num_rows, removes.num_rows))
    results = []
    try:
        for method, members in (("remove", removes), ("add", adds)):
            prepared = dest.prepare(config, members) if members.num_rows else members
            for offset in range(0, prepared.num_rows, batch_rows):
                results.append(getattr(writer, method)(prepared.slice(offset, batch_rows)))
        return writer.finish(), results
    except BaseException:
        writer.abort()
        raise


def _empty() -> pa.Table:
    from threadline.testing import sample_members

    return sample_members(0, 0)


@pytest.fixture
def pusher() -> Callable[..., tuple[PushReport, list[PushResult]]]:
    return push
