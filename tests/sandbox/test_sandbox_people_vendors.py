"""The vendor sandboxes draw one population: the same person is in several vendors, each
showing the identifiers that vendor was given."""

import pytest
from threadline_hubspot.sandbox import HubspotSandbox
from threadline_klaviyo.sandbox import KlaviyoSandbox
from threadline_loyaltylion.sandbox import LoyaltylionSandbox
from threadline_mailchimp.sandbox import MailchimpSandbox
from threadline_salesforce.sandbox import SalesforceSandbox
from threadline_shopify.sandbox import ShopifySandbox
from threadline_x.sandbox import XSandbox
from threadline_zendesk.sandbox import ZendeskSandbox

from threadline.sandbox.people import members_of, population_seed, shopify_customer_id


@pytest.fixture(scope="module")
def vendors():
    return {
        "shopify": ShopifySandbox(customers=60), "hubspot": HubspotSandbox(contacts=60, companies=20, deals=10),
        "salesforce": SalesforceSandbox(contacts=60), "zendesk": ZendeskSandbox(users=60, tickets=60, ratings=10),
        "mailchimp": MailchimpSandbox(people=60), "klaviyo": KlaviyoSandbox(people=60), "x": XSandbox(users=60),
        "loyaltylion": LoyaltylionSandbox(people=60),
    }


KELLY = {"kelly.neal@gmail.com", "kelly.neal@brightline-logistics.example", "kneal85@aol.com", "5125550134", "5124410987"}


def is_kelly(*values: str | None) -> bool:
    """One of Kelly Neal's emails or phones (in any format) is among `values`."""
    found = set()
    for value in filter(None, values):
        digits = "".join(ch for ch in value if ch.isdigit())
        found |= {value.lower(), digits[-10:]} if "@" not in value else {value.lower()}
    return bool(found & KELLY)


def test_kelly_neal_is_in_every_vendor_under_the_identifiers_she_gave_it(vendors):
    shop = next(c for c in vendors["shopify"].customers() if c["email"] == "kelly.neal@gmail.com")
    assert shop["orders_count"] >= 5
    assert any(is_kelly(r["properties"]["email"], r["properties"]["phone"], *(r["properties"]["hs_additional_emails"] or
               "").split(";")) for r in vendors["hubspot"].records("contacts") if r["properties"]["lastname"] == "Neal")
    assert any(is_kelly(r["Email"], r["Secondary_Email__c"], r["Phone"])
               for r in vendors["salesforce"].records("Contact") if r["LastName"] == "Neal")
    assert any(t["status"] in ("new", "open", "pending") and t["subject"] == "Order arrived damaged"
               for t in vendors["zendesk"].tickets)
    assert any(m["email_address"] == "kelly.neal@gmail.com" for m in vendors["mailchimp"].members())
    assert any(p["attributes"]["external_id"] == str(shop["id"]) for p in vendors["klaviyo"].profiles())
    assert vendors["x"].by_username("kneal1985")["location"] == "Austin, TX"
    cards = {(c["properties"] or {}).get("card_number") for c in vendors["loyaltylion"].customers()}
    assert {"627400118514", "627400297730"} <= cards


def test_the_shop_and_the_email_list_share_most_of_their_people(vendors):
    shop = {c["email"].lower() for c in vendors["shopify"].customers() if c["email"]}
    newsletter = {m["email_address"].lower() for m in vendors["mailchimp"].members()}
    assert len(shop & newsletter) >= 15


def test_loyalty_accounts_point_at_the_shops_customers(vendors):
    shop_ids = {c["admin_graphql_api_id"] for c in vendors["shopify"].customers()}
    linked = [c for c in vendors["loyaltylion"].customers() if c["merchant_id"] in shop_ids]
    assert len(linked) >= 20


def test_klaviyo_orders_are_the_shops_orders(vendors):
    shop_orders = {str(o["id"]): o for o in vendors["shopify"].orders()}
    placed = [e["attributes"]["event_properties"] for e in vendors["klaviyo"].events()
              if vendors["klaviyo"].metric_name(e["relationships"]["metric"]["data"]["id"]) == "Placed Order"]
    known = [p for p in placed if p["OrderId"] in shop_orders]
    assert known and all(f"{p['$value']:.2f}" == shop_orders[p["OrderId"]]["total_price"] for p in known)


def test_a_sandbox_seed_picks_another_population_for_every_vendor():
    assert members_of("shopify", 5, population_seed(1)) != members_of("shopify", 5, population_seed(0))
    other = ShopifySandbox(seed=1, customers=5)
    assert [c["id"] for c in other.customers()] == sorted(
        shopify_customer_id(p) for p in members_of("shopify", 5, population_seed(1), where=lambda p: p.shop_account))
