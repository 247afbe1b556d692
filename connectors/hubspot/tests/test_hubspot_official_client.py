"""hubspot-api-client (HubSpot's official client, from PyPI, unmodified) against the sandbox.

It is pointed at the sandbox with its own `host` setting and checks the sandbox's answers
against its typed models (`client_side_validation`, on, so a missing required field fails).
It pages every stream the connector reads, the way the connector reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

hubspot = pytest.importorskip("hubspot", reason="the dev extra installs hubspot-api-client")

from hubspot import HubSpot  # noqa: E402
from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest  # noqa: E402

from threadline_hubspot.sandbox import MODIFIED, HubspotSandbox  # noqa: E402
from threadline_hubspot.source import ASSOCIATED, OBJECT_TYPES  # noqa: E402


@pytest.fixture(scope="module")
def sandbox() -> Iterator[HubspotSandbox]:
    with HubspotSandbox(contacts=250, companies=40, deals=120, rate_limit=100_000) as running:
        yield running


@pytest.fixture(scope="module")
def client(sandbox: HubspotSandbox) -> HubSpot:
    return HubSpot(access_token=sandbox.TOKEN, host=sandbox.base_url, client_side_validation=True)


def api(client: HubSpot, kind: str):
    return getattr(client.crm, kind)


def every_page(fetch, **kwargs) -> list:
    """Follow paging.next.after to the end, as the connector does."""
    results, after = [], None
    while True:
        page = fetch(after=after, **kwargs) if after is not None else fetch(**kwargs)
        results += page.results
        if page.paging is None or page.paging.next is None:
            return results
        after = page.paging.next.after


def property_names(client: HubSpot, kind: str) -> list[str]:
    return [p.name for p in client.crm.properties.core_api.get_all(object_type=kind).results]


def test_the_properties_list_loads_into_the_clients_property_model(client, sandbox):
    found = {p.name: p for p in client.crm.properties.core_api.get_all(object_type="contacts").results}
    assert found["email"].description and found["email"].options == []
    lifecycle = {o.value for o in found["lifecyclestage"].options}
    assert lifecycle == {r["properties"]["lifecyclestage"] for r in sandbox.records("contacts")} - {None}
    assert [o.value for o in found["hs_email_optout"].options] == ["true", "false"]


@pytest.mark.parametrize("kind", OBJECT_TYPES)
def test_list_pages_hold_every_live_record_with_every_property_asked_for_repeated(client, sandbox, kind):
    names = property_names(client, kind)
    pages = every_page(api(client, kind).basic_api.get_page, limit=100, properties=names,
                       associations=list(ASSOCIATED.get(kind, ())))
    assert [r.id for r in pages] == [r["id"] for r in sandbox.records(kind, archived=False)]
    # every property asked for came back (HubSpot returns the ones asked, null or not)
    assert set(pages[0].properties) == set(names)


def test_inline_associations_are_the_sandboxs_links(client, sandbox):
    pages = every_page(client.crm.contacts.basic_api.get_page, limit=100, associations=["companies", "deals"])
    got = {(r.id, to_type, link.id) for r in pages for to_type, links in (r.associations or {}).items()
           for link in links.results}
    expected = {(a["from_id"], a["to_type"], a["to_id"]) for a in sandbox.associations() if a["from_type"] == "contacts"}
    assert got == expected


@pytest.mark.parametrize("kind", OBJECT_TYPES)
def test_archived_true_lists_archived_records_only(client, sandbox, kind):
    archived = every_page(api(client, kind).basic_api.get_page, limit=100, archived=True)
    assert [r.id for r in archived] == [r["id"] for r in sandbox.records(kind, archived=True)]
    assert archived and all(r.archived and r.archived_at is not None for r in archived)


@pytest.mark.parametrize("kind", OBJECT_TYPES)
def test_search_pages_through_records_modified_since_a_moment_in_order(client, sandbox, kind):
    live = sorted(sandbox.records(kind, archived=False), key=lambda r: (r["updatedAt"], int(r["id"])))
    since = live[len(live) // 3]["properties"][MODIFIED[kind]]
    stamp = str(int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1000))  # epoch ms, as HubSpot takes
    search = api(client, kind).search_api.do_search

    def fetch(after: str | None = None, **_: object):
        return search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name=MODIFIED[kind], operator="GTE", value=stamp)])],
            sorts=[{"propertyName": MODIFIED[kind], "direction": "ASCENDING"}],
            properties=[MODIFIED[kind]], limit=50, after=after))

    found = every_page(fetch)
    assert [r.id for r in found] == [r["id"] for r in live if r["updatedAt"] >= since]


def test_a_search_sorted_by_a_bare_property_name_is_answered(client, sandbox):
    found = client.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(sorts=["lastmodifieddate"], limit=10))
    stamps = [r.properties["lastmodifieddate"] for r in found.results]
    assert len(stamps) == 10 and stamps == sorted(stamps)


def test_get_all_reads_every_live_company(client, sandbox):
    assert [c.id for c in client.crm.companies.get_all(properties=["name", "domain"])] == \
        [r["id"] for r in sandbox.records("companies", archived=False)]
