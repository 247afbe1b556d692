"""Klaviyo's official Python client (klaviyo-api), unmodified, making every call the
`klaviyo_lists` destination makes, against the sandbox: the profile lookup by address, the
list add and remove, the read-back of the list a mirror push does, and the list's count. Answers
load into the client's typed models; the client sends its own revision (2026-10-15)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from klaviyo_api import KlaviyoAPI
from klaviyo_api.filter_builder import FilterBuilder
from openapi_client.exceptions import ApiException
from openapi_client.models import (
    GetListProfilesRelationshipsResponseCollection,
    GetListRetrieveResponseCompoundDocument,
    GetProfileResponsePluralConversationsCollectionCompoundDocument,
    ListMembersAddQuery,
    ListMembersDeleteQuery,
)
from threadline_klaviyo_lists.destination import LOOKUP_LIMIT
from threadline_klaviyo_lists.sandbox import KlaviyoListsSandbox

CONTACTS = [f"member.{i}@example.com" for i in range(150)]


@pytest.fixture
def klaviyo() -> Iterator[KlaviyoListsSandbox]:
    with KlaviyoListsSandbox(people=20, contacts=CONTACTS) as box:
        yield box  # type: ignore[misc]


@pytest.fixture
def client(klaviyo: KlaviyoListsSandbox) -> KlaviyoAPI:
    return KlaviyoAPI(klaviyo.API_KEY, max_delay=0.1, max_retries=0, test_host=klaviyo.base_url)


def profile_ids(client: KlaviyoAPI, emails: list[str]) -> list[str]:
    """The destination's lookup: any(email,[...]), a page of 100."""
    built = FilterBuilder()
    built.any("email", emails)
    found = client.Profiles.get_profiles(filter=built.build(), page_size=LOOKUP_LIMIT)
    assert isinstance(found, GetProfileResponsePluralConversationsCollectionCompoundDocument)
    return [p.id for p in found.data]


def members(client: KlaviyoAPI, list_id: str) -> list[str]:
    ids, cursor = [], None
    while True:
        page = client.Lists.get_profile_ids_for_list(list_id, page_size=100, page_cursor=cursor)
        assert isinstance(page, GetListProfilesRelationshipsResponseCollection)
        ids += [p.id for p in page.data]
        if not page.links.next:
            return ids
        cursor = parse_qs(urlsplit(page.links.next).query)["page[cursor]"][0]


def test_the_clients_lookup_finds_every_address_the_destination_asks_for(
    klaviyo: KlaviyoListsSandbox, client: KlaviyoAPI,
) -> None:
    wanted = CONTACTS[:LOOKUP_LIMIT]
    assert sorted(profile_ids(client, wanted)) == sorted(klaviyo.profile_id(e) for e in wanted)


def test_the_destinations_sparse_lookup_is_served_to_the_client(klaviyo: KlaviyoListsSandbox, client: KlaviyoAPI) -> None:
    built = FilterBuilder()
    built.any("email", CONTACTS[:3])
    found = client.Profiles.get_profiles(filter=built.build(), fields_profile=["email"], page_size=LOOKUP_LIMIT)
    assert sorted(p["attributes"]["email"] for p in found["data"]) == sorted(CONTACTS[:3])  # sparse: plain dicts


def test_the_client_adds_reads_back_and_removes_list_members(klaviyo: KlaviyoListsSandbox, client: KlaviyoAPI) -> None:
    list_id = klaviyo.AUDIENCE_LIST_ID
    ids = profile_ids(client, CONTACTS[:40])
    client.Lists.add_profiles_to_list(list_id, ListMembersAddQuery.from_dict(
        {"data": [{"type": "profile", "id": i} for i in ids]}))
    assert sorted(members(client, list_id)) == sorted(ids)
    assert klaviyo.list_emails(list_id) == set(CONTACTS[:40])
    client.Lists.remove_profiles_from_list(list_id, ListMembersDeleteQuery.from_dict(
        {"data": [{"type": "profile", "id": i} for i in ids[:15]]}))
    assert sorted(members(client, list_id)) == sorted(ids[15:])


def test_the_lists_count_loads_into_the_typed_model(klaviyo: KlaviyoListsSandbox, client: KlaviyoAPI) -> None:
    ids = profile_ids(client, CONTACTS[:5])
    client.Lists.add_profiles_to_list(klaviyo.AUDIENCE_LIST_ID, ListMembersAddQuery.from_dict(
        {"data": [{"type": "profile", "id": i} for i in ids]}))
    listed = client.Lists.get_list(klaviyo.AUDIENCE_LIST_ID, additional_fields_list=["profile_count"])
    assert isinstance(listed, GetListRetrieveResponseCompoundDocument)
    assert listed.data.attributes.profile_count == 5 and listed.data.links.var_self


def test_an_unknown_profile_id_is_refused_to_the_client_with_a_pointer(klaviyo: KlaviyoListsSandbox, client: KlaviyoAPI) -> None:
    with pytest.raises(ApiException) as caught:
        client.Lists.add_profiles_to_list(klaviyo.AUDIENCE_LIST_ID, ListMembersAddQuery.from_dict(
            {"data": [{"type": "profile", "id": "01HNOSUCHPROFILE"}]}))
    assert caught.value.status == 400 and "/data/0/id" in caught.value.body
