"""A website's tracking calls for the realtime example, sent with the official Segment client.

    python examples/realtime/send_events.py [--shop http://127.0.0.1:18604] [--shoppers 150]

The shoppers are the Shopify sandbox's customers (read from its Admin API, as a site would
know its logged-in customers): each identifies, accepts advertising cookies and starts a
checkout. Prints the Shopify customer id of the first shopper, for the order webhook.
"""

from __future__ import annotations

import argparse
import os
import time

import requests
from segment.analytics import Client

SANDBOX_TOKEN = "shpat_sandbox0123456789abcdef0123456789"  # the Shopify sandbox's access token


def shop_customers(shop: str) -> list[dict]:
    """The shop's first 250 customers (waiting up to a minute for a sandbox that is starting)."""
    for _ in range(600):
        try:
            answer = requests.get(f"{shop}/admin/api/2026-10/customers.json", params={"limit": 250},
                                  headers={"X-Shopify-Access-Token": SANDBOX_TOKEN}, timeout=30)
            return answer.json()["customers"]
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"no shop answers at {shop}: start it with `threadline sandbox shopify=18604`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shop", default="http://127.0.0.1:18604")
    parser.add_argument("--collector", default=f"http://127.0.0.1:{os.environ.get('COLLECTOR_PORT', '8088')}")
    parser.add_argument("--shoppers", type=int, default=150)
    args = parser.parse_args()
    customers = shop_customers(args.shop)
    shoppers = [c for c in customers if c.get("email")][: args.shoppers]
    errors: list[Exception] = []
    client = Client(os.environ.get("WEB_WRITE_KEY", "wk_demo_web_0123456789"), host=args.collector,
                    on_error=lambda error, batch: errors.append(error))
    for customer in shoppers:
        user = f"web-{customer['id']}"
        client.identify(user, {"email": customer["email"], "firstName": customer["first_name"],
                               "lastName": customer["last_name"]})
        client.track(user, "Ads Consent Granted")
        client.track(user, "Checkout Started", {"cart_value": 42.0, "currency": "CAD"})
    client.flush()
    client.shutdown()
    if errors:
        raise SystemExit(f"the collector refused events: {errors[0]}")
    print(f"{len(shoppers)} shoppers started a checkout; the first is Shopify customer {shoppers[0]['id']}")


if __name__ == "__main__":
    main()
