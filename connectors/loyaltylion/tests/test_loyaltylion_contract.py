"""LoyaltyLion under threadline's source contract suite, against its sandbox."""

from threadline.testing import SourceContract
from threadline_loyaltylion import LoyaltylionSource
from threadline_loyaltylion.sandbox import LoyaltylionSandbox, expected_customer, expected_transaction


class TestLoyaltylionContract(SourceContract):
    source = LoyaltylionSource
    sandbox = LoyaltylionSandbox
    sandbox_options = {"people": 150, "requests_per_second": 10_000}
    bad_config = {"base_url": "http://127.0.0.1:9"}
    credential_field = "api_key"
    data_path = "/v2/"

    def config(self, sandbox):
        return {"base_url": f"{sandbox.base_url}/v2", "api_key": sandbox.API_KEY, "page_size": 40,
                "requests_per_second": 1000, "backoff_base": 0.01}

    def expected_records(self, sandbox):
        return {"customers": [expected_customer(c) for c in sandbox.customers()],
                "transactions": [expected_transaction(t) for t in sandbox.transactions()]}

    def change(self, sandbox):
        newest = sandbox.transactions()[0]["id"]
        added = sandbox.add_customers(3)
        awarded = sandbox.award_points([c["id"] for c in sandbox.customers()[10:14]])
        new_transactions = [t for t in sandbox.transactions() if t["id"] > newest]
        return {"customers": [expected_customer(c) for c in added + awarded],
                "transactions": [expected_transaction(t) for t in new_transactions]}
