"""The source contract suite against a correct toy source over the core CustomersSandbox."""

from contract_toy_crm import ToyCrmSource

from threadline.sandbox import CustomersSandbox
from threadline.testing import SourceContract


class TestToyCrm(SourceContract):
    source = ToyCrmSource
    sandbox = CustomersSandbox
    sandbox_options = {"count": 40}
    bad_config = {"base_url": "http://127.0.0.1:9", "api_key": "not-the-key"}
    credential_field = "api_key"
    data_path = "/customers"

    def config(self, sandbox):
        return {"base_url": sandbox.base_url, "api_key": sandbox.API_KEY, "page_size": 10, "retry_wait": 0.01}

    def expected_records(self, sandbox):
        return {"customers": sandbox.customers}

    def change(self, sandbox):
        return {"customers": sandbox.add_customers(3) + sandbox.update_customers([2, 5])}
