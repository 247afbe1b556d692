"""Shopify's official Python client (ShopifyAPI 12, on pyactiveresource), unmodified, against
the sandbox: it pages every stream the connector reads with the parameters the connector
sends, reads the shop, counts, single records and the token's access scopes, and meets the
60-day window and the version fall-forward as it would at Shopify.

The client builds `https://<shop>.myshopify.com/admin/api/<version>` from a session; the
sandbox is on 127.0.0.1, so after `activate_session` the resource's `site` (the setting the
client's README uses for private apps) is pointed at it with the same path. Nothing else is
changed: the token goes out as the session puts it, in X-Shopify-Access-Token.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import shopify
from pyactiveresource.connection import ClientError, UnauthorizedAccess
from threadline_shopify import ShopifyConfig, ShopifySource
from threadline_shopify.sandbox import API_VERSION, SUPPORTED_VERSIONS, ShopifySandbox


@pytest.fixture
def sandbox() -> Iterator[ShopifySandbox]:
    with ShopifySandbox(customers=40, leak_rate=1000.0) as box:
        yield box


def activate(box: ShopifySandbox, version: str = API_VERSION, token: str | None = None) -> shopify.Session:
    session = shopify.Session("threadline-coffee.myshopify.com", version, token or box.ACCESS_TOKEN)
    shopify.ShopifyResource.activate_session(session)
    shopify.ShopifyResource.site = f"{box.base_url}/admin/api/{session.api_version.name}"
    return session


@pytest.fixture
def client(sandbox: ShopifySandbox) -> Iterator[ShopifySandbox]:
    activate(sandbox)
    yield sandbox
    shopify.ShopifyResource.clear_session()


def every_page(resource: type[shopify.ShopifyResource], **params: Any) -> list[dict[str, Any]]:
    """Follow the Link header's rel="next" to the end, as the connector does."""
    page = resource.find(**params)
    rows = [r.to_dict() for r in page]
    while page.has_next_page():
        page = page.next_page()
        rows += [r.to_dict() for r in page]
    return rows


def connector_params(name: str) -> dict[str, Any]:
    """The first page's query of a connector stream, as it declares it."""
    config = ShopifyConfig(shop_url="https://threadline-coffee.myshopify.com", access_token="shpat_x", page_size=7)
    return dict(ShopifySource().stream(config, name).params)


def test_the_client_pages_customers_orders_and_line_items_with_the_connectors_parameters(client):
    customers = every_page(shopify.Customer, **connector_params("customers"))
    assert customers == client.customers()
    orders = every_page(shopify.Order, **connector_params("orders"))
    assert orders == client.orders()
    items = every_page(shopify.Order, **connector_params("order_line_items"))
    assert items == [{"id": o["id"], "updated_at": o["updated_at"], "line_items": o["line_items"]} for o in client.orders()]
    firsts = [r.query for r in client.requests if "page_info" not in r.query]
    assert firsts == [{k: [str(v)] for k, v in connector_params(n).items()}
                      for n in ("customers", "orders", "order_line_items")]
    following = [r.query for r in client.requests if "page_info" in r.query]
    assert following and all(set(q) <= {"limit", "fields", "page_info"} for q in following)


def test_the_client_reads_incrementally_with_updated_at_min(client):
    customers = client.customers()
    start = sorted(c["updated_at"] for c in customers)[25]
    got = every_page(shopify.Customer, limit=7, updated_at_min=start)
    assert {c["id"] for c in got} == {c["id"] for c in customers
                                      if datetime.fromisoformat(c["updated_at"]) >= datetime.fromisoformat(start)}


def test_the_client_reads_the_shop_counts_single_records_and_access_scopes(client):
    assert shopify.Shop.current().name == "Threadline Coffee"
    assert shopify.Customer.count() == len(client.customers())
    assert shopify.Order.count(status="any") == len(client.orders())
    one = client.orders()[5]
    assert shopify.Order.find(one["id"]).to_dict() == one
    assert shopify.Order.find(one["id"], fields="id,email").to_dict() == {"id": one["id"], "email": one["email"]}
    assert sorted(s.handle for s in shopify.AccessScope.find()) == ["read_all_orders", "read_customers", "read_orders"]


def test_the_client_without_read_all_orders_sees_only_the_last_60_days(client):
    client.drop_scope("read_all_orders")
    assert "read_all_orders" not in {s.handle for s in shopify.AccessScope.find()}
    recent = client.visible_orders()
    assert every_page(shopify.Order, limit=7, status="any") == recent
    assert shopify.Order.count(status="any") == len(recent) < len(client.orders())


def test_a_retired_version_is_served_by_the_oldest_supported_one(sandbox):
    activate(sandbox, version="2024-07")  # the client knows 2024-07; Shopify retired it
    try:
        assert shopify.Shop.current().name == "Threadline Coffee"
        served = shopify.ShopifyResource.connection.response.headers["X-Shopify-API-Version"]
        assert served == SUPPORTED_VERSIONS[0]
    finally:
        shopify.ShopifyResource.clear_session()


def test_the_clients_errors_for_a_wrong_token_and_a_missing_scope(sandbox):
    activate(sandbox, token="shpat_wrong")
    try:
        with pytest.raises(UnauthorizedAccess):
            shopify.Customer.find(limit=5)
        activate(sandbox)
        sandbox.drop_scope("read_orders")
        with pytest.raises(ClientError) as caught:
            shopify.Order.find(limit=5)
        assert caught.value.response.code == 403 and b"read_orders scope" in caught.value.response.body
    finally:
        shopify.ShopifyResource.clear_session()
