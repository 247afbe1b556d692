"""Klaviyo's official Python client (klaviyo-api), unmodified, against the sandbox, as a new
user would point it: every stream the connector reads pages through to its end with the
parameters the connector sends, and every answer loads into the client's typed models (the
client validates them with pydantic, so a missing `links` or an unknown enum value fails here).

The client sends its own revision (klaviyo-api 25: 2026-10-15); the sandbox must serve it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from klaviyo_api import KlaviyoAPI
from klaviyo_api.filter_builder import FilterBuilder
from openapi_client.exceptions import ApiException
from openapi_client.models import (
    GetEventResponseCollectionCompoundDocument,
    GetListListResponseCollectionCompoundDocument,
    GetListMemberResponseCollection,
    GetProfileResponsePluralConversationsCollectionCompoundDocument,
    MetricResponseObjectResource,
)
from threadline.contracts import Batch, ReadRequest, SyncMode
from threadline_klaviyo import KlaviyoConfig, KlaviyoSource
from threadline_klaviyo.client import DEFAULT_REVISION
from threadline_klaviyo.sandbox import CURRENT_REVISION, KlaviyoSandbox


@pytest.fixture(scope="module")
def klaviyo() -> Iterator[KlaviyoSandbox]:
    with KlaviyoSandbox(people=150, events_page_size=50) as box:
        yield box  # type: ignore[misc]


@pytest.fixture
def client(klaviyo: KlaviyoSandbox) -> KlaviyoAPI:
    return KlaviyoAPI(klaviyo.API_KEY, max_delay=0.1, max_retries=0, test_host=klaviyo.base_url)


def every_page(call: Callable[..., Any], **params: Any) -> list[Any]:
    """Follow `links.next` to the end. The client's own cursor helper takes the token out of
    an https:// next link only (the sandbox is http://), so the token is taken out here."""
    pages, cursor = [], None
    while True:
        page = call(page_cursor=cursor, **params)
        pages.append(page)
        if not page.links.next:
            return pages
        cursor = parse_qs(urlsplit(page.links.next).query)["page[cursor]"][0]


def oldest(moments: list[str]) -> datetime:
    return min(datetime.fromisoformat(m) for m in moments) - timedelta(seconds=1)


def test_the_client_sends_its_own_revision_and_the_sandbox_serves_it(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    klaviyo.clear_requests()
    client.Lists.get_lists()
    assert klaviyo.requests[-1].headers["revision"] == CURRENT_REVISION == DEFAULT_REVISION


def test_profiles_page_through_as_the_connector_reads_them_into_typed_models(
    klaviyo: KlaviyoSandbox, client: KlaviyoAPI,
) -> None:
    since = oldest([p["attributes"]["updated"] for p in klaviyo.profiles()])
    pages = every_page(client.Profiles.get_profiles, page_size=100, sort="updated",
                       additional_fields_profile=["subscriptions"],
                       filter=f"greater-than(updated,{since.strftime('%Y-%m-%dT%H:%M:%S+00:00')})")
    assert all(isinstance(p, GetProfileResponsePluralConversationsCollectionCompoundDocument) for p in pages)
    profiles = [p for page in pages for p in page.data]
    assert sorted(p.id for p in profiles) == sorted(p["id"] for p in klaviyo.profiles())
    assert all(p.links.var_self and p.relationships.lists.links.related for p in profiles)
    reasons = {s.reason for p in profiles for s in p.attributes.subscriptions.email.marketing.suppression or []}
    assert reasons and reasons <= {"HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED"}


def test_greater_or_equal_on_profiles_updated_is_refused_to_the_client_as_klaviyo_does(client: KlaviyoAPI) -> None:
    built = FilterBuilder()
    built.greater_or_equal("updated", datetime(2026, 1, 1))
    with pytest.raises(ApiException) as caught:
        client.Profiles.get_profiles(filter=built.build())
    assert caught.value.status == 400 and "greater-or-equal" in caught.value.body


def test_a_profile_is_found_by_the_clients_equals_email_filter(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    wanted = next(p for p in klaviyo.profiles() if p["attributes"]["email"])
    built = FilterBuilder()
    built.equals("email", wanted["attributes"]["email"])
    found = client.Profiles.get_profiles(filter=built.build())
    assert [p.id for p in found.data] == [wanted["id"]]


def test_lists_page_through_into_typed_models(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    pages = every_page(client.Lists.get_lists)
    assert all(isinstance(p, GetListListResponseCollectionCompoundDocument) for p in pages)
    assert [x.id for page in pages for x in page.data] == klaviyo.list_ids


def test_list_memberships_page_through_every_list_into_typed_models(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    since = oldest([m["joined_group_at"] for m in klaviyo.memberships()])
    read = []
    for list_id in klaviyo.list_ids:
        pages = every_page(client.Lists.get_profiles_for_list, id=list_id, page_size=100, sort="joined_group_at",
                           filter=f"greater-or-equal(joined_group_at,{since.isoformat()})")
        assert all(isinstance(p, GetListMemberResponseCollection) for p in pages)
        read += [(list_id, p.id, p.attributes.joined_group_at) for page in pages for p in page.data]
    assert sorted((lid, pid) for lid, pid, _ in read) == sorted(
        (m["list_id"], m["profile"]["id"]) for m in klaviyo.memberships())
    assert all(isinstance(joined, datetime) for _, _, joined in read)


def test_the_connectors_sparse_membership_pages_are_served_to_the_client(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    # with sparse fieldsets the client hands back plain dicts (its models would miss fields)
    page = client.Lists.get_profiles_for_list(klaviyo.list_ids[0], page_size=100, sort="joined_group_at",
                                              fields_profile=["email", "phone_number", "external_id", "joined_group_at"])
    first = page["data"][0]["attributes"]
    assert set(first) == {"email", "phone_number", "external_id", "joined_group_at"}


def test_events_page_through_with_their_metrics_into_typed_models(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    since = oldest([e["attributes"]["datetime"] for e in klaviyo.events()])
    pages = every_page(client.Events.get_events, sort="datetime", include=["metric"],
                       filter=f"greater-or-equal(datetime,{since.isoformat()})")
    assert all(isinstance(p, GetEventResponseCollectionCompoundDocument) for p in pages)
    events = [e for page in pages for e in page.data]
    assert [e.id for e in events] == [e["id"] for e in klaviyo.events()]
    assert all(e.relationships.metric.data.id and e.relationships.profile.links.related for e in events)
    # `included` is untyped in the collection model: each metric must load into the metric model
    metrics = {MetricResponseObjectResource.from_dict(m).id for page in pages for m in page.included or []}
    assert metrics == {e.relationships.metric.data.id for e in events}


def test_single_resources_load_into_typed_models(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    profile, event = klaviyo.profiles()[0], klaviyo.events()[0]
    assert client.Profiles.get_profile(profile["id"], additional_fields_profile=["subscriptions"]).data.id == profile["id"]
    assert client.Lists.get_list(klaviyo.list_ids[0], additional_fields_list=["profile_count"]).data.attributes.profile_count
    assert client.Events.get_event(event["id"]).data.id == event["id"]
    metric = event["relationships"]["metric"]["data"]["id"]
    assert client.Metrics.get_metric(metric).data.attributes.name == klaviyo.metric_name(metric)
    with pytest.raises(ApiException) as caught:
        client.Profiles.get_profile("01HNOSUCHPROFILE")
    assert caught.value.status == 404


# The connector's own requests, replayed through the client: each one must be a call the client
# (generated from Klaviyo's OpenAPI, validating its arguments) can make, with the same query.
OPERATIONS = [(re.compile(r"^/api/profiles/?$"), "Profiles", "get_profiles", ()),
              (re.compile(r"^/api/lists/?$"), "Lists", "get_lists", ()),
              (re.compile(r"^/api/lists/([^/]+)/profiles/?$"), "Lists", "get_profiles_for_list", ("id",)),
              (re.compile(r"^/api/events/?$"), "Events", "get_events", ())]
LISTED = ("fields[", "additional-fields[", "include")  # comma-separated lists in the query, lists in the client


def as_client_call(path: str, query: dict[str, list[str]]) -> tuple[str, str, dict[str, Any]]:
    for pattern, api, method, names in OPERATIONS:
        match = pattern.match(path)
        if match:
            kwargs: dict[str, Any] = dict(zip(names, match.groups()))
            for name, (value,) in query.items():
                arg = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")  # page[size] → page_size
                kwargs[arg] = (value.split(",") if name.startswith(LISTED) else
                               int(value) if arg == "page_size" else value)
            return api, method, kwargs
    raise AssertionError(f"the connector called {path}, which the test knows no client operation for")


def test_every_request_the_connector_makes_is_one_the_official_client_makes(klaviyo: KlaviyoSandbox, client: KlaviyoAPI) -> None:
    since = datetime(2020, 1, 1, tzinfo=UTC)
    cfg = KlaviyoConfig(api_key=klaviyo.API_KEY, base_url=f"{klaviyo.base_url}/api", page_size=100, backoff_base=0.01)
    source = KlaviyoSource()
    klaviyo.clear_requests()
    for stream in source.discover(cfg).streams:
        request = ReadRequest(stream=stream, sync_mode=SyncMode.INCREMENTAL if stream.cursor_field else SyncMode.FULL_REFRESH,
                              cursor_start=since if stream.cursor_field else None)
        assert any(isinstance(m, Batch) for m in source.read(cfg, request))
    sent = klaviyo.requests
    assert {urlsplit(r.path).path.split("/")[2] for r in sent} == {"profiles", "lists", "events"}
    for recorded in sent:
        klaviyo.clear_requests()
        api, method, kwargs = as_client_call(recorded.path, recorded.query)
        getattr(getattr(client, api), method)(**kwargs)  # the client validates every argument
        replayed = klaviyo.requests[-1]
        assert (replayed.path.rstrip("/"), replayed.query) == (recorded.path.rstrip("/"), recorded.query)
