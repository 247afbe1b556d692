"""Shopify under threadline's source contract suite, against its sandbox."""

from threadline.testing import SourceContract
from threadline_shopify import ShopifySource
from threadline_shopify.sandbox import API_VERSION, ShopifySandbox


def shopify_config(sandbox, **overrides):
    return {"shop_url": sandbox.base_url, "access_token": sandbox.ACCESS_TOKEN, "page_size": 7, "backoff_base": 0.01,
            "leak_rate": 1000.0, **overrides}


def expected_customer(customer):
    """A customer as the stream flattens it: consent objects as columns."""
    for prefix in ("email_marketing", "sms_marketing"):
        consent = customer.get(f"{prefix}_consent") or {}
        for part in ("state", "opt_in_level", "consent_updated_at"):
            customer[f"{prefix}_{part}"] = consent.get(part)
    return customer


def expected_line_items(orders):
    return [{"order_id": o["id"], "order_updated_at": o["updated_at"], **item} for o in orders for item in o["line_items"]]


class TestShopifyContract(SourceContract):
    source = ShopifySource
    sandbox = ShopifySandbox
    sandbox_options = {"customers": 30, "leak_rate": 1000.0, "bucket_size": 40}
    bad_config = {"shop_url": "http://127.0.0.1:9", "access_token": "shpat_not_the_token"}
    credential_field = "access_token"
    data_path = f"/admin/api/{API_VERSION}/customers.json"

    def config(self, sandbox):
        return shopify_config(sandbox)

    def expected_records(self, sandbox):
        return {"customers": [expected_customer(c) for c in sandbox.customers()], "orders": sandbox.orders(),
                "order_line_items": expected_line_items(sandbox.orders())}

    def change(self, sandbox):
        orders = sandbox.add_orders(3)
        touched = {o["customer"]["id"] for o in orders}  # an order updates its customer too
        updated = sandbox.update_customers([sandbox.customers()[2]["id"]], tags="vip")
        customers = [c for c in sandbox.customers() if c["id"] in touched] + updated
        return {"orders": orders, "order_line_items": expected_line_items(orders), "customers": [expected_customer(c) for c in customers]}
